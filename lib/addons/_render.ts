/**
 * Rendering: an add-on plus the config plus the facts of the cluster → the exact helm argument
 * vector, the values file, and the kubectl work around it. Pure.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { stringify } from "yaml";
import { chartSpec } from "../catalog/mod.ts";
import type { AddonName, Config } from "../config/mod.ts";
import { clusterDir } from "../paths/mod.ts";
import { addonDefinition } from "./_registry.ts";
import type { AddonAction, ClusterFacts, NodeStep, ReadyCheck, RenderInput } from "./_types.ts";

/** `generated/<cluster>/addons/<name>`: where the add-on's rendered values go. */
export function addonDir(config: Pick<Config, "source" | "cluster">, name: AddonName): string {
  return join(clusterDir(config), "addons", name);
}

/** The chart an add-on installs: its lock name, version and file name. */
export interface AddonChart {
  /** Lock name, `chart-<addon>`. */
  artifact: string;
  version: string;
  file: string;
  url: string;
}

/** The chart of `name` for this config (the `addons[].chart-version` override, else the catalogue's). */
export function addonChart(config: Pick<Config, "addons">, name: AddonName): AddonChart {
  const entry = config.addons.find((a) => a.name === name);
  const spec = chartSpec(name, entry?.chartVersion);
  return { artifact: spec.name, version: spec.version, file: spec.file, url: spec.urls[0] ?? "" };
}

export interface RenderOptions {
  /** The cluster's admin kubeconfig. */
  kubeconfig: string;
  /** The chart file (a store path). */
  chartPath: string;
  /** Default: `addonDir(config, name)`. */
  valuesDir?: string;
  /** Given to helm as `--timeout`. */
  helmTimeoutMs: number;
  /** The helm program. Default `helm`. */
  helm?: string;
}

export interface RenderedAddon {
  name: AddonName;
  release: string;
  namespace: string;
  chart: AddonChart;
  values: Record<string, unknown>;
  /** The values file's text. */
  valuesYaml: string;
  valuesFile: string;
  /** 0600 when the values hold the admin token. */
  valuesMode: number;
  helmArgv: string[];
  before: AddonAction[];
  after: AddonAction[];
  ready: ReadyCheck[];
  nodeSteps: NodeStep[];
}

/** The input for rendering `name` against `config` and `facts`. */
export function renderInput(config: Config, facts: ClusterFacts, name: AddonName): RenderInput {
  return { config, facts, entry: config.addons.find((a) => a.name === name) };
}

/** Helm wants a Go duration; whole seconds, at least one. */
function goDuration(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`;
}

/** Renders one add-on. Pure: writes nothing. */
export function renderAddon(
  name: AddonName,
  input: RenderInput,
  options: RenderOptions,
): RenderedAddon {
  const def = addonDefinition(name);
  const chart = addonChart(input.config, name);
  const values = def.values(input);
  const valuesYaml = `# Helm values of add-on "${name}" (chart ${chart.file}), rendered by dtk.\n` +
    `# Rewritten on every install: edit config.yaml instead.\n` +
    (Object.keys(values).length === 0 ? "{}\n" : stringify(values, { lineWidth: 0 }));
  const valuesDir = options.valuesDir ?? addonDir(input.config, name);
  const valuesFile = join(valuesDir, "values.yaml");
  const helmArgv = [
    options.helm ?? "helm",
    "upgrade",
    "--install",
    def.release,
    options.chartPath,
    "--namespace",
    def.namespace,
    "--create-namespace",
    "--kubeconfig",
    options.kubeconfig,
    "--values",
    valuesFile,
    ...(def.helmWait ? ["--wait"] : []),
    "--timeout",
    goDuration(options.helmTimeoutMs),
  ];
  return {
    name,
    release: def.release,
    namespace: def.namespace,
    chart,
    values,
    valuesYaml,
    valuesFile,
    valuesMode: def.secretValues ? 0o600 : 0o644,
    helmArgv,
    before: def.before(input),
    after: def.after(input),
    ready: def.ready(input),
    nodeSteps: def.nodeSteps(input),
  };
}

/**
 * A digest of everything an install of this add-on depends on, so the pipeline can tell a
 * finished step whose inputs changed from one that can be skipped on resume.
 */
export function renderedDigest(rendered: RenderedAddon): string {
  const hash = createHash("sha256");
  hash.update(JSON.stringify({
    argv: rendered.helmArgv,
    values: rendered.valuesYaml,
    before: rendered.before,
    after: rendered.after,
    ready: rendered.ready,
    nodeSteps: rendered.nodeSteps,
  }));
  return `sha256:${hash.digest("hex")}`;
}

/** Describes what a readiness check waits for, e.g. `daemonset "cilium" in "cilium" to roll out`. */
export function describeCheck(check: ReadyCheck): string {
  switch (check.kind) {
    case "rollout":
      return `${check.resource} "${check.name}" in "${check.namespace}" to roll out`;
    case "deployments":
      return `every deployment in "${check.namespace}" to be available`;
    case "condition":
      return `${check.resource} "${check.name}"${
        check.namespace ? ` in "${check.namespace}"` : ""
      } to be ${check.condition}`;
  }
}

/** The kubectl arguments (after `--kubeconfig`) of a readiness check with kubectl's own timeout. */
export function checkArgs(check: ReadyCheck, timeoutMs: number): string[] {
  const timeout = `--timeout=${goDuration(timeoutMs)}`;
  switch (check.kind) {
    case "rollout":
      return [
        "-n",
        check.namespace,
        "rollout",
        "status",
        `${check.resource}/${check.name}`,
        timeout,
      ];
    case "deployments":
      return [
        "-n",
        check.namespace,
        "wait",
        "--for=condition=Available",
        "deployment",
        "--all",
        timeout,
      ];
    case "condition":
      return [
        ...(check.namespace ? ["-n", check.namespace] : []),
        "wait",
        `--for=condition=${check.condition}`,
        `${check.resource}/${check.name}`,
        timeout,
      ];
  }
}
