import assert from "node:assert/strict";
import type { Runner, RunOptions, RunResult } from "../exec/mod.ts";
import type { ExecOptions, Remote } from "../remote/mod.ts";
import type { VmState } from "../../drivers/types.ts";
import {
  clusterProbes,
  formatStatus,
  type KubeApi,
  leaseOutcome,
  nodeOutcome,
  parseUnitStates,
  type Probe,
  runProbes,
  type StatusDeps,
  summarize,
} from "./mod.ts";

const result = (stdout: string, code = 0): RunResult => ({
  code,
  success: code === 0,
  stdout,
  stderr: "",
  elapsedMs: 1,
});

Deno.test("runProbes: all at once, each bounded and named on timeout, gated ones skipped", async () => {
  let active = 0;
  let most = 0;
  let abortedHang = false;
  const slow = (name: string): Probe => ({
    name,
    group: "vm",
    run: async () => {
      active++;
      most = Math.max(most, active);
      await new Promise((r) => setTimeout(r, 30));
      active--;
      return { status: "ok", summary: "fine" };
    },
  });
  const probes: Probe[] = [
    slow("a"),
    slow("b"),
    slow("c"),
    {
      name: "hangs",
      group: "control-plane",
      run: (signal) =>
        new Promise((_, reject) =>
          signal.addEventListener("abort", () => {
            abortedHang = true;
            reject(signal.reason);
          })
        ),
    },
    { name: "after-hang", group: "node", after: "hangs", run: () => Promise.reject("never") },
    { name: "throws", group: "addon", run: () => Promise.reject(new Error("helm: not found")) },
    {
      name: "after-a",
      group: "node",
      after: "a",
      run: () => Promise.resolve({ status: "ok", summary: "ran after a" }),
    },
  ];
  const results = await runProbes(probes, { timeoutMs: 200 });
  assert.equal(most, 3, "the probes ran at once");
  assert.deepEqual(results.map((r) => [r.name, r.status]), [
    ["a", "ok"],
    ["b", "ok"],
    ["c", "ok"],
    ["hangs", "unchecked"],
    ["after-hang", "skipped"],
    ["throws", "unchecked"],
    ["after-a", "ok"],
  ]);
  assert.equal(results[3]!.summary, "timed out after 200ms");
  assert.equal(results[3]!.timedOut, true);
  assert.ok(abortedHang, "the timed-out probe's signal was aborted");
  assert.equal(results[4]!.summary, "not checked: hangs is unchecked");
  assert.match(results[5]!.summary, /could not check: helm: not found/);
});

Deno.test("summarize: 0 healthy, 1 degraded (even with unchecked), 2 could not check", () => {
  const r = (name: string, status: "ok" | "degraded" | "unchecked" | "skipped") => ({
    name,
    group: "vm" as const,
    status,
    summary: status,
    elapsedMs: 1,
  });
  assert.equal(summarize("c", [r("a", "ok"), r("b", "skipped")]).exitCode, 0);
  const degraded = summarize("c", [r("a", "unchecked"), r("b", "degraded"), r("x", "ok")]);
  assert.equal(degraded.exitCode, 1);
  assert.deepEqual(degraded.problems, ["b", "a"]);
  assert.equal(summarize("c", [r("a", "unchecked"), r("b", "ok")]).exitCode, 2);
  assert.equal(summarize("c", []).exitCode, 2);
});

Deno.test("parsers: unit states, node conditions, leases", () => {
  assert.deepEqual(parseUnitStates(["a.service", "b.service"], "active\nactive\n"), {
    status: "ok",
    summary: "2 units active",
    detail: undefined,
  });
  assert.equal(
    parseUnitStates(["a.service", "b.service", "c.service"], "active\nfailed\n").summary,
    "b.service failed, c.service unknown",
  );
  const node = (ready: string, extra: object[] = []) => ({
    metadata: { name: "vm1" },
    status: {
      nodeInfo: { kubeletVersion: "v1.20.2" },
      conditions: [{ type: "Ready", status: ready, reason: "KubeletNotReady" }, ...extra],
    },
  });
  assert.equal(nodeOutcome(node("True"), "vm1").summary, "Ready, kubelet v1.20.2");
  assert.equal(nodeOutcome(node("Unknown"), "vm1").status, "degraded");
  assert.match(
    nodeOutcome(node("True", [{ type: "DiskPressure", status: "True" }]), "vm1").summary,
    /DiskPressure/,
  );
  assert.equal(nodeOutcome(undefined, "vm1").summary, "not registered with the apiserver");
  const withCidr = (podCIDR?: string) => ({ ...node("True"), spec: { podCIDR } });
  assert.equal(nodeOutcome(withCidr("10.200.0.0/24"), "vm1", "10.200.0.0/24").status, "ok");
  assert.deepEqual(nodeOutcome(withCidr("10.200.1.0/24"), "vm1", "10.200.0.0/24"), {
    status: "degraded",
    summary: 'pod CIDR "10.200.1.0/24", not its vms[].pod-cidr "10.200.0.0/24", kubelet v1.20.2',
    detail: undefined,
  });
  assert.match(nodeOutcome(withCidr(), "vm1", "10.200.0.0/24").summary, /^pod CIDR unset/);
  const now = Date.parse("2026-12-03T11:00:00Z");
  const lease = (renew: string) => ({
    status: 200,
    text: JSON.stringify({ spec: { holderIdentity: "vm1_abc", renewTime: renew } }),
  });
  assert.deepEqual(leaseOutcome(lease("2026-12-03T10:59:55Z"), now), {
    status: "ok",
    summary: "held by vm1_abc",
    detail: undefined,
  });
  assert.match(leaseOutcome(lease("2026-12-03T10:50:00Z"), now).summary, /not renewed for 10m/);
  // Stale once its own duration (and some clock skew) has passed since the last renewal.
  const short = (renew: string) => ({
    status: 200,
    text: JSON.stringify({
      spec: { holderIdentity: "vm1_abc", renewTime: renew, leaseDurationSeconds: 15 },
    }),
  });
  assert.equal(leaseOutcome(short("2026-12-03T10:59:45Z"), now).status, "ok");
  assert.match(leaseOutcome(short("2026-12-03T10:59:30Z"), now).summary, /not renewed for 30s/);
  assert.equal(leaseOutcome({ status: 404, text: "" }, now).summary, "no leader lease");
});

/** A two-node cluster behind fakes of every port; `broken` stops vm2 and fails a unit on vm1. */
function fakeCluster(broken: boolean) {
  const commands: string[] = [];
  const remote = (node: string): Remote => ({
    node,
    address: `${node}:22`,
    exec(command: string | readonly string[], _o?: ExecOptions) {
      const line = typeof command === "string" ? command : command.join(" ");
      commands.push(`${node}: ${line}`);
      if (broken && node === "vm2") return Promise.reject(new Error("ssh: connection refused"));
      if (line.startsWith("systemctl is-active")) {
        const units = line.replace(/; true$/, "").split(" ").slice(2);
        return Promise.resolve(
          result(
            units.map((u) => broken && u === "kube-scheduler.service" ? "failed" : "active").join(
              "\n",
            ),
          ),
        );
      }
      if (line.startsWith("journalctl")) return Promise.resolve(result("scheduler: bad flag"));
      if (line.includes("endpoint health")) {
        return Promise.resolve(
          result("https://127.0.0.1:2379 is healthy: successfully committed proposal: took = 2ms"),
        );
      }
      return Promise.resolve(result(""));
    },
    upload: () => Promise.resolve(),
    uploadFile: () => Promise.resolve(),
    pipe: () => Promise.resolve(),
    sha256: () => Promise.resolve(new Map()),
    close: () => Promise.resolve(),
  });
  const nodeJson = (name: string, ready: boolean) => ({
    metadata: { name },
    status: {
      nodeInfo: { kubeletVersion: "v1.20.2" },
      conditions: [{
        type: "Ready",
        status: ready ? "True" : "Unknown",
        reason: "NodeStatusUnknown",
      }],
    },
  });
  const kube: KubeApi = {
    request(_method: string, path: string) {
      if (path.startsWith("/readyz")) return Promise.resolve({ status: 200, text: "ok" });
      if (path === "/api/v1/nodes") {
        return Promise.resolve({
          status: 200,
          text: JSON.stringify({ items: [nodeJson("vm1", true), nodeJson("vm2", !broken)] }),
        });
      }
      if (path.includes("/leases/")) {
        return Promise.resolve({
          status: 200,
          text: JSON.stringify({
            spec: { holderIdentity: "vm1_x", renewTime: new Date().toISOString() },
          }),
        });
      }
      return Promise.resolve({ status: 404, text: "" });
    },
  };
  const runner: Runner = {
    run(argv: readonly string[], _o?: RunOptions) {
      commands.push(`host: ${argv.join(" ")}`);
      if (argv[0] === "helm") {
        return Promise.resolve(
          result(
            JSON.stringify([{ name: "cilium", namespace: "kube-system", status: "deployed" }]),
          ),
        );
      }
      return Promise.resolve(result("daemon set rolled out"));
    },
  };
  const deps: StatusDeps = {
    nodes: ["vm1", "vm2"],
    controller: "vm1",
    address: (n) => ({ ip: n === "vm1" ? "10.0.0.2" : "10.0.0.3", ssh: { host: "h", port: 22 } }),
    driver: {
      status: (n: string): Promise<VmState> =>
        Promise.resolve(broken && n === "vm2" ? "stopped" : "running"),
    },
    remote,
    units: (n) =>
      n === "vm1"
        ? ["containerd.service", "etcd.service", "kube-scheduler.service"]
        : ["containerd.service", "kubelet.service"],
    kube,
    etcdStaticPod: false,
    etcdctl: "etcdctl",
    runner,
    kubeconfig: "/k/admin.kubeconfig",
    addons: [{
      name: "cilium",
      release: "cilium",
      namespace: "kube-system",
      checks: [{ args: ["rollout", "status", "ds/cilium"], what: "ds cilium to roll out" }],
    }],
    commandTimeoutMs: 1000,
  };
  return { deps, commands };
}

Deno.test("cluster probes: a healthy cluster through fakes of every port exits 0", async () => {
  const { deps, commands } = fakeCluster(false);
  const report = summarize("c", await runProbes(clusterProbes(deps), { timeoutMs: 2000 }));
  assert.equal(report.exitCode, 0, formatStatus(report));
  assert.deepEqual(report.results.map((r) => r.name), [
    "vm/vm1",
    "ssh/vm1",
    "units/vm1",
    "vm/vm2",
    "ssh/vm2",
    "units/vm2",
    "apiserver",
    "etcd",
    "controller-manager",
    "scheduler",
    "node/vm1",
    "node/vm2",
    "addon/cilium",
  ]);
  assert.ok(
    commands.includes("host: kubectl --kubeconfig /k/admin.kubeconfig rollout status ds/cilium"),
  );
  assert.equal(commands.filter((c) => c.startsWith("host: helm")).length, 1, "one helm list");
  const text = formatStatus(report);
  assert.match(text, /^VMs:\n {2}CHECK\s+STATUS\s+FOUND\n {2}vm\/vm1\s+ok\s+running, 10\.0\.0\.2/);
  assert.match(text, /Cluster "c" is healthy \(13 checks in/);
});

Deno.test("cluster probes: a stopped node and a failed unit are both named (exit 1)", async () => {
  const { deps } = fakeCluster(true);
  const report = summarize("c", await runProbes(clusterProbes(deps), { timeoutMs: 2000 }));
  assert.equal(report.exitCode, 1);
  assert.deepEqual(report.problems, ["units/vm1", "vm/vm2", "node/vm2"]);
  const byName = new Map(report.results.map((r) => [r.name, r]));
  assert.equal(byName.get("ssh/vm2")!.status, "skipped");
  assert.equal(byName.get("units/vm1")!.summary, "kube-scheduler.service failed");
  assert.equal(byName.get("units/vm1")!.detail, "scheduler: bad flag");
  const text = formatStatus(report, { verbose: true });
  assert.match(
    text,
    /Cluster "c" is degraded: units\/vm1 \(kube-scheduler\.service failed\); vm\/vm2 \(stopped\); node\/vm2 \(not Ready/,
  );
  assert.match(text, /units\/vm1:\n {4}scheduler: bad flag/);
  assert.doesNotMatch(formatStatus(report, { verdict: false }), /Cluster "c"/);
});

Deno.test("cluster probes: no kubeconfig yet: the API probes could not check (exit 2)", async () => {
  const { deps } = fakeCluster(false);
  const report = summarize(
    "c",
    await runProbes(clusterProbes({ ...deps, kube: undefined, addons: [] }), { timeoutMs: 2000 }),
  );
  assert.equal(report.exitCode, 2);
  assert.deepEqual(report.problems, ["apiserver"]);
});
