/**
 * The installer against recording fakes of helm and kubectl on PATH (tests/addons/fakes): the
 * calls it makes, where it writes, and its bounded, named failures.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type AddonName,
  installAddon,
  installEnabledAddons,
  type InstallOptions,
  type NodeStep,
} from "../../lib/addons/mod.ts";
import type { Config } from "../../lib/config/mod.ts";
import { CommandError, PrerequisiteError, TimeoutError } from "../../lib/errors/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { startDnsWebhook } from "../../lib/dnswebhook/mod.ts";
import {
  DEFAULT_FACTS,
  defaultTestConfig,
  parseLog,
  type Sandbox,
  sandbox,
  TEST_TOKEN,
  TEST_WEBHOOK_TOKEN,
} from "./_fixtures.ts";

const FAST = { helmMs: 5_000, readyMs: 1_500, applyMs: 1_000, pollMs: 100, graceMs: 500 };

interface Setup {
  box: Sandbox;
  config: Config;
  kubeconfig: string;
  store: string;
  options: InstallOptions;
  nodeSteps: NodeStep[];
}

async function setup(env: Record<string, string> = {}): Promise<Setup> {
  const box = await sandbox(env);
  const configDir = join(box.dir, "project");
  await Deno.mkdir(configDir);
  const config = defaultTestConfig(configDir);
  const kubeconfig = join(configDir, "generated", "dtk", "kubeconfig", "admin.kubeconfig");
  await Deno.mkdir(join(kubeconfig, ".."), { recursive: true });
  await Deno.writeTextFile(kubeconfig, "apiVersion: v1\nkind: Config\n");
  const store = join(box.dir, "store");
  await Deno.mkdir(store);
  for (
    const name of [
      "chart-cilium",
      "chart-headlamp",
      "chart-nginx-gateway-fabric",
      "chart-external-dns",
      "chart-calico",
      "chart-coredns",
      "gateway-api-crds",
    ]
  ) {
    await Deno.writeTextFile(join(store, name), `fake ${name}\n`);
  }
  const nodeSteps: NodeStep[] = [];
  const options: InstallOptions = {
    config,
    facts: DEFAULT_FACTS,
    kubeconfig,
    runner: new LocalRunner(),
    artifactPath: (name) => join(store, name),
    runNodeStep: (step) => {
      nodeSteps.push(step);
      return Promise.resolve();
    },
    env: box.env,
    timeouts: FAST,
  };
  return { box, config, kubeconfig, store, options, nodeSteps };
}

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rel = prefix + entry.name;
    if (entry.isDirectory) out.push(...await listTree(join(dir, entry.name), `${rel}/`));
    else out.push(rel);
  }
  return out.sort();
}

Deno.test("installer: cilium runs helm with the admin kubeconfig, then waits for its rollouts", async () => {
  const s = await setup();
  try {
    const result = await installAddon("cilium", s.options);
    const calls = parseLog(await s.box.readLog());
    const valuesFile = join(
      s.config.source.dir,
      "generated",
      "dtk",
      "addons",
      "cilium",
      "values.yaml",
    );
    assert.deepEqual(calls[0], [
      "helm",
      "upgrade",
      "--install",
      "cilium",
      join(s.store, "chart-cilium"),
      "--namespace",
      "cilium",
      "--create-namespace",
      "--kubeconfig",
      s.kubeconfig,
      "--values",
      valuesFile,
      "--wait",
      "--timeout",
      "5s",
    ]);
    assert.deepEqual(calls.slice(1).map((c) => c.slice(0, 3)), [
      ["kubectl", "--kubeconfig", s.kubeconfig],
      ["kubectl", "--kubeconfig", s.kubeconfig],
    ]);
    assert.deepEqual(calls[1]!.slice(3, 8), [
      "-n",
      "cilium",
      "rollout",
      "status",
      "daemonset/cilium",
    ]);
    assert.deepEqual(calls[2]!.slice(3, 8), [
      "-n",
      "cilium",
      "rollout",
      "status",
      "deployment/cilium-operator",
    ]);
    assert.match(calls[1]!.at(-1)!, /^--timeout=[12]s$/);
    assert.match(await Deno.readTextFile(valuesFile), /k8sServiceHost: 192\.168\.122\.10/);
    assert.equal(result.release, "cilium");
    assert.equal(result.chartVersion, "1.18.5");
    // Nothing written outside generated/<cluster>/: no config edits, no files in the source tree.
    assert.deepEqual(await listTree(s.config.source.dir), [
      "generated/dtk/addons/cilium/values.yaml",
      "generated/dtk/kubeconfig/admin.kubeconfig",
    ]);
  } finally {
    await s.box.cleanup();
  }
});

Deno.test("installer: headlamp's values hold the token and are written 0600", async () => {
  const s = await setup();
  try {
    await installAddon("headlamp", s.options);
    const file = join(s.config.source.dir, "generated", "dtk", "addons", "headlamp", "values.yaml");
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.match(await Deno.readTextFile(file), new RegExp(`Bearer ${TEST_TOKEN}`));
    assert.ok(!(await s.box.readLog()).includes(TEST_TOKEN), "the token never appears in argv");
  } finally {
    await s.box.cleanup();
  }
});

Deno.test("installer: nginx-gateway-fabric applies the CRDs from the store first, then the Gateway", async () => {
  const s = await setup();
  try {
    await installAddon("nginx-gateway-fabric", s.options);
    const calls = parseLog(await s.box.readLog()).map((c) =>
      c[0] === "kubectl" ? c.slice(3).join(" ") : c.join(" ")
    );
    assert.match(calls[0]!, /^api-resources --api-group=gateway\.networking\.k8s\.io/);
    assert.equal(calls[1], `apply --server-side -f ${join(s.store, "gateway-api-crds")}`);
    assert.match(calls[2]!, /^helm upgrade --install nginx-gateway-fabric/);
    assert.equal(calls[3], "apply -f -");
    const log = await s.box.readLog();
    assert.ok(log.includes("    | kind: Gateway\n"), log);
    assert.ok(log.includes("    |   gatewayClassName: nginx\n"), log);
    assert.match(calls[5]!, /wait --for=condition=Programmed gateway\/dtk-gateway/);
  } finally {
    await s.box.cleanup();
  }
  // Served already: the CRDs are not applied again (the cluster may have newer ones).
  const t = await setup({ FAKE_API_RESOURCES: "gateways.gateway.networking.k8s.io\n" });
  try {
    await installAddon("nginx-gateway-fabric", t.options);
    assert.ok(!(await t.box.readLog()).includes("--server-side"));
  } finally {
    await t.box.cleanup();
  }
});

Deno.test("installer: a failing helm names the add-on and carries helm's output", async () => {
  const s = await setup({ FAKE_HELM_MODE: "fail" });
  try {
    const error = await installAddon("cilium", s.options).then(() => undefined, (e) => e);
    assert.ok(error instanceof CommandError, String(error));
    assert.match(
      error.message,
      /helm upgrade --install of add-on "cilium" failed with exit code 1/,
    );
    assert.match(error.stderrTail, /UPGRADE FAILED/);
    assert.match(error.hint ?? "", /helm status cilium --namespace cilium --kubeconfig /);
    // No readiness check after a failed helm.
    assert.equal(parseLog(await s.box.readLog()).length, 1);
    // A project path with a space and a quote: the printed command still pastes as it is.
    const odd = join(s.box.dir, "my project's $HOME", "admin.kubeconfig");
    await Deno.mkdir(join(odd, ".."));
    await Deno.copyFile(s.kubeconfig, odd);
    const again = await installAddon("cilium", { ...s.options, kubeconfig: odd })
      .then(() => undefined, (e) => e);
    assert.ok(again instanceof CommandError, String(again));
    assert.ok(
      (again.hint ?? "").includes(`--kubeconfig '${odd.replaceAll("'", `'\\''`)}'`),
      again.hint,
    );
  } finally {
    await s.box.cleanup();
  }
});

Deno.test("installer: a hanging helm is killed and reported as a named timeout", async () => {
  const s = await setup({ FAKE_HELM_MODE: "hang" });
  try {
    const started = performance.now();
    const options = { ...s.options, timeouts: { ...FAST, helmMs: 300 } };
    const error = await installAddon("coredns", options).then(() => undefined, (e) => e);
    assert.ok(error instanceof TimeoutError, String(error));
    assert.match(error.message, /waiting for add-on "coredns": helm release "coredns" to install/);
    assert.ok(performance.now() - started < 5_000);
  } finally {
    await s.box.cleanup();
  }
});

Deno.test("installer: a daemonset that never rolls out is a bounded timeout naming what was awaited", async () => {
  const s = await setup({ FAKE_KUBECTL_READY: "never" });
  try {
    const started = performance.now();
    const error = await installAddon("cilium", s.options).then(() => undefined, (e) => e);
    const elapsed = performance.now() - started;
    assert.ok(error instanceof TimeoutError, String(error));
    assert.equal(error.awaited, `add-on "cilium": daemonset "cilium" in "cilium" to roll out`);
    assert.equal(error.exitCode, 5);
    assert.match(error.hint ?? "", /timed out waiting for the condition/);
    assert.match(error.hint ?? "", /0 of 3 updated pods/);
    assert.ok(elapsed >= FAST.readyMs && elapsed < FAST.readyMs + 3_000, `took ${elapsed}ms`);
    // It polled more than once before giving up.
    const checks = parseLog(await s.box.readLog()).filter((c) => c.includes("rollout"));
    assert.ok(checks.length >= 2, `${checks.length} checks`);
  } finally {
    await s.box.cleanup();
  }
});

Deno.test("installer: a kubectl that hangs in a readiness check is killed at the bound", async () => {
  const s = await setup({ FAKE_KUBECTL_READY: "hang" });
  try {
    const started = performance.now();
    const error = await installAddon("coredns", s.options).then(() => undefined, (e) => e);
    assert.ok(error instanceof TimeoutError, String(error));
    assert.match(error.message, /deployment "coredns" in "kube-system" to roll out/);
    assert.ok(performance.now() - started < FAST.readyMs + FAST.graceMs + 4_000);
  } finally {
    await s.box.cleanup();
  }
});

Deno.test("installer: calico runs its node step, and retries a patch until the operator made its target", async () => {
  const s = await setup({ FAKE_FLAKY: "felixconfiguration", FAKE_FLAKY_TIMES: "2" });
  try {
    await installAddon("calico", s.options);
    assert.deepEqual(s.nodeSteps.map((n) => n.id), ["calico/network-manager"]);
    const patches = parseLog(await s.box.readLog()).filter((c) => c.includes("felixconfiguration"));
    // Usage reporting off (two failures, then it succeeds), then eBPF on.
    assert.equal(patches.length, 4);
  } finally {
    await s.box.cleanup();
  }
  // An action that never succeeds ends in a named timeout with kubectl's output.
  const t = await setup({ FAKE_FLAKY: "felixconfiguration", FAKE_FLAKY_TIMES: "1000" });
  try {
    const error = await installAddon("calico", t.options).then(() => undefined, (e) => e);
    assert.ok(error instanceof TimeoutError, String(error));
    assert.match(
      error.message,
      /add-on "calico": turn off usage reporting in FelixConfiguration "default" to succeed/,
    );
    assert.match(error.hint ?? "", /resource mapping not found/);
  } finally {
    await t.box.cleanup();
  }
  // Without node access, an add-on with node steps refuses before touching the cluster.
  const u = await setup();
  try {
    const error = await installAddon("calico", { ...u.options, runNodeStep: undefined })
      .then(() => undefined, (e) => e);
    assert.match(String(error?.message), /needs to run "calico\/network-manager" on the nodes/);
    assert.equal(await u.box.readLog(), "");
  } finally {
    await u.box.cleanup();
  }
});

Deno.test("installer: a chart missing from the store or a missing kubeconfig is a prerequisite error", async () => {
  const s = await setup();
  try {
    const error = await installAddon("openebs", s.options).then(() => undefined, (e) => e);
    assert.ok(error instanceof PrerequisiteError);
    assert.match(error.message, /chart of add-on "openebs" is not in the store/);
    const noKube = await installAddon("cilium", {
      ...s.options,
      kubeconfig: join(s.box.dir, "nope"),
    })
      .then(() => undefined, (e) => e);
    assert.ok(noKube instanceof PrerequisiteError);
    assert.equal(await s.box.readLog(), "");
  } finally {
    await s.box.cleanup();
  }
});

Deno.test("installer: external-dns configures the real DNS webhook, then drops the sidecar", async () => {
  const s = await setup();
  const hosts = join(s.box.dir, "hosts");
  await Deno.writeTextFile(hosts, "127.0.0.1 localhost\n");
  const server = await startDnsWebhook({
    token: TEST_WEBHOOK_TOKEN,
    hostname: "127.0.0.1",
    port: 0,
    hostsFile: hosts,
  });
  try {
    const config = structuredClone(s.config);
    config.dns.hostIp = "127.0.0.1";
    config.dns.webhookPort = server.port;
    await installAddon("external-dns", { ...s.options, config });
    assert.deepEqual(server.state().domains, ["dtk.io"]);
    assert.equal(server.state().clusterIp, DEFAULT_FACTS.controllerIp);
    const log = await s.box.readLog();
    const calls = parseLog(log);
    // The Secret with the URL and token goes first, through stdin: never on argv.
    assert.deepEqual(calls[0]!.slice(3), ["apply", "-f", "-"]);
    assert.ok(!calls.flat().some((a) => a.includes(TEST_WEBHOOK_TOKEN)), "token on argv");
    assert.ok(
      log.includes(`url: http://dtk:${TEST_WEBHOOK_TOKEN}@127.0.0.1:${server.port}`),
      log,
    );
    assert.ok(!calls[1]!.includes("--wait"), "helm must not wait for the sidecar");
    assert.ok(calls[2]!.join(" ").includes(`"$patch":"delete"`));
    assert.deepEqual(calls[3]!.slice(3, 8), [
      "-n",
      "external-dns",
      "rollout",
      "status",
      "deployment/external-dns",
    ]);
    // The values file names the Secret, never the token.
    const values = await Deno.readTextFile(
      join(s.config.source.dir, "generated", "dtk", "addons", "external-dns", "values.yaml"),
    );
    assert.match(values, /EXTERNAL_DNS_WEBHOOK_PROVIDER_URL/);
    assert.match(values, /dtk-dns-webhook/);
    assert.ok(!values.includes(TEST_WEBHOOK_TOKEN));
  } finally {
    await server.shutdown();
    await s.box.cleanup();
  }
  // A webhook with another token: refused, named, before helm.
  const other = await setup();
  const wrong = await startDnsWebhook({ token: "x".repeat(32), hostname: "127.0.0.1", port: 0 });
  try {
    const config = structuredClone(other.config);
    config.dns.hostIp = "127.0.0.1";
    config.dns.webhookPort = wrong.port;
    const error = await installAddon("external-dns", { ...other.options, config })
      .then(() => undefined, (e) => e);
    assert.match(String(error?.message), /answered 401/);
    assert.match(String(error?.hint), /another token/);
    assert.ok(!parseLog(await other.box.readLog()).some((c) => c[0] === "helm"));
  } finally {
    await wrong.shutdown();
    await other.box.cleanup();
  }
  // No webhook running: a clear error before helm runs.
  const t = await setup();
  try {
    const config = structuredClone(t.config);
    config.dns.hostIp = "127.0.0.1";
    config.dns.webhookPort = 9; // discard: nothing listens
    const error = await installAddon("external-dns", { ...t.options, config })
      .then(() => undefined, (e) => e);
    assert.match(String(error?.message), /cannot reach the DNS webhook/);
    assert.match(String(error?.hint), /dtk dns-webhook --port 9/);
    assert.equal(await t.box.readLog(), "");
  } finally {
    await t.box.cleanup();
  }
});

Deno.test("installer: enabled add-ons install in the config's order", async () => {
  const s = await setup();
  try {
    const config = structuredClone(s.config);
    const want: AddonName[] = ["cilium", "coredns", "nginx-gateway-fabric", "headlamp"];
    for (const a of config.addons) a.enabled = want.includes(a.name as AddonName);
    const results = await installEnabledAddons({ ...s.options, config });
    assert.deepEqual(results.map((r) => r.name), want);
    const releases = parseLog(await s.box.readLog()).filter((c) => c[0] === "helm").map((c) =>
      c[3]
    );
    assert.deepEqual(releases, ["cilium", "coredns", "nginx-gateway-fabric", "headlamp"]);
  } finally {
    await s.box.cleanup();
  }
});
