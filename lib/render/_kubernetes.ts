/**
 * Kubernetes components: kubelet and kube-proxy on every node; etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler on the controller, as systemd units or static pods.
 * Flags follow the upstream spec §4.10–4.12, with the service CIDR, DNS IP, cluster domain and
 * cluster CIDR from config, and per-version differences from `kubeFeatures`.
 *
 * @module
 */
import type { CplaneComponent } from "../config/types.ts";
import { etcdFeatures, kubeFeatures } from "./_version.ts";
import { LOCAL_BIN, NODE_PATHS } from "./_paths.ts";
import { flagArgs, type Flags, renderUnit, yamlDoc } from "./_text.ts";
import type { RenderConfig, RenderNode, RenderOverrides } from "./_types.ts";

const P = NODE_PATHS;

function withV(version: string): string {
  return version.startsWith("v") ? version : `v${version}`;
}

/** The image of a containerized component (overridable, e.g. for locally imported images). */
export function componentImage(
  component: CplaneComponent,
  config: RenderConfig,
  overrides: RenderOverrides = {},
): string {
  const override = overrides.images?.[component];
  if (override) return override;
  if (component === "etcd") return `quay.io/coreos/etcd:${withV(config.versions.etcd)}`;
  return `registry.k8s.io/${component}:${withV(config.versions.kubernetes)}`;
}

function clusterDnsIps(config: RenderConfig): string[] {
  return config.k8s.clusterDns.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

// ---------------------------------------------------------------- kubelet

export function renderKubeletConfig(
  config: RenderConfig,
  overrides: RenderOverrides = {},
): string {
  const features = kubeFeatures(config.versions.kubernetes);
  const doc: Record<string, unknown> = {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: P.caCert },
    },
    authorization: { mode: "Webhook" },
    cgroupDriver: overrides.cgroupDriver ?? "systemd",
    clusterDNS: clusterDnsIps(config),
    clusterDomain: config.k8s.clusterDomain,
    ...(features.runtimeEndpointInConfig
      ? { containerRuntimeEndpoint: `unix://${P.containerdSocket}` }
      : {}),
    // The field exists from 1.27 (the same release that moved the runtime endpoint here);
    // older kubelets know only the flag, whose default is true.
    ...(features.runtimeEndpointInConfig ? { registerNode: true } : {}),
    resolvConf: config.k8s.resolvConf,
    runtimeRequestTimeout: "15m",
    staticPodPath: P.staticPods,
    tlsCertFile: P.kubeletCert,
    tlsPrivateKeyFile: P.kubeletKey,
    ...overrides.kubelet,
  };
  return yamlDoc(doc);
}

export function renderKubeletUnit(config: RenderConfig, node: RenderNode): string {
  const features = kubeFeatures(config.versions.kubernetes);
  const flags: [string, string][] = [
    ["config", P.kubeletConfig],
    ["kubeconfig", P.kubeletKubeconfig],
  ];
  if (features.containerRuntimeFlag) flags.push(["container-runtime", "remote"]);
  if (!features.runtimeEndpointInConfig) {
    flags.push(["container-runtime-endpoint", `unix://${P.containerdSocket}`]);
  }
  // The original relies on /etc/hosts for the node IP and on the OS hostname for the node name;
  // both are stated here so that a second interface or a different hostname cannot change them.
  flags.push(["hostname-override", node.name], ["node-ip", node.ip], ["v", "2"]);
  return renderUnit({
    description: "Kubernetes Kubelet",
    documentation: "https://github.com/kubernetes/kubernetes",
    after: ["containerd.service"],
    requires: ["containerd.service"],
    exec: [`${LOCAL_BIN}/kubelet`, ...flagArgs(flags)],
    post: ["Restart=on-failure", "RestartSec=5"],
  });
}

// ---------------------------------------------------------------- kube-proxy

export function renderKubeProxyConfig(
  config: RenderConfig,
  node: RenderNode,
  overrides: RenderOverrides = {},
): string {
  const features = kubeFeatures(config.versions.kubernetes);
  return yamlDoc({
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    clientConnection: { kubeconfig: P.kubeProxyKubeconfig },
    // The original renders this empty (a bug): kube-proxy then cannot tell pod from outside traffic.
    clusterCIDR: config.k8s.clusterCidr,
    hostnameOverride: node.name,
    metricsBindAddress: "0.0.0.0:10249",
    mode: "iptables",
    // The node IP the kubelet registers (--node-ip), which is where dtk's NodePorts are reached.
    ...(features.kubeProxyPrimaryNodePorts ? { nodePortAddresses: ["primary"] } : {}),
    ...overrides.kubeProxy,
  });
}

function kubeProxyArgs(): string[] {
  return flagArgs([["config", P.kubeProxyConfig]]);
}

export function renderKubeProxyUnit(): string {
  return renderUnit({
    description: "Kubernetes Kube Proxy",
    documentation: "https://github.com/kubernetes/kubernetes",
    after: ["network-online.target"],
    wants: ["network-online.target"],
    exec: [`${LOCAL_BIN}/kube-proxy`, ...kubeProxyArgs()],
    post: ["Restart=on-failure", "RestartSec=5"],
  });
}

// ---------------------------------------------------------------- etcd

/** etcd flags: metrics on 2381 on both the node IP and loopback (the original has 2331). */
export function etcdFlags(controller: RenderNode): Flags {
  const ip = controller.ip;
  return [
    ["name", controller.name],
    ["advertise-client-urls", `https://${ip}:2379`],
    ["listen-client-urls", `https://${ip}:2379,https://127.0.0.1:2379`],
    ["listen-peer-urls", `https://${ip}:2380,https://127.0.0.1:2380`],
    ["initial-advertise-peer-urls", `https://${ip}:2380`],
    ["initial-cluster", `${controller.name}=https://${ip}:2380`],
    ["initial-cluster-state", "new"],
    ["initial-cluster-token", "etcd-cluster-0"],
    ["listen-metrics-urls", `http://${ip}:2381,http://127.0.0.1:2381`],
    ["data-dir", P.etcdDataDir],
    ["cert-file", P.etcdCert],
    ["key-file", P.etcdKey],
    ["peer-cert-file", P.etcdCert],
    ["peer-key-file", P.etcdKey],
    ["trusted-ca-file", P.etcdCaCert],
    ["peer-trusted-ca-file", P.etcdCaCert],
    ["client-cert-auth"],
    ["peer-client-cert-auth"],
    ["logger", "zap"],
    ["log-level", "info"],
    ["log-outputs", "stderr"],
  ];
}

/**
 * etcdctl on the controller, over mTLS on loopback with the certificate the apiserver uses;
 * `ETCDCTL_API=3` only for the etcdctl versions that need it (see `etcdFeatures`).
 */
export function etcdctlCommand(etcdVersion: string): string {
  const env = etcdFeatures(etcdVersion).etcdctlApiEnv ? "ETCDCTL_API=3 " : "";
  return `${env}etcdctl --endpoints=https://127.0.0.1:2379 --cacert=${P.etcdCaCert} ` +
    `--cert=${P.etcdCert} --key=${P.etcdKey}`;
}

/** etcd's health gate, run on the controller. Passes once the output names the node's member. */
export function etcdGateCommand(etcdVersion: string): string {
  return `${etcdctlCommand(etcdVersion)} member list`;
}

export function renderEtcdUnit(controller: RenderNode): string {
  return renderUnit({
    description: "etcd",
    documentation: "https://github.com/etcd-io/etcd",
    after: ["network-online.target"],
    wants: ["network-online.target"],
    pre: ["Type=notify"],
    exec: [`${LOCAL_BIN}/etcd`, ...flagArgs(etcdFlags(controller))],
    post: ["Restart=on-failure", "RestartSec=5"],
  });
}

// ---------------------------------------------------------------- kube-apiserver

export const ADMISSION_PLUGINS = [
  "NamespaceLifecycle",
  "NodeRestriction",
  "LimitRanger",
  "ServiceAccount",
  "DefaultStorageClass",
  "ResourceQuota",
] as const;

export function apiserverFlags(config: RenderConfig, controller: RenderNode): Flags {
  const features = kubeFeatures(config.versions.kubernetes);
  const flags: (readonly [string, string] | readonly [string])[] = [
    ["advertise-address", controller.ip],
    ["allow-privileged", "true"],
    ["audit-log-maxage", "30"],
    ["audit-log-maxbackup", "3"],
    ["audit-log-maxsize", "100"],
    ["audit-log-path", P.auditLog],
    // Without a policy the apiserver records nothing ("No audit policy file provided, no events
    // will be recorded for log backend", k8s.io/apiserver pkg/server/options/audit.go): the
    // log flags alone are inert.
    ["audit-policy-file", P.auditPolicy],
    ["authorization-mode", "Node,RBAC"],
    ["bind-address", "0.0.0.0"],
    ["client-ca-file", P.caCert],
    ["enable-admission-plugins", ADMISSION_PLUGINS.join(",")],
    ["enable-aggregator-routing", "true"],
    ["encryption-provider-config", P.encryptionConfig],
    ["etcd-cafile", P.caCert],
    ["etcd-certfile", P.apiserverCert],
    ["etcd-keyfile", P.apiserverKey],
    ["etcd-servers", `https://${controller.ip}:2379`],
    ["event-ttl", "1h"],
  ];
  if (features.insecurePortFlag) flags.push(["insecure-port", "0"]);
  flags.push(
    ["kubelet-certificate-authority", P.caCert],
    ["kubelet-client-certificate", P.apiserverCert],
    ["kubelet-client-key", P.apiserverKey],
    // Kubelet serving certificates name the node IP; reaching kubelets by IP needs no DNS.
    ["kubelet-preferred-address-types", "InternalIP,Hostname,ExternalIP"],
    ["proxy-client-cert-file", P.aggregatorCert],
    ["proxy-client-key-file", P.aggregatorKey],
    ["requestheader-allowed-names", "aggregator"],
    ["requestheader-client-ca-file", P.caCert],
    ["requestheader-extra-headers-prefix", "X-Remote-Extra-"],
    ["requestheader-group-headers", "X-Remote-Group"],
    ["requestheader-username-headers", "X-Remote-User"],
  );
  // The original's `api/all=true` enables every registered group version, alpha ones included
  // (apiserver resourceconfig helpers.go: the `api/all` matcher is `return true`, applied with
  // EnableMatchingVersions), so a 1.35 apiserver would serve alpha APIs whose feature gates are
  // off and beta APIs upstream keeps off by default. No add-on of dtk needs one: not passed
  // unless `k8s.runtime-config` asks for a version.
  if (config.k8s.runtimeConfig !== undefined) {
    flags.push(["runtime-config", config.k8s.runtimeConfig]);
  }
  flags.push(
    ["service-account-issuer", "https://kubernetes.default.svc"],
    ["service-account-key-file", P.serviceAccountKey],
    ["service-account-signing-key-file", P.serviceAccountKey],
    ["service-cluster-ip-range", config.k8s.serviceCidr],
    ["service-node-port-range", "30000-32767"],
    ["tls-cert-file", P.apiserverCert],
    ["tls-private-key-file", P.apiserverKey],
    ["token-auth-file", P.staticTokenFile],
    ["v", "2"],
  );
  return flags;
}

function controlPlaneUnit(
  name: string,
  description: string,
  flags: Flags,
  extra: { after?: string[] } = {},
): string {
  return renderUnit({
    description,
    documentation: "https://github.com/kubernetes/kubernetes",
    after: extra.after ?? ["network-online.target"],
    wants: ["network-online.target"],
    exec: [`${LOCAL_BIN}/${name}`, ...flagArgs(flags)],
    post: ["Restart=on-failure", "RestartSec=5"],
  });
}

export function renderApiserverUnit(config: RenderConfig, controller: RenderNode): string {
  return controlPlaneUnit(
    "kube-apiserver",
    "Kubernetes API Server",
    apiserverFlags(config, controller),
    { after: ["network-online.target", "etcd.service"] },
  );
}

/**
 * dtk's audit policy: request metadata (who, what, when, response code) for every request, never
 * a request or response body (secrets, tokens and configmaps pass through here), without the
 * probes, the leader-election renewals and the events that would otherwise fill the log with a
 * line every second or two on an idle cluster.
 */
export const DEFAULT_AUDIT_POLICY = {
  apiVersion: "audit.k8s.io/v1",
  kind: "Policy",
  // Every request also has a ResponseComplete event with the same metadata.
  omitStages: ["RequestReceived"],
  rules: [
    {
      level: "None",
      nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics", "/openapi*"],
    },
    {
      level: "None",
      verbs: ["get", "update"],
      resources: [{ group: "coordination.k8s.io", resources: ["leases"] }],
    },
    {
      level: "None",
      resources: [{ group: "", resources: ["events"] }, {
        group: "events.k8s.io",
        resources: ["events"],
      }],
    },
    { level: "Metadata" },
  ],
} as const;

/** The audit policy file: `k8s.audit-policy` verbatim, else dtk's default. */
export function renderAuditPolicy(config: RenderConfig): string {
  const own = config.k8s.auditPolicy;
  if (own !== undefined) return own.endsWith("\n") ? own : `${own}\n`;
  return yamlDoc(DEFAULT_AUDIT_POLICY);
}

// ---------------------------------------------------------------- kube-controller-manager

// The secure ports (10257, 10259) authenticate and authorize callers through the apiserver
// (TokenReview, SubjectAccessReview, and the client CA from the kube-system ConfigMap
// extension-apiserver-authentication); without `--authentication-kubeconfig` and
// `--authorization-kubeconfig` they refuse everything outside the always-allow paths. kubeadm
// points both at the component's own kubeconfig; so does dtk. The bootstrap RBAC already grants
// what that needs: the ClusterRoles system:kube-controller-manager and system:kube-scheduler
// create tokenreviews and subjectaccessreviews, and the RoleBinding
// kube-system/system::extension-apiserver-authentication-reader binds both users (kubernetes
// plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go and
// testdata/namespace-role-bindings.yaml, v1.20.2 and v1.35.0).
function delegatedAuthFlags(kubeconfig: string): Flags {
  return [["authentication-kubeconfig", kubeconfig], ["authorization-kubeconfig", kubeconfig]];
}

export function controllerManagerFlags(config: RenderConfig): Flags {
  return [
    // `vms[].pod-cidr` is the one truth of a node's pod subnet: the fallback bridge CNI uses it,
    // and dtk writes it into node.spec.podCIDR(s) as each node registers (cluster create's
    // nodes-ready gate), for Cilium's `kubernetes` IPAM and anything else that reads the spec.
    // The node-IPAM controller would instead hand out subnets in registration order.
    ["allocate-node-cidrs", "false"],
    ...delegatedAuthFlags(P.controllerManagerKubeconfig),
    ["authorization-always-allow-paths", "/healthz,/readyz,/livez,/metrics"],
    ["bind-address", "0.0.0.0"],
    ["cluster-cidr", config.k8s.clusterCidr],
    ["cluster-name", "kubernetes"],
    ["cluster-signing-cert-file", P.caCert],
    ["cluster-signing-key-file", P.caKey],
    ["kubeconfig", P.controllerManagerKubeconfig],
    ["leader-elect", "true"],
    ["root-ca-file", P.caCert],
    ["service-account-private-key-file", P.serviceAccountKey],
    ["service-cluster-ip-range", config.k8s.serviceCidr],
    ["use-service-account-credentials", "true"],
    ["v", "2"],
  ];
}

export function renderControllerManagerUnit(config: RenderConfig): string {
  return controlPlaneUnit(
    "kube-controller-manager",
    "Kubernetes Controller Manager",
    controllerManagerFlags(config),
  );
}

// ---------------------------------------------------------------- kube-scheduler

export function renderSchedulerConfig(config: RenderConfig): string {
  const features = kubeFeatures(config.versions.kubernetes);
  return yamlDoc({
    apiVersion: `kubescheduler.config.k8s.io/${features.schedulerConfigApi}`,
    kind: "KubeSchedulerConfiguration",
    clientConnection: { kubeconfig: P.schedulerKubeconfig },
    leaderElection: { leaderElect: true },
  });
}

// Flags, not KubeSchedulerConfiguration: neither its v1beta1 (1.20) nor its v1 (1.35) has
// authentication or authorization fields; they are command-line options of the secure serving
// only, in both versions (kubeadm passes them as flags too).
export function schedulerFlags(): Flags {
  return [
    ["config", P.schedulerConfig],
    ...delegatedAuthFlags(P.schedulerKubeconfig),
    ["authorization-always-allow-paths", "/healthz,/readyz,/livez,/metrics"],
    ["v", "2"],
  ];
}

export function renderSchedulerUnit(): string {
  return controlPlaneUnit("kube-scheduler", "Kubernetes Scheduler", schedulerFlags());
}

// ---------------------------------------------------------------- static pods

interface Mount {
  name: string;
  path: string;
  readOnly: boolean;
  type?: string;
}

interface PodSpec {
  component: CplaneComponent;
  image: string;
  command: string[];
  cpu: string;
  mounts: Mount[];
  probe?: { host: string; path: string; port: number; scheme: "HTTP" | "HTTPS" };
  privileged?: boolean;
}

function staticPod(spec: PodSpec): string {
  const container: Record<string, unknown> = {
    name: spec.component,
    image: spec.image,
    imagePullPolicy: "IfNotPresent",
    command: spec.command,
    resources: { requests: { cpu: spec.cpu } },
  };
  if (spec.probe) {
    container.livenessProbe = {
      httpGet: spec.probe,
      initialDelaySeconds: 10,
      periodSeconds: 10,
      timeoutSeconds: 15,
      failureThreshold: 8,
    };
  }
  if (spec.privileged) container.securityContext = { privileged: true };
  container.volumeMounts = spec.mounts.map((m) => ({
    name: m.name,
    mountPath: m.path,
    readOnly: m.readOnly,
  }));
  return yamlDoc({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: spec.component,
      namespace: "kube-system",
      labels: { component: spec.component, tier: "control-plane" },
    },
    spec: {
      hostNetwork: true,
      priorityClassName: "system-node-critical",
      containers: [container],
      volumes: spec.mounts.map((m) => ({
        name: m.name,
        hostPath: { path: m.path, type: m.type ?? "DirectoryOrCreate" },
      })),
    },
  });
}

export function renderEtcdPod(
  config: RenderConfig,
  controller: RenderNode,
  overrides: RenderOverrides = {},
): string {
  return staticPod({
    component: "etcd",
    image: componentImage("etcd", config, overrides),
    command: ["etcd", ...flagArgs(etcdFlags(controller))],
    cpu: "100m",
    mounts: [
      { name: "etcd-certs", path: P.etcdConfigDir, readOnly: true },
      { name: "etcd-data", path: P.etcdDataDir, readOnly: false },
    ],
    probe: {
      host: "127.0.0.1",
      path: etcdFeatures(config.versions.etcd).livez ? "/livez" : "/health?serializable=true",
      port: 2381,
      scheme: "HTTP",
    },
  });
}

export function renderApiserverPod(
  config: RenderConfig,
  controller: RenderNode,
  overrides: RenderOverrides = {},
): string {
  return staticPod({
    component: "kube-apiserver",
    image: componentImage("kube-apiserver", config, overrides),
    command: ["kube-apiserver", ...flagArgs(apiserverFlags(config, controller))],
    cpu: "250m",
    mounts: [
      { name: "k8s-certs", path: P.kubernetesDir, readOnly: true },
      { name: "auth", path: P.authDir, readOnly: true },
      { name: "log", path: "/var/log", readOnly: false },
    ],
    probe: { host: controller.ip, path: "/livez", port: 6443, scheme: "HTTPS" },
  });
}

export function renderControllerManagerPod(
  config: RenderConfig,
  overrides: RenderOverrides = {},
): string {
  return staticPod({
    component: "kube-controller-manager",
    image: componentImage("kube-controller-manager", config, overrides),
    command: ["kube-controller-manager", ...flagArgs(controllerManagerFlags(config))],
    cpu: "200m",
    mounts: [{ name: "k8s-certs", path: P.kubernetesDir, readOnly: true }],
    probe: { host: "127.0.0.1", path: "/healthz", port: 10257, scheme: "HTTPS" },
  });
}

export function renderSchedulerPod(config: RenderConfig, overrides: RenderOverrides = {}): string {
  return staticPod({
    component: "kube-scheduler",
    image: componentImage("kube-scheduler", config, overrides),
    command: ["kube-scheduler", ...flagArgs(schedulerFlags())],
    cpu: "100m",
    mounts: [
      { name: "k8s-certs", path: P.kubernetesDir, readOnly: true },
      { name: "config", path: P.kubernetesConfigDir, readOnly: true },
    ],
    probe: { host: "127.0.0.1", path: "/healthz", port: 10259, scheme: "HTTPS" },
  });
}

export function renderKubeProxyPod(config: RenderConfig, overrides: RenderOverrides = {}): string {
  return staticPod({
    component: "kube-proxy",
    image: componentImage("kube-proxy", config, overrides),
    command: ["kube-proxy", ...kubeProxyArgs()],
    cpu: "200m",
    privileged: true,
    mounts: [
      { name: "kube-proxy", path: P.kubeProxyDir, readOnly: true },
      { name: "lib-modules", path: "/lib/modules", readOnly: true, type: "Directory" },
      { name: "xtables-lock", path: "/run/xtables.lock", readOnly: false, type: "FileOrCreate" },
    ],
  });
}

// ---------------------------------------------------------------- RBAC

/**
 * Lets the apiserver (user `kubernetes`, its kubelet client certificate) reach kubelet APIs for
 * `logs`, `exec`, metrics. Applied with `kubectl apply` (the original's `create` fails on re-runs).
 */
export function renderApiserverRbac(): string {
  const role = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: {
      annotations: { "rbac.authorization.kubernetes.io/autoupdate": "true" },
      labels: { "kubernetes.io/bootstrapping": "rbac-defaults" },
      name: "system:kube-apiserver-to-kubelet",
    },
    rules: [{
      apiGroups: [""],
      resources: ["nodes/proxy", "nodes/stats", "nodes/log", "nodes/spec", "nodes/metrics"],
      verbs: ["*"],
    }],
  };
  const binding = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "system:kube-apiserver" },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "system:kube-apiserver-to-kubelet",
    },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "kubernetes" }],
  };
  return `${yamlDoc(role)}---\n${yamlDoc(binding)}`;
}
