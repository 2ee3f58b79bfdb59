import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { type Config, defaultConfig } from "../../lib/config/mod.ts";
import { DtkError } from "../../lib/errors/mod.ts";
import {
  etcdctlCommand,
  etcdGateCommand,
  NODE_PATHS,
  octal,
  renderApiserverRbac,
  type RenderInput,
  type RenderNode,
  renderNode,
  renderStep,
  type StepFiles,
  stepsForNode,
  updateEnvironment,
  updateHosts,
} from "../../lib/render/mod.ts";
import { assertGolden } from "./_golden.ts";

const NODES: RenderNode[] = [
  { name: "vm1", ip: "192.168.122.11", podCidr: "10.200.0.0/24" },
  { name: "vm2", ip: "192.168.122.12", podCidr: "10.200.1.0/24" },
  { name: "vm3", ip: "192.168.122.13", podCidr: "10.200.2.0/24" },
];

const BASE = defaultConfig({ dir: "/nonexistent" });

function variant(patch: {
  k8s?: Partial<Config["k8s"]>;
  versions?: Partial<Config["versions"]>;
}): Config {
  return {
    ...BASE,
    k8s: { ...BASE.k8s, ...patch.k8s },
    versions: { ...BASE.versions, ...patch.versions },
  };
}

/** The versions that run in the test harness (Debian 12 packages, Kubernetes built from source). */
const HARNESS_VERSIONS = { kubernetes: "v1.20.2", containerd: "1.6.20", etcd: "v3.4.23" };

const ALL = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kube-proxy",
] as const;

const CASES: Record<string, Config> = {
  "v1.35-systemd": BASE,
  "v1.35-systemd-kube-proxy-mirror": variant({
    k8s: {
      kubeProxy: true,
      containerdMirror: {
        enabled: true,
        name: "_default",
        config:
          '[host."http://192.168.0.49:8080"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n',
      },
    },
  }),
  "v1.35-static-all-kube-proxy": variant({
    k8s: { kubeProxy: true, containerizedCplane: [...ALL] },
  }),
  "v1.20-systemd-kube-proxy": variant({ k8s: { kubeProxy: true }, versions: HARNESS_VERSIONS }),
  "v1.20-static-subset": variant({
    k8s: { containerizedCplane: ["etcd", "kube-scheduler"] },
    versions: HARNESS_VERSIONS,
  }),
};

function input(config: Config, node: string): RenderInput {
  return { config, nodes: NODES, node };
}

/** A reviewable dump of everything a node gets: files, folders, binaries, PKI, units. */
function dump(steps: StepFiles[]): string {
  const out: string[] = [];
  for (const s of steps) {
    out.push(`##### step ${s.step} (${s.runMode})`);
    for (const d of s.dirs) out.push(`dir ${d.path} ${octal(d.mode)}`);
    for (const b of s.binaries) {
      out.push(
        b.kind === "file"
          ? `binary ${b.artifact}${b.member ? `:${b.member}` : ""} -> ${b.dest} ${octal(b.mode)}`
          : `binaries ${b.artifact}:${b.dir || "."}/* -> ${b.destDir}/ ${octal(b.mode)}`,
      );
    }
    for (const p of s.pki) {
      const id = "identity" in p.source ? ` ${p.source.identity}` : "";
      out.push(`pki ${p.source.kind}${id} -> ${p.path} ${octal(p.mode)}`);
    }
    if (s.units.length) out.push(`units ${s.units.join(" ")}`);
    if (s.activate.length) out.push(`activate ${s.activate.join(" && ")}`);
    for (const f of s.files) {
      out.push(`=== ${f.path} ${octal(f.mode)} ${f.owner ?? "root"}`, f.content.trimEnd());
    }
  }
  return `${out.join("\n")}\n`;
}

for (const [name, config] of Object.entries(CASES)) {
  for (const node of NODES) {
    Deno.test(`render golden ${name} ${node.name}`, async () => {
      await assertGolden(
        join("render", name, `${node.name}.txt`),
        dump(renderNode(input(config, node.name))),
      );
    });
  }
}

function allFiles(config: Config) {
  return NODES.flatMap((n) => renderNode(input(config, n.name)).flatMap((s) => s.files));
}

function file(config: Config, node: string, path: string): string {
  const found = renderNode(input(config, node)).flatMap((s) => s.files).find((f) =>
    f.path === path
  );
  ok(found, `no ${path} on ${node}`);
  return found.content;
}

Deno.test("render: every YAML and JSON output parses", () => {
  let yamlCount = 0;
  let jsonCount = 0;
  for (const config of Object.values(CASES)) {
    for (const f of allFiles(config)) {
      if (f.path.endsWith(".yaml")) {
        for (const doc of parseAllDocuments(f.content)) {
          if (!("errors" in doc)) throw new Error(`${f.path}: not a document`);
          deepStrictEqual(doc.errors, [], f.path);
          ok(doc.toJS() !== null, `${f.path} is empty`);
        }
        yamlCount++;
      }
      if (f.path.endsWith(".conflist")) {
        const parsed = JSON.parse(f.content);
        equal(parsed.plugins[0].type, "bridge");
        jsonCount++;
      }
    }
  }
  ok(yamlCount > 20 && jsonCount > 10, `${yamlCount} YAML, ${jsonCount} JSON files checked`);
  const rbac = parseAllDocuments(renderApiserverRbac()).map((d) => {
    if (!("errors" in d)) throw new Error("not a document");
    return d.toJS();
  });
  deepStrictEqual(rbac.map((d) => d.kind), ["ClusterRole", "ClusterRoleBinding"]);
  equal(rbac[1].subjects[0].name, "kubernetes");
  equal(rbac[1].roleRef.name, rbac[0].metadata.name);
});

Deno.test("render: the CNI conflist uses each node's own pod CIDR", () => {
  for (const node of NODES) {
    const conf = JSON.parse(file(BASE, node.name, NODE_PATHS.cniConflist));
    deepStrictEqual(conf.plugins[0].ipam.ranges, [[{ subnet: node.podCidr }]]);
  }
});

Deno.test("render: service CIDR, DNS IP, cluster domain and cluster CIDR come from config", () => {
  const config = variant({
    k8s: {
      serviceCidr: "10.96.0.0/16",
      clusterDns: "10.96.0.10",
      clusterDomain: "corp.internal",
      clusterCidr: "10.244.0.0/16",
      kubeProxy: true,
    },
  });
  const text = allFiles(config).map((f) => f.content).join("\n");
  ok(!text.includes("10.32.0"), "a hard-coded 10.32.0.x address leaked");
  ok(!text.includes("cluster.local"), "a hard-coded cluster.local leaked");
  const kubelet = parseAllDocuments(file(config, "vm2", NODE_PATHS.kubeletConfig))[0];
  if (!kubelet || !("toJS" in kubelet)) throw new Error("no kubelet config");
  deepStrictEqual(kubelet.toJS().clusterDNS, ["10.96.0.10"]);
  equal(kubelet.toJS().clusterDomain, "corp.internal");
  const proxy = parseAllDocuments(file(config, "vm3", NODE_PATHS.kubeProxyConfig))[0];
  if (!proxy || !("toJS" in proxy)) throw new Error("no kube-proxy config");
  equal(proxy.toJS().clusterCIDR, "10.244.0.0/16");
  const apiserver = file(config, "vm1", "/etc/systemd/system/kube-apiserver.service");
  match(apiserver, /--service-cluster-ip-range=10\.96\.0\.0\/16 /);
  const kcm = file(config, "vm1", "/etc/systemd/system/kube-controller-manager.service");
  match(kcm, /--cluster-cidr=10\.244\.0\.0\/16 /);
  match(kcm, /--service-cluster-ip-range=10\.96\.0\.0\/16 /);
});

Deno.test("render: etcd metrics listen on 2381 on the node IP and loopback", () => {
  for (const config of [BASE, CASES["v1.35-static-all-kube-proxy"]!]) {
    const etcd = allFiles(config).find((f) => f.path.includes("etcd."))?.content ?? "";
    match(etcd, /--listen-metrics-urls=http:\/\/192\.168\.122\.11:2381,http:\/\/127\.0\.0\.1:2381/);
    ok(!etcd.includes("2331"));
  }
});

Deno.test("render: ETCDCTL_API=3 only for the etcdctl versions that read it", () => {
  // 3.6 dropped etcdctl's v2 client and the code that consumed the variable: it would warn
  // "unrecognized environment variable" on every gate poll. 3.3 still defaulted to v2.
  for (const version of ["v3.6.7", "3.5.30", "3.4.23"]) {
    ok(!etcdGateCommand(version).includes("ETCDCTL_API"), version);
    ok(!etcdctlCommand(version).includes("ETCDCTL_API"), version);
  }
  match(etcdGateCommand("v3.3.27"), /^ETCDCTL_API=3 etcdctl /);
  match(
    etcdGateCommand("v3.6.7"),
    /^etcdctl --endpoints=https:\/\/127\.0\.0\.1:2379 .* member list$/,
  );
});

Deno.test("render: the etcd pod's liveness probe is /livez where etcd serves it", () => {
  // /health fails on a NOSPACE alarm, and restarting etcd frees no space (kubeadm probes /livez).
  const probe = (etcd: string) => {
    const config = variant({ k8s: { containerizedCplane: ["etcd"] }, versions: { etcd } });
    const pod = parseAllDocuments(file(config, "vm1", `${NODE_PATHS.staticPods}/etcd.yaml`))[0];
    if (!pod || !("toJS" in pod)) throw new Error("no etcd pod");
    return pod.toJS().spec.containers[0].livenessProbe.httpGet.path;
  };
  for (const etcd of ["v3.6.7", "3.5.11", "3.5.30", "3.4.29"]) equal(probe(etcd), "/livez", etcd);
  // Older members have no /livez: a 404 would fail every probe.
  for (const etcd of ["3.5.10", "v3.4.23"]) equal(probe(etcd), "/health?serializable=true", etcd);
});

Deno.test("render: containerd's cgroup driver matches the kubelet's", () => {
  for (const [name, config] of Object.entries(CASES)) {
    match(file(config, "vm2", NODE_PATHS.containerdConfig), /SystemdCgroup = true/, name);
    match(file(config, "vm2", NODE_PATHS.kubeletConfig), /cgroupDriver: systemd/, name);
  }
  const harness = {
    ...input(CASES["v1.20-systemd-kube-proxy"]!, "vm2"),
    overrides: { cgroupDriver: "cgroupfs" as const },
  };
  const files = renderNode(harness).flatMap((s) => s.files);
  match(
    files.find((f) => f.path === NODE_PATHS.containerdConfig)!.content,
    /SystemdCgroup = false/,
  );
  match(files.find((f) => f.path === NODE_PATHS.kubeletConfig)!.content, /cgroupDriver: cgroupfs/);
});

Deno.test("render: containerd config schema follows the containerd major version", () => {
  const v3 = file(BASE, "vm1", NODE_PATHS.containerdConfig);
  match(v3, /^version = 3$/m);
  match(v3, /io\.containerd\.cri\.v1\.runtime/);
  match(v3, /bin_dirs = \["\/opt\/cni\/bin"\]/);
  match(v3, /sandbox = "registry\.k8s\.io\/pause:3\.10"/);
  match(v3, /config_path = "\/etc\/containerd\/certs\.d"/);
  const v2 = file(CASES["v1.20-static-subset"]!, "vm1", NODE_PATHS.containerdConfig);
  match(v2, /^version = 2$/m);
  match(v2, /io\.containerd\.grpc\.v1\.cri/);
  match(v2, /bin_dir = "\/opt\/cni\/bin"/);
  ok(!v2.includes("enable_cdi"), "containerd 1.6 has no enable_cdi");
  match(v2, /sandbox_image = "registry\.k8s\.io\/pause:3\.10"/);
});

Deno.test("render: flags and config APIs follow the Kubernetes minor version", () => {
  const now = CASES["v1.35-systemd-kube-proxy-mirror"]!;
  const old = CASES["v1.20-systemd-kube-proxy"]!;
  const unit = (c: Config, name: string) => file(c, "vm1", `/etc/systemd/system/${name}.service`);
  // kubelet: the runtime endpoint moved from flags into the config in 1.27.
  ok(!unit(now, "kubelet").includes("--container-runtime"));
  match(
    file(now, "vm1", NODE_PATHS.kubeletConfig),
    /containerRuntimeEndpoint: unix:\/\/\/run\/containerd\/containerd\.sock/,
  );
  match(unit(old, "kubelet"), /--container-runtime=remote/);
  match(
    unit(old, "kubelet"),
    /--container-runtime-endpoint=unix:\/\/\/run\/containerd\/containerd\.sock/,
  );
  ok(!file(old, "vm1", NODE_PATHS.kubeletConfig).includes("containerRuntimeEndpoint"));
  // apiserver: --insecure-port has no effect from 1.20 (hidden) and was removed in 1.24.
  ok(!unit(now, "kube-apiserver").includes("insecure-port"));
  ok(!unit(old, "kube-apiserver").includes("insecure-port"));
  match(file(now, "vm1", NODE_PATHS.schedulerConfig), /kubescheduler\.config\.k8s\.io\/v1\n/);
  match(file(old, "vm1", NODE_PATHS.schedulerConfig), /kubescheduler\.config\.k8s\.io\/v1beta1\n/);
  throws(
    () => renderNode(input(variant({ versions: { kubernetes: "v1.19.0" } }), "vm1")),
    /older than dtk supports/,
  );
});

Deno.test("render: --container-runtime=remote only where its default is docker (before 1.24)", () => {
  const kubelet = (kubernetes: string) =>
    file(
      variant({ versions: { kubernetes } }),
      "vm1",
      "/etc/systemd/system/kubelet.service",
    );
  match(kubelet("v1.23.17"), / --container-runtime=remote /);
  // 1.24–1.26 default to remote and log a deprecation warning for the flag; 1.27 removed it.
  for (const version of ["v1.24.0", "v1.26.15", "v1.27.0", "v1.35.0"]) {
    ok(!kubelet(version).includes("--container-runtime="), version);
  }
  // The endpoint stays a flag until the config field exists (1.27).
  match(kubelet("v1.24.0"), /--container-runtime-endpoint=unix:/);
  ok(!kubelet("v1.27.0").includes("--container-runtime-endpoint"));
});

Deno.test("render: kube-proxy serves NodePorts on the primary node IP from 1.31", () => {
  const proxyConfig = (kubernetes: string) =>
    parseAllDocuments(
      file(
        variant({ k8s: { kubeProxy: true }, versions: { kubernetes } }),
        "vm2",
        NODE_PATHS.kubeProxyConfig,
      ),
    )[0]!.toJS();
  deepStrictEqual(proxyConfig("v1.35.0").nodePortAddresses, ["primary"]);
  deepStrictEqual(proxyConfig("v1.31.0").nodePortAddresses, ["primary"]);
  equal(proxyConfig("v1.30.14").nodePortAddresses, undefined);
  equal(proxyConfig("v1.20.2").nodePortAddresses, undefined);
});

/** A control-plane component's flags, from its systemd unit or its static pod. */
function componentFlags(config: Config, component: string): {
  flags: Map<string, string>;
  /** Host paths the static pod mounts (none for a unit: it sees the whole host). */
  mounts: string[] | undefined;
} {
  const pairs = (args: string[]) =>
    new Map(
      args.map((a) => /^--([a-z0-9-]+)=(.*)$/.exec(a)).filter((m) => m !== null).map((
        m,
      ) => [m[1]!, m[2]!]),
    );
  if (!config.k8s.containerizedCplane.includes(component as never)) {
    const unit = file(config, "vm1", `${NODE_PATHS.systemdDir}/${component}.service`);
    return { flags: pairs(unit.split(/\s+/)), mounts: undefined };
  }
  const doc =
    parseAllDocuments(file(config, "vm1", `${NODE_PATHS.staticPods}/${component}.yaml`))[0];
  if (!doc || !("toJS" in doc)) throw new Error(`no ${component} pod`);
  const spec = doc.toJS().spec;
  return {
    flags: pairs(spec.containers[0].command),
    mounts: spec.volumes.map((v: { hostPath: { path: string } }) => v.hostPath.path),
  };
}

const MODES = {
  "1.35 units": BASE,
  "1.20 units": CASES["v1.20-systemd-kube-proxy"]!,
  "1.35 static pods": CASES["v1.35-static-all-kube-proxy"]!,
  "1.20 static scheduler": CASES["v1.20-static-subset"]!,
};

Deno.test("render: controller-manager and scheduler check callers of their secure port through their own kubeconfig", () => {
  const own = {
    "kube-controller-manager": NODE_PATHS.controllerManagerKubeconfig,
    "kube-scheduler": NODE_PATHS.schedulerKubeconfig,
  };
  for (const [mode, config] of Object.entries(MODES)) {
    for (const [component, kubeconfig] of Object.entries(own)) {
      const { flags, mounts } = componentFlags(config, component);
      const what = `${component} (${mode})`;
      equal(flags.get("authentication-kubeconfig"), kubeconfig, what);
      equal(flags.get("authorization-kubeconfig"), kubeconfig, what);
      if (mounts === undefined) continue;
      // A static pod sees only what it mounts: every file a flag names must be under a mount.
      for (const [name, value] of flags) {
        if (!value.startsWith("/") || name === "authorization-always-allow-paths") continue;
        ok(mounts.some((m) => value.startsWith(`${m}/`)), `${what}: --${name}=${value} unmounted`);
      }
    }
  }
});

Deno.test("render: the controller-manager leaves node pod CIDRs to dtk (vms[].pod-cidr)", () => {
  for (const [mode, config] of Object.entries(MODES)) {
    equal(
      componentFlags(config, "kube-controller-manager").flags.get("allocate-node-cidrs"),
      "false",
      mode,
    );
  }
});

Deno.test("render: static-pod mode covers exactly the chosen components", () => {
  const config = CASES["v1.20-static-subset"]!;
  const steps = renderNode(input(config, "vm1"));
  const paths = steps.flatMap((s) => s.files.map((f) => f.path));
  ok(paths.includes(`${NODE_PATHS.staticPods}/etcd.yaml`));
  ok(paths.includes(`${NODE_PATHS.staticPods}/kube-scheduler.yaml`));
  ok(paths.includes("/etc/systemd/system/kube-apiserver.service"));
  ok(paths.includes("/etc/systemd/system/kube-controller-manager.service"));
  ok(!paths.includes("/etc/systemd/system/etcd.service"));
  ok(!paths.includes("/etc/systemd/system/kube-scheduler.service"));
  const byStep = Object.fromEntries(steps.map((s) => [s.step, s]));
  deepStrictEqual(byStep["kube-scheduler"]?.binaries, []);
  deepStrictEqual(byStep["kube-scheduler"]?.units, []);
  deepStrictEqual(byStep["etcd"]?.binaries.map((b) => b.kind === "file" ? b.member : ""), [
    "etcd-v3.4.23-linux-amd64/etcd",
    "etcd-v3.4.23-linux-amd64/etcdctl",
  ]);
  deepStrictEqual(byStep["kube-apiserver"]?.units, ["kube-apiserver.service"]);
  const pod = parseAllDocuments(file(config, "vm1", `${NODE_PATHS.staticPods}/etcd.yaml`))[0];
  if (!pod || !("toJS" in pod)) throw new Error("no etcd pod");
  equal(pod.toJS().spec.containers[0].image, "quay.io/coreos/etcd:v3.4.23");
  equal(pod.toJS().spec.hostNetwork, true);
});

Deno.test("render: workers get no control plane; kube-proxy only when enabled", () => {
  deepStrictEqual(stepsForNode(input(BASE, "vm2")), [
    "sysctl",
    "containerd",
    "crictl",
    "cni",
    "kubelet",
  ]);
  deepStrictEqual(stepsForNode(input(CASES["v1.35-static-all-kube-proxy"]!, "vm1")), [
    "sysctl",
    "containerd",
    "crictl",
    "cni",
    "kubelet",
    "kube-proxy",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
  ]);
  throws(() => renderStep("etcd", input(BASE, "vm2")), /does not run on node "vm2"/);
  throws(
    () => renderStep("kube-proxy", input(BASE, "vm1")),
    (e: unknown) => e instanceof DtkError && /kube-proxy: true/.test(e.hint ?? ""),
  );
  throws(() => renderNode(input(BASE, "vm9")), /"vm9" is not one of the cluster's nodes/);
});

Deno.test("render: secrets are placed 0600 and every path is absolute", () => {
  for (const config of Object.values(CASES)) {
    for (const node of NODES) {
      for (const s of renderNode(input(config, node.name))) {
        for (const p of s.pki) {
          ok(p.path.startsWith("/"));
          if (
            p.source.kind === "key" || p.source.kind === "kubeconfig" ||
            p.source.kind === "ca-key" ||
            p.source.kind === "encryption-config" || p.source.kind === "static-token"
          ) {
            equal(p.mode, 0o600, `${p.path} must be 0600`);
          }
        }
        for (const f of s.files) ok(f.path.startsWith("/") && f.content.endsWith("\n"), f.path);
      }
    }
  }
});

Deno.test("updateHosts: one managed block, idempotent, drops the original's duplicates", () => {
  const original = "127.0.0.1 localhost\n127.0.1.1 vm1\n192.168.122.11 vm1\n192.168.122.11   vm1\n";
  const once = updateHosts(original, NODES);
  equal(
    once,
    "127.0.0.1 localhost\n127.0.1.1 vm1\n" +
      "# BEGIN desktop-kubernetes nodes (managed by dtk, do not edit)\n" +
      "192.168.122.11 vm1\n192.168.122.12 vm2\n192.168.122.13 vm3\n" +
      "# END desktop-kubernetes nodes\n",
  );
  equal(updateHosts(once, NODES), once);
  const moved = updateHosts(once, [{ name: "vm1", ip: "10.1.1.1" }]);
  equal(moved.match(/BEGIN desktop-kubernetes/g)?.length, 1);
  ok(moved.includes("10.1.1.1 vm1\n") && !moved.includes("vm2"));
  equal(updateHosts("", NODES.slice(0, 1)).split("\n")[1], "192.168.122.11 vm1");
  // A BEGIN whose END was deleted is no block: the lines after it are kept, and stay kept.
  const begin = "# BEGIN desktop-kubernetes nodes (managed by dtk, do not edit)";
  const broken = `127.0.0.1 localhost\n${begin}\n10.0.0.1 nas.home\n# mine\n`;
  const fixed = updateHosts(broken, NODES.slice(0, 1));
  ok(fixed.startsWith(broken), fixed);
  equal(updateHosts(fixed, NODES.slice(0, 1)), fixed);
});

Deno.test("updateEnvironment: sets the containerd variables once", () => {
  const current = 'PATH="/usr/bin"\nCONTAINERD_NAMESPACE=default\nCONTAINERD_NAMESPACE=other\n';
  const once = updateEnvironment(current);
  equal(
    once,
    'PATH="/usr/bin"\nCONTAINERD_NAMESPACE=k8s.io\nCONTAINERD_ADDRESS=/run/containerd/containerd.sock\n',
  );
  equal(updateEnvironment(once), once);
  equal(
    updateEnvironment(""),
    "CONTAINERD_NAMESPACE=k8s.io\nCONTAINERD_ADDRESS=/run/containerd/containerd.sock\n",
  );
});

Deno.test("render: the apiserver gets an audit policy file with rules, dtk's or the config's", () => {
  for (const config of [BASE, CASES["v1.35-static-all-kube-proxy"]!]) {
    const files = renderNode(input(config, "vm1")).flatMap((s) => s.files);
    const policyFile = files.find((f) => f.path === NODE_PATHS.auditPolicy);
    ok(policyFile, "no audit policy on the controller");
    const policy = parseAllDocuments(policyFile.content)[0];
    if (!policy || !("toJS" in policy)) throw new Error("no policy document");
    const doc = policy.toJS();
    equal(doc.apiVersion, "audit.k8s.io/v1");
    equal(doc.kind, "Policy");
    ok(doc.rules.length > 0, "a policy without rules is refused by the apiserver");
    // The catch-all records metadata only: no secret ever lands in the log as a body.
    deepStrictEqual(doc.rules.at(-1), { level: "Metadata" });
    for (const rule of doc.rules) ok(["None", "Metadata"].includes(rule.level), rule.level);
    const apiserver = files.find((f) => f.path.includes("kube-apiserver."))?.content ?? "";
    ok(apiserver.includes(`--audit-policy-file=${NODE_PATHS.auditPolicy}`), "flag passed");
    ok(apiserver.includes(`--audit-log-path=${NODE_PATHS.auditLog}`));
  }
  // Workers get none.
  ok(
    !renderNode(input(BASE, "vm2")).flatMap((s) => s.files).some((f) =>
      f.path === NODE_PATHS.auditPolicy
    ),
  );
  const own = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n";
  equal(file(variant({ k8s: { auditPolicy: own } }), "vm1", NODE_PATHS.auditPolicy), own);
});

Deno.test("render: --runtime-config only when k8s.runtime-config sets it", () => {
  const unit = (config: Config) =>
    file(config, "vm1", "/etc/systemd/system/kube-apiserver.service");
  ok(!unit(BASE).includes("--runtime-config"), "no alpha APIs served by default");
  ok(!unit(BASE).includes("api/all"));
  match(
    unit(variant({ k8s: { runtimeConfig: "resource.k8s.io/v1beta2=true" } })),
    / --runtime-config=resource\.k8s\.io\/v1beta2=true /,
  );
});

Deno.test("render: k8s.resolv-conf is the kubelet's resolvConf", () => {
  const resolvConf = (config: Config) => {
    const doc = parseAllDocuments(file(config, "vm2", NODE_PATHS.kubeletConfig))[0];
    if (!doc || !("toJS" in doc)) throw new Error("no kubelet config");
    return doc.toJS().resolvConf;
  };
  equal(resolvConf(BASE), "/etc/resolv.conf");
  for (const versions of [{}, HARNESS_VERSIONS]) {
    equal(
      resolvConf(variant({ k8s: { resolvConf: "/run/systemd/resolve/resolv.conf" }, versions })),
      "/run/systemd/resolve/resolv.conf",
    );
  }
});
