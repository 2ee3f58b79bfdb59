/**
 * Add-on order and dependencies: a table of good and bad lists through the config loader (which
 * holds the checks, from the data the registry uses), and the running-cluster checks of
 * `dtk install-addon`.
 */
import assert from "node:assert/strict";
import { stringify } from "yaml";
import { type AddonName, ADDONS, installProblems } from "../../lib/addons/mod.ts";
import { ADDON_NAMES, CNI_ADDONS } from "../../lib/config/mod.ts";
import { parseConfig } from "../../lib/config/parse.ts";
import { ConfigError } from "../../lib/errors/mod.ts";

interface Row {
  name: string;
  addons: (string | { name: string; enabled: boolean })[];
  /** A fragment of the one expected problem; undefined = valid. */
  error?: RegExp;
  hint?: RegExp;
  extra?: Record<string, unknown>;
}

const DNS = { dns: { domain: "dtk.io", "host-ip": "192.168.122.1", "webhook-port": 5000 } };

const TABLE: Row[] = [
  {
    name: "the original's default order",
    addons: [
      "cilium",
      "coredns",
      "nginx-gateway-fabric",
      "cert-manager",
      "kube-prometheus-stack",
      "headlamp",
      "metrics-server",
      "openebs",
    ],
  },
  { name: "calico instead of cilium", addons: ["calico", "coredns", "metrics-server"] },
  {
    // ingress-nginx (and kubernetes-dashboard, which needs it) cannot run beside the Gateway.
    name: "everything but one CNI and the Ingress pair",
    addons: [
      "cilium",
      "coredns",
      "nginx-gateway-fabric",
      "cert-manager",
      "external-dns",
      "kube-prometheus-stack",
      "headlamp",
      "metrics-server",
      "openebs",
      "nfs-provisioner",
      "vcluster",
    ],
    extra: DNS,
  },
  {
    name: "the Ingress pair instead of the Gateway",
    addons: ["cilium", "coredns", "ingress-nginx", "cert-manager", "kubernetes-dashboard"],
  },
  {
    name: "ingress-nginx beside nginx-gateway-fabric",
    addons: ["cilium", "ingress-nginx", "nginx-gateway-fabric"],
    error: /"ingress-nginx" and "nginx-gateway-fabric" cannot both be enabled: both take port 80/,
    hint: /Disable one of them/,
  },
  {
    name: "vcluster without a default StorageClass",
    addons: ["cilium", "vcluster"],
    error: /"vcluster" needs a storage add-on \("openebs" or "nfs-provisioner"\)/,
    hint: /PersistentVolumeClaim needs a default StorageClass/,
  },
  {
    name: "vcluster before openebs",
    addons: ["cilium", "vcluster", "openebs"],
    error: /"vcluster" is installed before "openebs"/,
  },
  { name: "vcluster after nfs-provisioner", addons: ["cilium", "nfs-provisioner", "vcluster"] },
  {
    name: "disabled entries do not count",
    addons: [{ name: "headlamp", enabled: false }, "cilium", "coredns"],
  },
  {
    name: "CoreDNS before the CNI",
    addons: ["coredns", "cilium"],
    error: /"coredns" comes before the CNI "cilium"/,
    hint: /Move "cilium" to the top/,
  },
  {
    name: "two CNIs",
    addons: ["cilium", "calico", "coredns"],
    error: /Only one CNI may be enabled/,
    hint: /Disable one/,
  },
  {
    name: "headlamp before nginx-gateway-fabric",
    addons: ["cilium", "headlamp", "nginx-gateway-fabric"],
    error: /"headlamp" is installed before "nginx-gateway-fabric"/,
    hint: /Move "nginx-gateway-fabric" above "headlamp"/,
  },
  {
    name: "headlamp without nginx-gateway-fabric",
    addons: ["cilium", "headlamp"],
    error: /"headlamp" needs "nginx-gateway-fabric", which is not enabled/,
  },
  {
    name: "dashboard before cert-manager",
    addons: ["cilium", "ingress-nginx", "kubernetes-dashboard", "cert-manager"],
    error: /"kubernetes-dashboard" is installed before "cert-manager"/,
  },
  {
    name: "dashboard without ingress-nginx",
    addons: ["cilium", "cert-manager", "kubernetes-dashboard"],
    error: /needs "ingress-nginx"/,
  },
  {
    name: "external-dns without dns.host-ip",
    addons: ["cilium", "external-dns"],
    error: /needs "dns.host-ip"/,
  },
  { name: "an unknown add-on", addons: ["cilium", "flannel"], error: /Unknown add-on "flannel"/ },
  { name: "an add-on twice", addons: ["cilium", "coredns", "coredns"], error: /listed twice/ },
];

function configText(row: Row): string {
  return stringify({
    addons: row.addons.map((a) => typeof a === "string" ? { name: a, enabled: true } : a),
    ...row.extra,
  });
}

for (const row of TABLE) {
  Deno.test(`add-on order: ${row.name} → ${row.error ? "config error" : "valid"}`, () => {
    const parse = () => parseConfig(configText(row), { file: "/x/config.yaml", dir: "/x" });
    if (row.error === undefined) {
      parse();
      return;
    }
    assert.throws(parse, (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      const issue = error.issues.find((i) => row.error!.test(i.message));
      assert.ok(issue, error.issues.map((i) => i.message).join("\n"));
      assert.equal(error.exitCode, 2);
      assert.ok(issue.line > 0, "points at a line of the file");
      if (row.hint) assert.match(issue.hint ?? "", row.hint);
      return true;
    });
  });
}

Deno.test("registry and config agree: one definition per name, CNIs and dependencies the same", () => {
  assert.deepEqual([...ADDONS.keys()], [...ADDON_NAMES]);
  for (const def of ADDONS.values()) {
    assert.equal(def.cni, CNI_ADDONS.includes(def.name), def.name);
    for (const needed of def.requires) assert.ok(ADDONS.has(needed));
  }
});

Deno.test("install-addon on a running cluster: missing prerequisites and a second CNI", () => {
  const cases: [AddonName, AddonName[], RegExp[]][] = [
    ["headlamp", ["cilium", "nginx-gateway-fabric"], []],
    ["headlamp", ["cilium"], [/needs "nginx-gateway-fabric", which is not installed/]],
    ["kubernetes-dashboard", ["cilium"], [/needs "ingress-nginx"/, /needs "cert-manager"/]],
    ["calico", ["cilium", "coredns"], [/already has the CNI "cilium"/]],
    ["cilium", ["cilium"], []],
    ["metrics-server", [], []],
    ["vcluster", ["cilium"], [/needs one of "openebs", "nfs-provisioner"/]],
    ["vcluster", ["cilium", "nfs-provisioner"], []],
    ["nginx-gateway-fabric", ["cilium", "ingress-nginx"], [/already has "ingress-nginx"/]],
    ["ingress-nginx", ["cilium", "nginx-gateway-fabric"], [/already has "nginx-gateway-fabric"/]],
  ];
  for (const [name, installed, expected] of cases) {
    const problems = installProblems(name, new Set(installed));
    assert.equal(problems.length, expected.length, `${name}: ${problems.join("; ")}`);
    expected.forEach((re, i) => assert.match(problems[i]!, re));
  }
});
