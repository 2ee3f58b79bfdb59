/**
 * `dtk cluster status`: every VM (driver state, address, ssh with the pinned key, dtk's units),
 * every node (Ready, kubelet version, pressure, pod CIDR), the control plane (etcd, apiserver `/readyz`,
 * the controller-manager and scheduler leases), every enabled add-on (helm release, dtk's
 * readiness check), and `dtk verify` when asked. The model is pure (`_model.ts`); the probes go
 * through the ports (`_probes.ts`); this module wires them to a real cluster.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { DtkError, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import { exists } from "../fs/mod.ts";
import { clusterDir, pkiLayout } from "../paths/mod.ts";
import type { Driver } from "../../drivers/types.ts";
import { type Probe, runProbes, type StatusReport, summarize } from "./_model.ts";
import { type AddonProbe, clusterProbes, type KubeApi } from "./_probes.ts";

export * from "./_model.ts";
export {
  type AddonProbe,
  clusterProbes,
  type KubeApi,
  leaseOutcome,
  nodeOutcome,
  parseUnitStates,
  type StatusDeps,
} from "./_probes.ts";

export interface ClusterStatusOptions {
  driver: Driver;
  runner: Runner;
  /** Bound of each probe. Default 20 s. */
  probeTimeoutMs?: number;
  /** Also run `dtk verify` (needs the lock and the store). */
  verify?: () => Promise<{ outcome: string; counts: Record<string, number>; detail: string }>;
  signal?: AbortSignal;
}

/** The status of the config's cluster; throws (exit 2) only when there is nothing to check. */
export async function clusterStatus(
  config: Config,
  options: ClusterStatusOptions,
): Promise<StatusReport> {
  const started = performance.now();
  const statePath = join(clusterDir(config), "state.json");
  if (!(await exists(statePath))) {
    throw new DtkError(`Cluster ${q(config.cluster.name)} has no state file ${q(statePath)}`, {
      exitCode: 2,
      hint: "Create it first (dtk cluster create), or pass its config with --config",
    });
  }
  const [{ StateStore }, { Nodes }, { KubeClient }, render, addons] = await Promise.all([
    import("../pipeline/mod.ts"),
    import("../cluster/mod.ts"),
    import("../kube/mod.ts"),
    import("../render/mod.ts"),
    import("../addons/mod.ts"),
  ]);
  const state = await StateStore.open(statePath, config.cluster.name);
  const layout = pkiLayout(config);
  const nodes = new Nodes(config, { layout, state, runner: options.runner });
  const kubeconfig = layout.kubeconfig("admin");
  const kube = await exists(kubeconfig)
    ? await KubeClient.fromKubeconfigFile(kubeconfig)
    : undefined;
  const ips = nodes.ips();
  const timeoutMs = options.probeTimeoutMs ?? 20_000;
  const overrides = config.testNspawn?.["renderOverrides"] as
    | import("../render/mod.ts").RenderOverrides
    | undefined;
  const units = (node: string): string[] => {
    if (Object.keys(ips).length !== config.vms.length) return [];
    const input = { config, nodes: render.renderNodes(config, ips), node, overrides };
    return render.stepsForNode(input).flatMap((s) => render.renderStep(s, input).units);
  };
  const facts = {
    controllerIp: ips[nodes.controller] ?? "",
    nodeIps: nodes.names.map((n) => ips[n] ?? ""),
    adminToken: "",
  };
  const addonProbes: AddonProbe[] = addons.enabledAddons(config).map((name) => {
    const def = addons.addonDefinition(name);
    const input = addons.renderInput(config, facts, name);
    return {
      name,
      release: def.release,
      namespace: def.namespace,
      checks: def.ready(input).map((check) => ({
        args: addons.checkArgs(check, Math.max(1000, timeoutMs - 5000)),
        what: addons.describeCheck(check),
      })),
    };
  });
  const probes: Probe[] = clusterProbes({
    nodes: nodes.names,
    controller: nodes.controller,
    address: (n) => state.node(n),
    driver: options.driver,
    remote: (n) => nodes.remote(n),
    units,
    kube: kube as KubeApi | undefined,
    podCidr: (n) => config.vms.find((vm) => vm.name === n)?.podCidr,
    etcdStaticPod: config.k8s.containerizedCplane.includes("etcd" as never),
    etcdctl: render.etcdctlCommand(config.versions.etcd),
    runner: options.runner,
    kubeconfig,
    addons: addonProbes,
    verify: options.verify,
    commandTimeoutMs: Math.max(1000, timeoutMs - 2000),
  });
  try {
    const results = await runProbes(probes, { timeoutMs, signal: options.signal });
    return summarize(config.cluster.name, results, performance.now() - started);
  } finally {
    kube?.close();
    await nodes.closeAll();
  }
}
export {
  aggregateVms,
  type ClusterEntry,
  clusterFolders,
  type FolderState,
  type ListSources,
  readEntry,
} from "./_list.ts";
