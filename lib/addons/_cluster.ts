/**
 * What `dtk install-addon` and `dtk addons list` learn from a running cluster: its nodes and
 * addresses, the helm releases installed, and a way to run node steps over ssh.
 *
 * @module
 */
import { dirname } from "node:path";
import { DtkError, q, UsageError } from "../errors/mod.ts";
import { commandFailed, type Runner, shellQuote } from "../exec/mod.ts";
import { ADDON_CONFLICTS, type AddonName, type Config, isAddonName } from "../config/mod.ts";
import { encodeBase64 } from "../pki/mod.ts";
import { addonDefinition, ADDONS } from "./_registry.ts";
import type { ClusterFacts, NodeStep } from "./_types.ts";

export interface ClusterQueryOptions {
  runner: Runner;
  kubeconfig: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  helm?: string;
  kubectl?: string;
}

/** A helm release, as `helm list -o json` reports it. */
export interface HelmRelease {
  name: string;
  namespace: string;
  chart: string;
  status: string;
}

/** Runs a query that prints JSON (helm, kubectl) and parses what it printed. */
async function queryJson(
  argv: string[],
  options: ClusterQueryOptions,
  query: { what: string; hint?: string; empty?: string },
): Promise<unknown> {
  const result = await options.runner.run(argv, {
    check: false,
    env: options.env,
    timeoutMs: options.timeoutMs ?? 60_000,
    what: query.what,
  });
  if (!result.success) {
    throw commandFailed(argv, result, { what: query.what, hint: query.hint });
  }
  const text = result.stdout.trim() === "" && query.empty !== undefined
    ? query.empty
    : result.stdout;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new DtkError(`${query.what} printed something other than JSON`, { cause: error });
  }
}

/** Every helm release on the cluster. */
export async function listReleases(options: ClusterQueryOptions): Promise<HelmRelease[]> {
  const argv = [
    options.helm ?? "helm",
    "list",
    "--all-namespaces",
    "--all",
    "--kubeconfig",
    options.kubeconfig,
    "--output",
    "json",
  ];
  // An empty answer from helm means no releases.
  const data = await queryJson(argv, options, { what: "helm list", empty: "[]" });
  if (!Array.isArray(data)) return [];
  return data.map((r: Record<string, unknown>) => ({
    name: String(r.name ?? ""),
    namespace: String(r.namespace ?? ""),
    chart: String(r.chart ?? ""),
    status: String(r.status ?? ""),
  }));
}

/** The add-ons whose release is deployed (release name and namespace as dtk installs them). */
export function installedAddons(releases: readonly HelmRelease[]): Map<AddonName, HelmRelease> {
  const found = new Map<AddonName, HelmRelease>();
  for (const def of ADDONS.values()) {
    const release = releases.find((r) => r.name === def.release && r.namespace === def.namespace);
    if (release !== undefined) found.set(def.name, release);
  }
  return found;
}

/**
 * Problems installing `name` on a cluster that has `installed`: a missing prerequisite, or a
 * second CNI. `dtk install-addon --force` installs anyway.
 */
export function installProblems(name: AddonName, installed: ReadonlySet<AddonName>): string[] {
  const def = addonDefinition(name);
  const problems: string[] = [];
  for (const needed of def.requires) {
    if (!installed.has(needed)) {
      problems.push(`Add-on ${q(name)} needs ${q(needed)}, which is not installed`);
    }
  }
  if (def.requiresOneOf.length > 0 && !def.requiresOneOf.some((n) => installed.has(n))) {
    problems.push(
      `Add-on ${q(name)} needs one of ${
        def.requiresOneOf.map((n) => q(n)).join(", ")
      } (a default StorageClass), and none is installed`,
    );
  }
  for (const [a, b, why] of ADDON_CONFLICTS) {
    const other = name === a ? b : name === b ? a : undefined;
    if (other !== undefined && installed.has(other)) {
      problems.push(`The cluster already has ${q(other)}: ${q(name)} cannot run beside it, ${why}`);
    }
  }
  if (def.cni) {
    for (const other of installed) {
      if (other !== name && addonDefinition(other).cni) {
        problems.push(`The cluster already has the CNI ${q(other)}; only one CNI may be installed`);
      }
    }
  }
  return problems;
}

/** Parses an add-on name given on the command line. */
export function parseAddonName(value: string): AddonName {
  if (isAddonName(value)) return value;
  throw new UsageError(`Unknown add-on ${q(value)}`, {
    hint: `Known add-ons: ${[...ADDONS.keys()].join(", ")}`,
  });
}

/** A node as the cluster reports it. */
export interface ClusterNode {
  name: string;
  ip: string;
  controller: boolean;
}

/** The nodes of the cluster with their InternalIP, in the config's VM order. */
export async function listNodes(
  config: Pick<Config, "vms">,
  options: ClusterQueryOptions,
): Promise<ClusterNode[]> {
  const argv = [
    options.kubectl ?? "kubectl",
    "--kubeconfig",
    options.kubeconfig,
    "get",
    "nodes",
    "--output",
    "json",
  ];
  interface NodeJson {
    metadata?: { name?: string; labels?: Record<string, string> };
    status?: { addresses?: { type?: string; address?: string }[] };
  }
  const data = await queryJson(argv, options, {
    what: "kubectl get nodes",
    hint: "Is the cluster running? Start it with: dtk cluster up",
  });
  const items = (data as { items?: NodeJson[] } | null)?.items ?? [];
  const rank = new Map(config.vms.map((vm, i) => [vm.name, i]));
  const nodes = items.map((item) => ({
    name: item.metadata?.name ?? "",
    ip: item.status?.addresses?.find((a) => a.type === "InternalIP")?.address ?? "",
    controller: Object.hasOwn(item.metadata?.labels ?? {}, "node-role.kubernetes.io/controller"),
  })).filter((n) => n.name !== "" && n.ip !== "");
  nodes.sort((a, b) =>
    (rank.get(a.name) ?? 1e9) - (rank.get(b.name) ?? 1e9) || a.name.localeCompare(b.name)
  );
  return nodes;
}

/**
 * The facts the installer needs, from the running cluster: the controller is the node labelled
 * `node-role.kubernetes.io/controller`, else the config's first VM.
 */
export function clusterFacts(
  config: Pick<Config, "vms">,
  nodes: readonly ClusterNode[],
  adminToken: string,
): ClusterFacts {
  const controller = nodes.find((n) => n.controller) ??
    nodes.find((n) => n.name === config.vms[0]?.name) ?? nodes[0];
  if (controller === undefined) {
    throw new DtkError("The cluster reports no nodes with an InternalIP", {
      hint: "Check it with: kubectl get nodes -o wide",
    });
  }
  return {
    controllerIp: controller.ip,
    nodeIps: [controller.ip, ...nodes.filter((n) => n !== controller).map((n) => n.ip)],
    adminToken,
  };
}

/** The nodes a step runs on. */
export function stepNodes<T extends { controller: boolean }>(
  step: NodeStep,
  nodes: readonly T[],
): T[] {
  if (step.on === "all") return [...nodes];
  const controller = nodes.find((n) => n.controller) ?? nodes[0];
  return controller === undefined ? [] : [controller];
}

/**
 * A POSIX sh script doing a node step: each file written atomically (temp file, then rename),
 * then the commands, stopping at the first failure. Fed to `sh -s` on the node.
 */
export function nodeStepScript(step: NodeStep): string {
  const lines = ["set -eu"];
  for (const file of step.files) {
    const temp = `${file.path}.dtk-tmp`;
    const data = encodeBase64(new TextEncoder().encode(file.content));
    lines.push(
      `mkdir -p ${shellQuote(dirname(file.path))}`,
      `printf '%s' ${shellQuote(data)} | base64 -d > ${shellQuote(temp)}`,
      `chmod ${file.mode.toString(8)} ${shellQuote(temp)}`,
      `mv -f ${shellQuote(temp)} ${shellQuote(file.path)}`,
    );
  }
  lines.push(...step.commands);
  return lines.join("\n") + "\n";
}
