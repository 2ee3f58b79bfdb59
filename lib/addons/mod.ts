/**
 * The add-ons: a registry of the original's fourteen as data (release, namespace, chart from the
 * catalogue, values computed from the config and the cluster, objects applied before and after
 * helm, node steps, dependencies, what "ready" means), and one installer running helm and
 * kubectl through the `Runner` with the cluster's admin kubeconfig and bounded waits.
 *
 * ```ts
 * const result = await installAddon("cilium", {
 *   config, facts: { controllerIp, nodeIps, adminToken }, kubeconfig, runner,
 *   artifactPath: (name) => store.pathOf(lock.artifacts[name]),
 * });
 * ```
 *
 * Order and dependencies are checked when the config is loaded (`lib/config`), from the same
 * data the registry uses (`ADDON_REQUIRES`, `CNI_ADDONS`).
 *
 * @module
 */
export type {
  AddonAction,
  AddonDefinition,
  AddonName,
  ApplyArtifactAction,
  ChartImage,
  ChartImages,
  ClusterFacts,
  KubectlAction,
  NodeFile,
  NodeStep,
  ReadyCheck,
  RenderInput,
  WebhookAction,
} from "./_types.ts";
export { APISERVER_PORT } from "./_types.ts";
export {
  addonDefinition,
  addonNodeSteps,
  ADDONS,
  GATEWAY_NAME,
  GATEWAY_NAMESPACE,
  NFS_EXPORT,
  webhookUrl,
} from "./_registry.ts";
export {
  type AddonChart,
  addonChart,
  addonDir,
  checkArgs,
  describeCheck,
  renderAddon,
  type RenderedAddon,
  renderedDigest,
  renderInput,
  type RenderOptions,
} from "./_render.ts";
export {
  type AddonTimeouts,
  DEFAULT_TIMEOUTS,
  enabledAddons,
  installAddon,
  installEnabledAddons,
  type InstallOptions,
  type InstallResult,
  type InstallStepTiming,
} from "./_install.ts";
export {
  clusterFacts,
  type ClusterNode,
  type ClusterQueryOptions,
  type HelmRelease,
  installedAddons,
  installProblems,
  listNodes,
  listReleases,
  nodeStepScript,
  parseAddonName,
  stepNodes,
} from "./_cluster.ts";
export {
  chartImages,
  type ImageConfig,
  imageKey,
  type RequiredImage,
  requiredImages,
  type UnlistedChart,
  unlistedCharts,
  unlistedError,
  whyImage,
} from "./_images.ts";
export {
  checkChartImages,
  IMAGE_FLAGS,
  renderedImages,
  type TemplateCheck,
  type TemplateCheckOptions,
  unlistedImages,
} from "./_template.ts";
