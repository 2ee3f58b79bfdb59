/**
 * The fourteen add-ons of the original, as data. Names, CNIs and dependencies come from
 * `lib/config/_addons.ts` (the one source config validation also uses); charts and versions
 * from the artifact catalogue.
 *
 * @module
 */
import { stringify } from "yaml";
import {
  ADDON_NAMES,
  ADDON_REQUIRES,
  type AddonName,
  CNI_ADDONS,
  type CplaneComponent,
} from "../config/mod.ts";
import { GATEWAY_API_CRDS } from "../catalog/mod.ts";
import { UsageError } from "../errors/mod.ts";
import {
  type AddonAction,
  type AddonDefinition,
  APISERVER_PORT,
  type KubectlAction,
  type NodeStep,
  type ReadyCheck,
  type RenderInput,
} from "./_types.ts";

/** Where the NFS add-on exports its share on the controller. */
export const NFS_EXPORT = "/mnt/nfs_share";
/** The Gateway every HTTPRoute of dtk attaches to. */
export const GATEWAY_NAME = "dtk-gateway";
export const GATEWAY_NAMESPACE = "nginx-gateway";

function yamlDocs(objects: readonly Record<string, unknown>[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
}

function apply(what: string, objects: Record<string, unknown>[], retry = true): KubectlAction {
  return { kind: "kubectl", what, args: ["apply", "-f", "-"], stdin: yamlDocs(objects), retry };
}

function rollout(
  resource: "daemonset" | "deployment" | "statefulset",
  name: string,
  namespace: string,
): ReadyCheck {
  return { kind: "rollout", resource, name, namespace };
}

/** True when `component` runs as a static pod (`k8s.containerized-cplane`). */
function containerized(input: RenderInput, component: CplaneComponent): boolean {
  return input.config.k8s.containerizedCplane.includes(component);
}

const none = (): never[] => [];

interface Partial14 extends
  Omit<
    AddonDefinition,
    | "name"
    | "cni"
    | "requires"
    | "artifacts"
    | "helmWait"
    | "secretValues"
    | "before"
    | "after"
    | "nodeSteps"
  > {
  artifacts?: readonly string[];
  helmWait?: boolean;
  secretValues?: boolean;
  before?: AddonDefinition["before"];
  after?: AddonDefinition["after"];
  nodeSteps?: AddonDefinition["nodeSteps"];
}

function define(name: AddonName, d: Partial14): AddonDefinition {
  return {
    name,
    cni: CNI_ADDONS.includes(name),
    requires: ADDON_REQUIRES[name] ?? [],
    artifacts: d.artifacts ?? [],
    helmWait: d.helmWait ?? true,
    secretValues: d.secretValues ?? false,
    before: d.before ?? none,
    after: d.after ?? none,
    nodeSteps: d.nodeSteps ?? none,
    description: d.description,
    release: d.release,
    namespace: d.namespace,
    values: d.values,
    ready: d.ready,
  };
}

/** Calico's devices, kept away from NetworkManager (Calico's troubleshooting guide). */
const CALICO_UNMANAGED = [
  "cali*",
  "tunl*",
  "vxlan.calico",
  "vxlan-v6.calico",
  "wireguard.cali",
  "wg-v6.cali",
];

const RESTART_NETWORK_MANAGER =
  "if systemctl is-active --quiet NetworkManager; then systemctl restart NetworkManager; fi";

/** Installs a package on the node with whichever package manager it has. */
function installPackage(rpm: string, deb: string): string {
  return `if command -v dnf >/dev/null 2>&1; then dnf -y install ${rpm}; ` +
    `elif command -v yum >/dev/null 2>&1; then yum -y install ${rpm}; ` +
    `elif command -v apt-get >/dev/null 2>&1; then DEBIAN_FRONTEND=noninteractive apt-get install -y ${deb}; ` +
    `else echo "no package manager to install ${rpm}" >&2; exit 1; fi`;
}

function bearer(input: RenderInput): string {
  return `Bearer ${input.facts.adminToken}`;
}

const DEFINITIONS: readonly AddonDefinition[] = [
  define("calico", {
    description: "Calico CNI (tigera-operator), eBPF data plane when kube-proxy is off",
    release: "tigera-operator",
    namespace: "tigera-operator",
    values: ({ config }) => ({
      installation: {
        calicoNetwork: {
          ipPools: [{
            blockSize: 26,
            cidr: config.k8s.clusterCidr,
            encapsulation: "VXLANCrossSubnet",
            natOutgoing: "Enabled",
            nodeSelector: "all()",
          }],
        },
      },
      // Calico's CSI driver is not wanted (the original disables it the same way).
      kubeletVolumePluginPath: "None",
    }),
    after: (input) => {
      const actions: AddonAction[] = [
        apply(`ConfigMap "kubernetes-services-endpoint" in "tigera-operator"`, [{
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "kubernetes-services-endpoint", namespace: "tigera-operator" },
          data: {
            KUBERNETES_SERVICE_HOST: input.facts.controllerIp,
            KUBERNETES_SERVICE_PORT: String(APISERVER_PORT),
          },
        }]),
        // Since v3.30 the operator reads the endpoint ConfigMap only at start.
        {
          kind: "kubectl",
          what: `restart deployment "tigera-operator"`,
          args: ["-n", "tigera-operator", "rollout", "restart", "deployment/tigera-operator"],
          retry: true,
        },
      ];
      // The original patches these when kube-proxy is on, which is inverted: eBPF replaces
      // kube-proxy, so it is needed exactly when kube-proxy is off.
      if (!input.config.k8s.kubeProxy) {
        actions.push(
          {
            kind: "kubectl",
            what: `enable eBPF in FelixConfiguration "default"`,
            args: [
              "patch",
              "felixconfiguration",
              "default",
              "--type=merge",
              `--patch={"spec":{"bpfEnabled":true}}`,
            ],
            retry: true,
          },
          {
            kind: "kubectl",
            what: `set the BPF data plane in Installation "default"`,
            args: [
              "patch",
              "installation.operator.tigera.io",
              "default",
              "--type=merge",
              `--patch={"spec":{"calicoNetwork":{"linuxDataplane":"BPF"}}}`,
            ],
            retry: true,
          },
        );
      }
      return actions;
    },
    ready: () => [rollout("daemonset", "calico-node", "calico-system")],
    nodeSteps: () => [{
      id: "calico/network-manager",
      description: "keep Calico's interfaces away from NetworkManager",
      on: "all",
      files: [{
        path: "/etc/NetworkManager/conf.d/calico.conf",
        content: `[keyfile]\nunmanaged-devices=${
          CALICO_UNMANAGED.map((d) => `interface-name:${d}`).join(";")
        }\n`,
        mode: 0o644,
      }],
      commands: [RESTART_NETWORK_MANAGER],
    }],
  }),
  define("cilium", {
    description: "Cilium CNI with kube-proxy replacement",
    release: "cilium",
    namespace: "cilium",
    values: ({ facts }) => ({
      k8sServiceHost: facts.controllerIp,
      k8sServicePort: APISERVER_PORT,
      kubeProxyReplacement: "true",
      operator: { replicas: 1 },
      // Node pod CIDRs come from the controller manager (--allocate-node-cidrs).
      ipam: { mode: "kubernetes" },
    }),
    ready: () => [
      rollout("daemonset", "cilium", "cilium"),
      rollout("deployment", "cilium-operator", "cilium"),
    ],
  }),
  define("coredns", {
    description: "CoreDNS, the cluster DNS, at k8s.cluster-dns",
    release: "coredns",
    // kube-prometheus-stack looks for CoreDNS in kube-system.
    namespace: "kube-system",
    values: ({ config }) => ({
      priorityClassName: "system-cluster-critical",
      replicaCount: 2,
      service: { clusterIP: config.k8s.clusterDns },
      serviceAccount: { create: true, name: "coredns" },
      servers: [{
        zones: [{ zone: ".", use_tcp: true }],
        port: 53,
        plugins: [
          { name: "log" },
          { name: "errors" },
          { name: "health", configBlock: "lameduck 10s" },
          { name: "ready" },
          {
            name: "kubernetes",
            parameters: `${config.k8s.clusterDomain} in-addr.arpa ip6.arpa`,
            configBlock: "pods insecure\nfallthrough in-addr.arpa ip6.arpa\nttl 30",
          },
          { name: "prometheus", parameters: "0.0.0.0:9153" },
          { name: "forward", parameters: ". /etc/resolv.conf" },
          { name: "cache", parameters: 30 },
          { name: "loop" },
          { name: "reload" },
          { name: "loadbalance" },
        ],
      }],
    }),
    ready: () => [rollout("deployment", "coredns", "kube-system")],
  }),
  define("ingress-nginx", {
    description: "ingress-nginx controller on the host network (deprecated upstream)",
    release: "ingress-nginx",
    namespace: "ingress-nginx",
    values: ({ entry }) => {
      const controller: Record<string, unknown> = {
        hostNetwork: true,
        hostPort: { enabled: true },
        service: { type: "NodePort" },
        kind: "DaemonSet",
        allowSnippetAnnotations: true,
        config: { "annotations-risk-level": "Critical" },
      };
      if (entry?.sslPassthrough) controller.extraArgs = { "enable-ssl-passthrough": "true" };
      return { controller };
    },
    ready: () => [rollout("daemonset", "ingress-nginx-controller", "ingress-nginx")],
  }),
  define("nginx-gateway-fabric", {
    description: 'NGINX Gateway Fabric and the Gateway "dtk-gateway" on the controller\'s port 80',
    release: "nginx-gateway-fabric",
    namespace: GATEWAY_NAMESPACE,
    artifacts: [GATEWAY_API_CRDS],
    values: () => ({
      nginx: {
        kind: "deployment",
        service: { type: "ClusterIP" },
        container: { hostPorts: [{ port: 80, containerPort: 80 }] },
        pod: { nodeSelector: { "node-role.kubernetes.io/controller": "" } },
      },
    }),
    before: () => [{
      kind: "apply-artifact",
      what: "Gateway API CRDs",
      artifact: GATEWAY_API_CRDS,
      unlessApiGroup: "gateway.networking.k8s.io",
    }],
    after: () => [
      apply(`Gateway "${GATEWAY_NAME}" in "${GATEWAY_NAMESPACE}"`, [{
        apiVersion: "gateway.networking.k8s.io/v1",
        kind: "Gateway",
        metadata: { name: GATEWAY_NAME, namespace: GATEWAY_NAMESPACE },
        spec: {
          gatewayClassName: "nginx",
          listeners: [{
            name: "http",
            port: 80,
            protocol: "HTTP",
            allowedRoutes: { namespaces: { from: "All" } },
          }],
        },
      }]),
    ],
    ready: () => [
      rollout("deployment", "nginx-gateway-fabric", GATEWAY_NAMESPACE),
      {
        kind: "condition",
        resource: "gateway",
        name: GATEWAY_NAME,
        namespace: GATEWAY_NAMESPACE,
        condition: "Programmed",
      },
    ],
  }),
  define("cert-manager", {
    description: 'cert-manager with a self-signed CA ClusterIssuer "dtk-ca-issuer"',
    release: "cert-manager",
    namespace: "cert-manager",
    values: () => ({ crds: { enabled: true } }),
    after: ({ config }) => [
      apply(`ClusterIssuer "dtk-selfsigned-issuer"`, [{
        apiVersion: "cert-manager.io/v1",
        kind: "ClusterIssuer",
        metadata: { name: "dtk-selfsigned-issuer" },
        spec: { selfSigned: {} },
      }]),
      apply(`Certificate "dtk-selfsigned-ca" in "cert-manager"`, [{
        apiVersion: "cert-manager.io/v1",
        kind: "Certificate",
        metadata: { name: "dtk-selfsigned-ca", namespace: "cert-manager" },
        spec: {
          isCA: true,
          commonName: "dtk-selfsigned-ca",
          dnsNames: [config.dns.domain],
          secretName: "dtk-root-secret",
          privateKey: { algorithm: "ECDSA", size: 256 },
          issuerRef: {
            name: "dtk-selfsigned-issuer",
            kind: "ClusterIssuer",
            group: "cert-manager.io",
          },
        },
      }]),
      apply(`ClusterIssuer "dtk-ca-issuer"`, [{
        apiVersion: "cert-manager.io/v1",
        kind: "ClusterIssuer",
        metadata: { name: "dtk-ca-issuer" },
        spec: { ca: { secretName: "dtk-root-secret" } },
      }]),
    ],
    ready: () => [
      { kind: "deployments", namespace: "cert-manager" },
      {
        kind: "condition",
        resource: "certificate",
        name: "dtk-selfsigned-ca",
        namespace: "cert-manager",
        condition: "Ready",
      },
    ],
  }),
  define("external-dns", {
    description: "external-dns writing host names to the desktop's hosts file (dtk dns-webhook)",
    release: "external-dns",
    namespace: "external-dns",
    // The chart always adds a webhook sidecar; it is removed after helm (see `after`), so helm
    // must not wait for a pod that can never start.
    helmWait: false,
    values: ({ config }) => ({
      provider: {
        name: "webhook",
        // Never started: the sidecar is deleted right after helm.
        webhook: { image: { repository: "registry.invalid/dtk/no-sidecar", tag: "none" } },
      },
      extraArgs: [`--webhook-provider-url=${webhookUrl(config)}`],
    }),
    before: ({ config, facts }) => [
      {
        kind: "webhook",
        what: "tell the DNS webhook its domains",
        url: `${webhookUrl(config)}/domains`,
        body: config.dns.domain,
      },
      {
        kind: "webhook",
        what: "tell the DNS webhook the controller address",
        url: `${webhookUrl(config)}/clusterip`,
        body: facts.controllerIp,
      },
    ],
    after: () => [{
      kind: "kubectl",
      what: `remove the webhook sidecar from deployment "external-dns"`,
      args: [
        "-n",
        "external-dns",
        "patch",
        "deployment",
        "external-dns",
        "--type=strategic",
        `--patch={"spec":{"template":{"spec":{"containers":[{"name":"webhook","$patch":"delete"}]}}}}`,
      ],
      retry: true,
    }],
    ready: () => [rollout("deployment", "external-dns", "external-dns")],
  }),
  define("kube-prometheus-stack", {
    description: "Prometheus, Grafana (NodePort 30300) and Prometheus UI (NodePort 30900)",
    release: "kube-prometheus",
    namespace: "kube-prometheus",
    values: (input) => {
      const values: Record<string, unknown> = {
        extraManifests: [
          nodePortService("grafana-nodeport", 30300, 3000, {
            "app.kubernetes.io/instance": "kube-prometheus",
            "app.kubernetes.io/name": "grafana",
          }),
          nodePortService("prometheus-nodeport", 30900, 9090, {
            "app.kubernetes.io/name": "prometheus",
          }),
        ],
        grafana: { adminPassword: "admin" },
        coreDns: { service: { selector: { "k8s-app": "coredns" } } },
        prometheus: {
          prometheusSpec: {
            serviceMonitorSelectorNilUsesHelmValues: false,
            podMonitorSelectorNilUsesHelmValues: false,
            ruleSelectorNilUsesHelmValues: false,
            probeSelectorNilUsesHelmValues: false,
            maximumStartupDurationSeconds: 60,
          },
        },
      };
      // Components that run as systemd units have no pods to discover: point at the controller.
      const endpoints = [input.facts.controllerIp];
      if (!containerized(input, "etcd")) values.kubeEtcd = { endpoints };
      if (!containerized(input, "kube-scheduler")) values.kubeScheduler = { endpoints };
      if (!containerized(input, "kube-controller-manager")) {
        values.kubeControllerManager = { endpoints };
      }
      return values;
    },
    ready: () => [{ kind: "deployments", namespace: "kube-prometheus" }],
  }),
  define("headlamp", {
    description: "Headlamp at http://<controller>/headlamp/, logged in as cluster admin",
    release: "headlamp",
    namespace: "headlamp",
    secretValues: true,
    values: (input) => ({
      config: { baseURL: "/headlamp" },
      httpRoute: {
        enabled: true,
        labels: { "app.kubernetes.io/component": "ingress" },
        parentRefs: [{ name: GATEWAY_NAME, namespace: GATEWAY_NAMESPACE }],
        rules: [
          {
            backendRefs: [{ group: "", kind: "Service", name: "headlamp", port: 80, weight: 1 }],
            filters: [{
              type: "RequestHeaderModifier",
              requestHeaderModifier: { add: [{ name: "Authorization", value: bearer(input) }] },
            }],
            matches: [{ path: { type: "PathPrefix", value: "/headlamp/" } }],
          },
          {
            filters: [{
              type: "RequestRedirect",
              requestRedirect: {
                path: { type: "ReplaceFullPath", replaceFullPath: "/headlamp/" },
                statusCode: 301,
              },
            }],
            matches: [{ path: { type: "Exact", value: "/headlamp" } }],
          },
        ],
      },
    }),
    ready: () => [rollout("deployment", "headlamp", "headlamp")],
  }),
  define("kubernetes-dashboard", {
    description: "Kubernetes Dashboard at https://<dns.domain>/dashboard (deprecated upstream)",
    release: "kubernetes-dashboard",
    namespace: "kubernetes-dashboard",
    secretValues: true,
    values: (input) => ({
      app: {
        ingress: {
          enabled: true,
          hosts: [input.config.dns.domain],
          ingressClassName: "nginx",
          path: "/dashboard",
          issuer: { name: "dtk-ca-issuer", scope: "cluster" },
          annotations: {
            "nginx.ingress.kubernetes.io/configuration-snippet": `proxy_set_header Authorization "${
              bearer(input)
            }";\n`,
          },
        },
      },
      extras: {
        manifests: [
          {
            apiVersion: "v1",
            kind: "Service",
            metadata: { name: "kubernetes-dashboard-nodeport" },
            spec: {
              type: "NodePort",
              ports: [{
                name: "https",
                nodePort: 30443,
                port: 8443,
                protocol: "TCP",
                targetPort: "proxy-tls",
              }],
              selector: {
                "app.kubernetes.io/component": "app",
                "app.kubernetes.io/instance": "kubernetes-dashboard",
                "app.kubernetes.io/name": "kong",
              },
            },
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: { name: "kubernetes-dashboard-admin-user" },
            roleRef: {
              apiGroup: "rbac.authorization.k8s.io",
              kind: "ClusterRole",
              name: "cluster-admin",
            },
            subjects: [{
              kind: "ServiceAccount",
              name: "kubernetes-dashboard-kong",
              namespace: "kubernetes-dashboard",
            }],
          },
        ],
      },
    }),
    ready: () => [{ kind: "deployments", namespace: "kubernetes-dashboard" }],
  }),
  define("metrics-server", {
    description: "metrics-server (kubectl top), on the chart's defaults",
    release: "metrics-server",
    namespace: "metrics-server",
    values: () => ({}),
    ready: () => [rollout("deployment", "metrics-server", "metrics-server")],
  }),
  define("openebs", {
    description: "OpenEBS local PV hostpath provisioner, the default StorageClass",
    release: "openebs",
    namespace: "openebs",
    values: () => ({ hostpathClass: { isDefaultClass: true } }),
    ready: () => [{ kind: "deployments", namespace: "openebs" }],
  }),
  define("nfs-provisioner", {
    description: "NFS subdir provisioner on an NFS share of the controller (RWX volumes)",
    release: "nfs-subdir-external-provisioner",
    namespace: "nfs",
    values: ({ facts }) => ({ nfs: { server: facts.controllerIp, path: NFS_EXPORT } }),
    ready: () => [rollout("deployment", "nfs-subdir-external-provisioner", "nfs")],
    nodeSteps: () => [
      {
        id: "nfs-provisioner/server",
        description: `export ${NFS_EXPORT} over NFS from the controller`,
        on: "controller",
        files: [{
          path: "/etc/exports.d/dtk.exports",
          content: `${NFS_EXPORT} *(rw,sync,no_subtree_check)\n`,
          mode: 0o644,
        }],
        commands: [
          installPackage("nfs-utils", "nfs-kernel-server"),
          `mkdir -p ${NFS_EXPORT}`,
          `chown nobody:nobody ${NFS_EXPORT} 2>/dev/null || chown nobody:nogroup ${NFS_EXPORT}`,
          `chmod 777 ${NFS_EXPORT}`,
          "if systemctl list-unit-files nfs-server.service >/dev/null 2>&1; then " +
          "systemctl enable --now nfs-server; else systemctl enable --now nfs-kernel-server; fi",
          "exportfs -ra",
        ],
      },
      {
        id: "nfs-provisioner/clients",
        description: "install the NFS client on every node",
        on: "all",
        files: [],
        commands: [installPackage("nfs-utils", "nfs-common")],
      },
    ],
  }),
  define("vcluster", {
    description: "vcluster, a virtual cluster inside the cluster, API on a NodePort",
    release: "vcluster",
    namespace: "vcluster",
    // Chart 0.2x schema: the original's legacy `syncer.extraArgs` is rejected by these charts.
    values: ({ facts }) => ({
      controlPlane: { proxy: { extraSANs: [...facts.nodeIps] } },
    }),
    after: () => [
      apply(`Service "vcluster-nodeport" in "vcluster"`, [{
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "vcluster-nodeport", namespace: "vcluster" },
        spec: {
          type: "NodePort",
          selector: { app: "vcluster" },
          ports: [{ name: "https", port: 443, targetPort: 8443, protocol: "TCP" }],
        },
      }]),
    ],
    ready: () => [rollout("statefulset", "vcluster", "vcluster")],
  }),
];

function nodePortService(
  name: string,
  nodePort: number,
  port: number,
  selector: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name },
    spec: {
      type: "NodePort",
      ports: [{ name: "http", nodePort, port, protocol: "TCP", targetPort: port }],
      selector,
    },
  };
}

/** The host-side DNS webhook the guests reach: `http://<dns.host-ip>:<dns.webhook-port>`. */
export function webhookUrl(config: RenderInput["config"]): string {
  if (config.dns.hostIp === undefined) {
    throw new UsageError(`Add-on "external-dns" needs "dns.host-ip"`, {
      hint: "Set dns.host-ip to the desktop address the guests reach, e.g. 192.168.122.1",
    });
  }
  return `http://${config.dns.hostIp}:${config.dns.webhookPort}`;
}

/** The registry, keyed by name, in the original's default order. */
export const ADDONS: ReadonlyMap<AddonName, AddonDefinition> = new Map(
  DEFINITIONS.map((d) => [d.name, d]),
);

// A missing or extra definition is a programming error: fail at load, not at minute 20.
if (ADDONS.size !== ADDON_NAMES.length || ADDON_NAMES.some((n) => !ADDONS.has(n))) {
  throw new Error("The add-on registry does not match ADDON_NAMES");
}

/** The definition of an add-on. */
export function addonDefinition(name: AddonName): AddonDefinition {
  return ADDONS.get(name)!;
}

/** Node steps of an add-on, for the pipeline (pure). */
export function addonNodeSteps(name: AddonName, input: RenderInput): NodeStep[] {
  return addonDefinition(name).nodeSteps(input);
}
