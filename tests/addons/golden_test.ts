/**
 * Golden files of every add-on: the exact helm argument vector and kubectl work
 * (`<name>.plan.yaml`) and the values file (`<name>.values.yaml`), for the default config and
 * for a second config with other networks. Regenerate with `UPDATE_GOLDEN=1`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  type AddonName,
  ADDONS,
  type ClusterFacts,
  renderAddon,
  renderedDigest,
  renderInput,
} from "../../lib/addons/mod.ts";
import type { Config } from "../../lib/config/mod.ts";
import {
  DEFAULT_FACTS,
  defaultTestConfig,
  OTHER_FACTS,
  otherTestConfig,
  TEST_TOKEN,
} from "./_fixtures.ts";

const GOLDEN = join(import.meta.dirname!, "..", "testdata", "golden", "addons");
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
/** Stands for the config's folder, so golden files do not depend on where tests run. */
const DIR = "/config-dir";

function render(config: Config, facts: ClusterFacts, name: AddonName) {
  return renderAddon(name, renderInput(config, facts, name), {
    kubeconfig: `${DIR}/generated/${config.cluster.name}/kubeconfig/admin.kubeconfig`,
    chartPath: `/store/objects/sha256/<chart-${name}>`,
    helmTimeoutMs: 600_000,
  });
}

function planText(config: Config, facts: ClusterFacts, name: AddonName): string {
  const r = render(config, facts, name);
  return stringify({
    addon: name,
    release: r.release,
    namespace: r.namespace,
    chart: r.chart,
    valuesFile: r.valuesFile,
    valuesMode: `0${r.valuesMode.toString(8)}`,
    helmArgv: r.helmArgv,
    before: r.before,
    after: r.after,
    ready: r.ready,
    nodeSteps: r.nodeSteps,
  }, { lineWidth: 0 });
}

async function compare(file: string, actual: string): Promise<void> {
  const path = join(GOLDEN, file);
  if (UPDATE) {
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeTextFile(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = await Deno.readTextFile(path);
  } catch {
    throw new Error(`Golden file ${path} is missing; create it with UPDATE_GOLDEN=1`);
  }
  assert.equal(
    actual,
    expected,
    `${file} differs from the golden file (UPDATE_GOLDEN=1 to accept)`,
  );
}

const SETS: [string, (dir: string) => Config, ClusterFacts][] = [
  ["default", defaultTestConfig, DEFAULT_FACTS],
  ["other-networks", otherTestConfig, OTHER_FACTS],
];

for (const [set, makeConfig, facts] of SETS) {
  for (const name of ADDONS.keys()) {
    Deno.test(`add-on ${name}: helm argv and values match the golden files (${set})`, async () => {
      const config = makeConfig(DIR);
      await compare(`${set}/${name}.plan.yaml`, planText(config, facts, name));
      await compare(`${set}/${name}.values.yaml`, render(config, facts, name).valuesYaml);
    });
  }
}

Deno.test("rendering is deterministic and follows the config", () => {
  const a = defaultTestConfig(DIR);
  const b = otherTestConfig(DIR);
  for (const name of ADDONS.keys()) {
    assert.equal(
      renderedDigest(render(a, DEFAULT_FACTS, name)),
      renderedDigest(render(a, DEFAULT_FACTS, name)),
    );
  }
  // What the second config changes shows up where it must.
  const calico = render(b, OTHER_FACTS, "calico");
  assert.match(calico.valuesYaml, /cidr: 10\.244\.0\.0\/16/);
  const coredns = render(b, OTHER_FACTS, "coredns");
  assert.match(coredns.valuesYaml, /clusterIP: 10\.96\.0\.10/);
  assert.match(coredns.valuesYaml, /lab\.local in-addr\.arpa/);
  const ingress = render(b, OTHER_FACTS, "ingress-nginx");
  assert.match(ingress.valuesYaml, /enable-ssl-passthrough/);
  assert.doesNotMatch(render(a, DEFAULT_FACTS, "ingress-nginx").valuesYaml, /ssl-passthrough/);
  assert.equal(render(b, OTHER_FACTS, "cilium").chart.version, "1.18.4");
  // kube-proxy on: no eBPF patches; off: both (and the usage-reporting patch either way). The
  // endpoint ConfigMap comes with the chart (it must exist when the operator starts), never after.
  assert.equal(calico.after.length, 1);
  assert.equal(render(a, DEFAULT_FACTS, "calico").after.length, 3);
  assert.ok(!JSON.stringify(calico.after).includes("kubernetes-services-endpoint"));
  assert.deepEqual(render(a, DEFAULT_FACTS, "calico").values.kubernetesServiceEndpoint, {
    host: DEFAULT_FACTS.controllerIp,
    port: "6443",
  });
  assert.equal(
    (calico.values.installation as Record<string, unknown>).kubeletVolumePluginPath,
    "None",
  );
  assert.equal(calico.values.kubeletVolumePluginPath, undefined, "the chart ignores it there");
  // Static-pod etcd and scheduler need no endpoints; the systemd controller manager does.
  const prom = render(b, OTHER_FACTS, "kube-prometheus-stack").values;
  assert.equal(prom.kubeEtcd, undefined);
  assert.equal(prom.kubeScheduler, undefined);
  assert.deepEqual(prom.kubeControllerManager, { endpoints: ["172.16.5.20"] });
  assert.deepEqual(
    render(b, OTHER_FACTS, "vcluster").values,
    {
      controlPlane: { proxy: { extraSANs: ["172.16.5.20", "172.16.5.21"] } },
      telemetry: { enabled: false },
    },
  );
});

Deno.test("the admin token is the cluster's own, and only in 0600 values files", () => {
  const config = defaultTestConfig(DIR);
  const other = { ...DEFAULT_FACTS, adminToken: "ab".repeat(32) };
  for (const name of ADDONS.keys()) {
    const r = render(config, other, name);
    const hasToken = r.valuesYaml.includes("ab".repeat(32));
    assert.equal(hasToken, name === "headlamp" || name === "kubernetes-dashboard", name);
    assert.equal(r.valuesMode, hasToken ? 0o600 : 0o644, name);
    assert.ok(!r.valuesYaml.includes(TEST_TOKEN), name);
    // Nothing secret in argv (visible to every local user in ps).
    assert.ok(!r.helmArgv.join(" ").includes("ab".repeat(32)), name);
  }
  // The original's committed token never appears.
  const headlamp = render(config, DEFAULT_FACTS, "headlamp").valuesYaml;
  assert.ok(!headlamp.includes("18bb628a-9f6c-4cc6-aae3-3bf15a89ff62"));
});

Deno.test("helm argv: admin kubeconfig, values under generated/<cluster>/addons/<name>, bounded", () => {
  const config = otherTestConfig(DIR);
  for (const name of ADDONS.keys()) {
    const r = render(config, OTHER_FACTS, name);
    const argv = r.helmArgv;
    assert.deepEqual(argv.slice(0, 3), ["helm", "upgrade", "--install"]);
    assert.equal(
      argv[argv.indexOf("--kubeconfig") + 1],
      `${DIR}/generated/lab/kubeconfig/admin.kubeconfig`,
    );
    assert.equal(r.valuesFile, `${DIR}/generated/lab/addons/${name}/values.yaml`);
    assert.equal(argv[argv.indexOf("--values") + 1], r.valuesFile);
    assert.equal(argv[argv.indexOf("--timeout") + 1], "600s");
    assert.equal(argv.includes("--wait"), name !== "external-dns", name);
  }
});

Deno.test("nothing phones home: every chart's telemetry and update checks are off", () => {
  const config = defaultTestConfig(DIR);
  const values = (name: AddonName) => render(config, DEFAULT_FACTS, name).values;
  assert.deepEqual(values("openebs").analytics, { enabled: false });
  assert.deepEqual(values("nginx-gateway-fabric").nginxGateway, {
    productTelemetry: { enable: false },
  });
  assert.deepEqual(values("vcluster").telemetry, { enabled: false });
  assert.deepEqual(values("kubernetes-dashboard").kong, { env: { anonymous_reports: "off" } });
  const grafana = values("kube-prometheus-stack").grafana as Record<
    string,
    Record<string, unknown>
  >;
  assert.deepEqual(grafana["grafana.ini"]?.analytics, {
    check_for_updates: false,
    check_for_plugin_updates: false,
    reporting_enabled: false,
    feedback_links_enabled: false,
  });
  const calico = render(config, DEFAULT_FACTS, "calico").after;
  assert.ok(
    calico.some((a) =>
      a.kind === "kubectl" && a.args.includes(`--patch={"spec":{"usageReportingEnabled":false}}`)
    ),
  );
});
