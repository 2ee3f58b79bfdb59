/**
 * The probes of `dtk cluster status`, through the ports only (the `Driver` for VM state, a
 * `Remote` per node, the Kubernetes API, the `Runner` for helm and kubectl), so that tests give
 * fakes. Parsing what they answer is pure and separate.
 *
 * @module
 */
import { formatDuration, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import type { Remote } from "../remote/mod.ts";
import type { Driver, NodeAddress } from "../../drivers/types.ts";
import type { Probe, ProbeOutcome } from "./_model.ts";

/** What the probes need of the Kubernetes API (`KubeClient` has it). */
export interface KubeApi {
  request(
    method: string,
    path: string,
    options?: { timeoutMs?: number },
  ): Promise<{ status: number; text: string }>;
}

export interface AddonProbe {
  name: string;
  release: string;
  namespace: string;
  /** dtk's readiness checks: kubectl arguments (after `--kubeconfig F`), already bounded. */
  checks: { args: string[]; what: string }[];
}

export interface StatusDeps {
  nodes: readonly string[];
  /** The controller's name (`vms[0]`). */
  controller: string;
  address(node: string): NodeAddress | undefined;
  driver: Pick<Driver, "status">;
  remote(node: string): Remote;
  /** The dtk units of each node (`systemctl is-active` must say active). */
  units(node: string): string[];
  /** `undefined`: the cluster has no admin kubeconfig yet. */
  kube: KubeApi | undefined;
  /** The node's `vms[].pod-cidr`, which its spec.podCIDR must be (cluster create sets it). */
  podCidr?(node: string): string | undefined;
  /** etcd runs as a static pod (no etcdctl on the node): its health comes from the apiserver. */
  etcdStaticPod: boolean;
  /** The etcdctl command line on the controller. */
  etcdctl: string;
  runner: Runner;
  kubeconfig: string;
  addons: readonly AddonProbe[];
  /** `dtk verify`, when asked for (`--verify`). */
  verify?: () => Promise<{ outcome: string; counts: Record<string, number>; detail: string }>;
  /** Bound of each request or command a probe makes (the probe's own bound is the caller's). */
  commandTimeoutMs: number;
}

const ok = (summary: string, detail?: string): ProbeOutcome => ({ status: "ok", summary, detail });
const degraded = (summary: string, detail?: string): ProbeOutcome => ({
  status: "degraded",
  summary,
  detail,
});
const unchecked = (summary: string, detail?: string): ProbeOutcome => ({
  status: "unchecked",
  summary,
  detail,
});

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `systemctl is-active a b c` prints one state per unit, in order. */
export function parseUnitStates(units: readonly string[], stdout: string): ProbeOutcome {
  const states = stdout.trim().split("\n").map((s) => s.trim());
  const bad = units.map((u, i) => [u, states[i] ?? "unknown"] as const).filter(([, s]) =>
    s !== "active"
  );
  if (bad.length === 0) return ok(`${units.length} units active`);
  return degraded(bad.map(([u, s]) => `${u} ${s}`).join(", "));
}

interface NodeJson {
  metadata?: { name?: string };
  spec?: { podCIDR?: string };
  status?: {
    nodeInfo?: { kubeletVersion?: string };
    conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
  };
}

/**
 * A node's Ready condition, kubelet version, pressure conditions, and its pod CIDR against
 * `podCidr` (its `vms[].pod-cidr`: the bridge CNI's subnet, which Cilium must agree with).
 */
export function nodeOutcome(
  node: NodeJson | undefined,
  name: string,
  podCidr?: string,
): ProbeOutcome {
  if (node === undefined) return degraded(`not registered with the apiserver`);
  const conditions = node.status?.conditions ?? [];
  const version = node.status?.nodeInfo?.kubeletVersion ?? "?";
  const ready = conditions.find((c) => c.type === "Ready");
  const pressure = conditions.filter((c) => /Pressure$/.test(c.type ?? "") && c.status === "True")
    .map((c) => c.type!);
  const problems: string[] = [];
  if (ready?.status !== "True") {
    problems.push(`not Ready (${ready?.reason ?? "no Ready condition"})`);
  }
  if (pressure.length > 0) problems.push(pressure.join(", "));
  const have = node.spec?.podCIDR;
  if (podCidr !== undefined && have !== podCidr) {
    problems.push(`pod CIDR ${have ? q(have) : "unset"}, not its vms[].pod-cidr ${q(podCidr)}`);
  }
  if (problems.length > 0) {
    return degraded(`${problems.join("; ")}, kubelet ${version}`, ready?.message);
  }
  void name;
  return ok(`Ready, kubelet ${version}`);
}

/**
 * A leader lease: its holder, and whether it was renewed within its own duration (a leader that
 * died keeps its name on the lease until another takes over: only the renewal time tells).
 */
export function leaseOutcome(
  response: { status: number; text: string },
  now: number,
  skewMs = 5_000,
): ProbeOutcome {
  if (response.status === 404) return degraded("no leader lease");
  if (response.status !== 200) return degraded(`lease request answered HTTP ${response.status}`);
  const lease = JSON.parse(response.text) as {
    spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
  };
  const holder = lease.spec?.holderIdentity;
  if (!holder) return degraded("the lease has no holder");
  const staleMs = (lease.spec?.leaseDurationSeconds ?? 60) * 1000 + skewMs;
  const renewed = lease.spec?.renewTime ? Date.parse(lease.spec.renewTime) : NaN;
  if (Number.isFinite(renewed) && now - renewed > staleMs) {
    return degraded(`held by ${holder}, not renewed for ${formatDuration(now - renewed)}`);
  }
  return ok(`held by ${holder}`);
}

/** Every probe of a cluster, in the order they are shown. */
export function clusterProbes(deps: StatusDeps): Probe[] {
  const probes: Probe[] = [];
  const t = deps.commandTimeoutMs;
  for (const node of deps.nodes) {
    probes.push({
      name: `vm/${node}`,
      group: "vm",
      run: async () => {
        const state = await deps.driver.status(node);
        const address = deps.address(node);
        const where = address ? `, ${address.ip}` : ", no address recorded";
        if (state === "running") return ok(`running${where}`);
        if (state === "unknown") return unchecked(`the driver cannot tell its state${where}`);
        return degraded(state === "absent" ? "missing" : state);
      },
    });
    probes.push({
      name: `ssh/${node}`,
      group: "vm",
      after: `vm/${node}`,
      run: async () => {
        if (!deps.address(node)) return unchecked("no address recorded (dtk cluster create)");
        const started = performance.now();
        try {
          await deps.remote(node).exec("true", { timeoutMs: t, what: `ssh to ${node}` });
        } catch (error) {
          return degraded(`unreachable: ${message(error)}`);
        }
        return ok(
          `reachable with the pinned key in ${formatDuration(performance.now() - started)}`,
        );
      },
    });
    const units = deps.units(node);
    if (units.length > 0) {
      probes.push({
        name: `units/${node}`,
        group: "vm",
        after: `ssh/${node}`,
        run: async () => {
          const r = await deps.remote(node).exec(
            `systemctl is-active ${units.join(" ")}; true`,
            { timeoutMs: t, check: false, what: `systemctl is-active on ${node}` },
          );
          const outcome = parseUnitStates(units, r.stdout);
          if (outcome.status === "ok") return outcome;
          const failed = units.filter((_, i) =>
            r.stdout.trim().split("\n")[i]?.trim() !== "active"
          );
          const journal = await deps.remote(node).exec(
            failed.map((u) => `journalctl -u ${u} -n 10 --no-pager 2>&1`).join("; ") + "; true",
            { timeoutMs: t, check: false },
          ).then((j) => j.stdout, () => "");
          return { ...outcome, detail: journal };
        },
      });
    }
  }

  const kube = deps.kube;
  probes.push({
    name: "apiserver",
    group: "control-plane",
    run: async () => {
      if (!kube) return unchecked("no admin kubeconfig (dtk cluster create)");
      try {
        const r = await kube.request("GET", "/readyz?verbose", { timeoutMs: t });
        if (r.status === 200) return ok("/readyz ok");
        const failed = r.text.split("\n").filter((l) => l.startsWith("[-]")).join(", ");
        return degraded(`/readyz answered HTTP ${r.status}${failed ? `: ${failed}` : ""}`, r.text);
      } catch (error) {
        return degraded(`unreachable: ${message(error)}`);
      }
    },
  });
  probes.push({
    name: "etcd",
    group: "control-plane",
    after: deps.etcdStaticPod ? "apiserver" : `ssh/${deps.controller}`,
    run: async () => {
      if (deps.etcdStaticPod) {
        const r = await kube!.request("GET", "/readyz/etcd", { timeoutMs: t });
        return r.status === 200 ? ok("healthy (apiserver /readyz/etcd)") : degraded(
          `/readyz/etcd answered HTTP ${r.status}`,
          r.text,
        );
      }
      const r = await deps.remote(deps.controller).exec(`${deps.etcdctl} endpoint health 2>&1`, {
        timeoutMs: t,
        check: false,
        what: `etcdctl endpoint health on ${deps.controller}`,
      });
      const line = r.stdout.trim().split("\n").at(-1) ?? "";
      if (r.success && /is healthy/.test(r.stdout)) return ok(line.replace(/^https?:\/\/\S+ /, ""));
      return degraded(line || `etcdctl exited with code ${r.code}`, r.stdout);
    },
  });
  for (
    const [name, lease] of [
      ["controller-manager", "kube-controller-manager"],
      ["scheduler", "kube-scheduler"],
    ] as const
  ) {
    probes.push({
      name,
      group: "control-plane",
      after: "apiserver",
      run: async () =>
        leaseOutcome(
          await kube!.request(
            "GET",
            `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${lease}`,
            { timeoutMs: t },
          ),
          Date.now(),
        ),
    });
  }

  // One node list for every node probe.
  let nodeList: Promise<NodeJson[]> | undefined;
  const listNodes = () =>
    nodeList ??= kube!.request("GET", "/api/v1/nodes", { timeoutMs: t }).then((r) => {
      if (r.status !== 200) throw new Error(`GET /api/v1/nodes answered HTTP ${r.status}`);
      return (JSON.parse(r.text) as { items?: NodeJson[] }).items ?? [];
    });
  for (const node of deps.nodes) {
    probes.push({
      name: `node/${node}`,
      group: "node",
      after: "apiserver",
      run: async () =>
        nodeOutcome(
          (await listNodes()).find((n) => n.metadata?.name === node),
          node,
          deps.podCidr?.(node),
        ),
    });
  }

  let releases: Promise<{ name: string; namespace: string; status: string }[]> | undefined;
  const helmList = () =>
    releases ??= deps.runner.run([
      "helm",
      "list",
      "--all-namespaces",
      "--all",
      "--kubeconfig",
      deps.kubeconfig,
      "--output",
      "json",
    ], { timeoutMs: t, what: "helm list" }).then((r) =>
      JSON.parse(r.stdout.trim() || "[]") as { name: string; namespace: string; status: string }[]
    );
  for (const addon of deps.addons) {
    probes.push({
      name: `addon/${addon.name}`,
      group: "addon",
      after: "apiserver",
      run: async (signal) => {
        const release = (await helmList()).find((r) =>
          r.name === addon.release && r.namespace === addon.namespace
        );
        if (!release) return degraded(`no helm release ${addon.release} in ${addon.namespace}`);
        if (release.status !== "deployed") return degraded(`helm release ${release.status}`);
        for (const check of addon.checks) {
          const r = await deps.runner.run(
            ["kubectl", "--kubeconfig", deps.kubeconfig, ...check.args],
            { timeoutMs: t, check: false, signal, what: `kubectl: ${check.what}` },
          );
          if (!r.success) {
            return degraded(`release deployed, not ready: ${check.what}`, r.stderr || r.stdout);
          }
        }
        return ok("release deployed and ready");
      },
    });
  }

  if (deps.verify) {
    const verify = deps.verify;
    probes.push({
      name: "verify",
      group: "verify",
      run: async () => {
        const report = await verify();
        const c = report.counts;
        const counts = Object.entries(c).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`)
          .join(", ");
        if (report.outcome === "clean") return ok(`matches the lock and the config (${counts})`);
        if (report.outcome === "drifted") return degraded(`drift: ${counts}`, report.detail);
        return unchecked(`could not check everything: ${counts}`, report.detail);
      },
    });
  }
  return probes;
}
