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
  ADDON_REQUIRES_ONE_OF,
  type AddonName,
  CNI_ADDONS,
  type CplaneComponent,
} from "../config/mod.ts";
import { GATEWAY_API_CRDS } from "../catalog/mod.ts";
import { DtkError, UsageError } from "../errors/mod.ts";
import { webhookUrlWithToken } from "../dnswebhook/mod.ts";
import {
  type AddonAction,
  type AddonDefinition,
  APISERVER_PORT,
  type KubectlAction,
  type NodeStep,
  type ReadyCheck,
  type RenderInput,
} from "./_types.ts";

/** external-dns's webhook sidecar image: a name that never resolves (the sidecar is deleted). */
const NO_SIDECAR_REPOSITORY = "registry.invalid/dtk/no-sidecar";
const NO_SIDECAR_IMAGE = `${NO_SIDECAR_REPOSITORY}:none`;

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
    | "requiresOneOf"
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
    requiresOneOf: ADDON_REQUIRES_ONE_OF[name] ?? [],
    artifacts: d.artifacts ?? [],
    helmWait: d.helmWait ?? true,
    secretValues: d.secretValues ?? false,
    before: d.before ?? none,
    after: d.after ?? none,
    nodeSteps: d.nodeSteps ?? none,
    description: d.description,
    images: d.images,
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
    images: {
      // projectcalico/calico v3.31.3 charts/tigera-operator (values.yaml: tigeraOperator, the
      // Installation, APIServer, Goldmane and Whisker it creates by default; CSI off through
      // kubeletVolumePluginPath None) and tigera/operator v1.40.3 pkg/components/calico.go +
      // images.go (quay.io/calico/<image>:v3.31.3; flexvol from the default FlexVolumePath).
      "v3.31.3": {
        source: "projectcalico/calico@v3.31.3 charts/tigera-operator; tigera/operator@v1.40.3",
        fromChartSource: true,
        images: [
          { ref: "quay.io/tigera/operator:v1.40.3" },
          ...[
            "node",
            "cni",
            "pod2daemon-flexvol",
            "typha",
            "kube-controllers",
            "apiserver",
            "goldmane",
            "whisker",
            "whisker-backend",
          ].map((image) => ({ ref: `quay.io/calico/${image}:v3.31.3`, via: "tigera operator" })),
        ],
      },
    },
    // tigera-operator chart v3.31.3 values.yaml: `kubeletVolumePluginPath` lives under
    // `installation` (a top-level key is ignored), and `kubernetesServiceEndpoint` makes the chart
    // create the "kubernetes-services-endpoint" ConfigMap with the operator, so that the operator
    // and calico-node reach the apiserver directly from their first start, before any Service
    // proxy exists (none does with kube-proxy off until Calico's own eBPF data plane runs).
    values: ({ config, facts }) => ({
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
        // Calico's CSI driver is not wanted (the original disables it the same way).
        kubeletVolumePluginPath: "None",
      },
      kubernetesServiceEndpoint: {
        host: facts.controllerIp,
        // The chart writes it into the ConfigMap's data, which holds only strings.
        port: String(APISERVER_PORT),
      },
    }),
    after: (input) => {
      const actions: AddonAction[] = [
        // Felix reports its version and cluster size to projectcalico.org by default (first
        // after 5 minutes); the operator exposes it only through FelixConfiguration.
        {
          kind: "kubectl",
          what: `turn off usage reporting in FelixConfiguration "default"`,
          args: [
            "patch",
            "felixconfiguration",
            "default",
            "--type=merge",
            `--patch={"spec":{"usageReportingEnabled":false}}`,
          ],
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
    images: {
      // The chart pins digests (image.useDigest). Tags and digests as `helm template` of
      // helm.cilium.io/cilium-1.18.5.tgz renders them (a chart scanner's test fixture, matching
      // `cilium status` of 1.18.5 clusters); hubble relay/ui are off by default.
      "1.18.5": {
        source: "helm template of cilium-1.18.5.tgz, as recorded by a chart image scanner's tests",
        fromChartSource: false,
        images: [
          {
            ref: "quay.io/cilium/cilium:v1.18.5",
            digest: "sha256:2c92fb05962a346eaf0ce11b912ba434dc10bd54b9989e970416681f4a069628",
          },
          {
            ref:
              "quay.io/cilium/cilium-envoy:v1.34.12-1765374555-6a93b0bbba8d6dc75b651cbafeedb062b2997716",
            digest: "sha256:3108521821c6922695ff1f6ef24b09026c94b195283f8bfbfc0fa49356a156e1",
          },
          {
            ref: "quay.io/cilium/operator-generic:v1.18.5",
            digest: "sha256:36c3f6f14c8ced7f45b40b0a927639894b44269dd653f9528e7a0dc363a4eb99",
          },
        ],
      },
    },
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
    images: {
      // coredns/helm@coredns-1.45.0 charts/coredns: image coredns/coredns, tag = appVersion
      // 1.13.1; the autoscaler is off by default.
      "1.45.0": {
        source: "coredns/helm@coredns-1.45.0 charts/coredns (values.yaml, Chart.yaml)",
        fromChartSource: true,
        images: [{ ref: "docker.io/coredns/coredns:1.13.1" }],
      },
    },
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
    images: {
      // kubernetes/ingress-nginx@helm-chart-4.14.1 charts/ingress-nginx/values.yaml: the
      // controller and the admission webhook's certgen (pre-install/post-install hook jobs), both
      // pinned by digest; the default backend is off.
      "4.14.1": {
        source: "kubernetes/ingress-nginx@helm-chart-4.14.1 charts/ingress-nginx/values.yaml",
        fromChartSource: true,
        images: [
          {
            ref: "registry.k8s.io/ingress-nginx/controller:v1.14.1",
            digest: "sha256:f95a79b85fb93ac3de752c71a5c27d5ceae10a18b61904dec224c1c6a4581e47",
          },
          {
            ref: "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.5",
            digest: "sha256:03a00eb0e255e8a25fa49926c24cde0f7e12e8d072c445cdf5136ec78b546285",
            via: "admission webhook hook jobs",
          },
        ],
      },
    },
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
    images: {
      // nginx/nginx-gateway-fabric@v2.4.1 charts/nginx-gateway-fabric: the control plane (also
      // the pre-install cert job), and the data plane image it puts in the NginxProxy from which
      // it creates the nginx Deployment.
      "2.4.1": {
        source:
          "nginx/nginx-gateway-fabric@v2.4.1 charts/nginx-gateway-fabric (values.yaml, templates)",
        fromChartSource: true,
        images: [
          { ref: "ghcr.io/nginx/nginx-gateway-fabric:2.4.1" },
          { ref: "ghcr.io/nginx/nginx-gateway-fabric/nginx:2.4.1", via: "NginxProxy (data plane)" },
        ],
      },
    },
    artifacts: [GATEWAY_API_CRDS],
    values: () => ({
      // On by default: the control plane reports product telemetry to F5.
      nginxGateway: { productTelemetry: { enable: false } },
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
    images: {
      // cert-manager/cert-manager@v1.19.2 deploy/charts/cert-manager/values.yaml: tag = the
      // chart's appVersion; acmesolver reaches the controller as --acme-http01-solver-image, and
      // startupapicheck runs as a post-install hook job.
      "v1.19.2": {
        source: "cert-manager/cert-manager@v1.19.2 deploy/charts/cert-manager",
        fromChartSource: true,
        images: [
          { ref: "quay.io/jetstack/cert-manager-controller:v1.19.2" },
          { ref: "quay.io/jetstack/cert-manager-webhook:v1.19.2" },
          { ref: "quay.io/jetstack/cert-manager-cainjector:v1.19.2" },
          {
            ref: "quay.io/jetstack/cert-manager-acmesolver:v1.19.2",
            via: "controller flag --acme-http01-solver-image",
          },
          {
            ref: "quay.io/jetstack/cert-manager-startupapicheck:v1.19.2",
            via: "post-install hook job",
          },
        ],
      },
    },
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
    images: {
      // kubernetes-sigs/external-dns@external-dns-helm-chart-1.19.0 charts/external-dns: tag
      // v<appVersion> = v0.19.0. The webhook sidecar dtk names is deleted before it can start.
      "1.19.0": {
        source: "kubernetes-sigs/external-dns@external-dns-helm-chart-1.19.0 charts/external-dns",
        fromChartSource: true,
        images: [{ ref: "registry.k8s.io/external-dns/external-dns:v0.19.0" }],
        notPulled: [NO_SIDECAR_IMAGE],
      },
    },
    // The chart always adds a webhook sidecar; it is removed after helm (see `after`), so helm
    // must not wait for a pod that can never start.
    helmWait: false,
    values: () => ({
      provider: {
        name: "webhook",
        // Never started: the sidecar is deleted right after helm.
        webhook: { image: { repository: NO_SIDECAR_REPOSITORY, tag: "none" } },
      },
      // external-dns's webhook client sends no headers of its own: the token is the password
      // of the URL (HTTP Basic), which comes from a Secret, never from argv or the values file.
      // external-dns prints its whole config at start, this URL included (v0.19–v0.23 do not
      // mask it): the token is then in that pod's log, readable by who may read pod logs in
      // namespace external-dns. A proxy sidecar holding the token would avoid that, at the cost
      // of one more image to lock and pull.
      env: [{
        name: "EXTERNAL_DNS_WEBHOOK_PROVIDER_URL",
        valueFrom: { secretKeyRef: { name: DNS_WEBHOOK_SECRET, key: "url" } },
      }],
    }),
    before: ({ config, facts }) => {
      const token = webhookToken(facts);
      return [
        // The webhook first: an unreachable one or a wrong token stops before any change.
        {
          kind: "webhook",
          what: "tell the DNS webhook its domains",
          url: `${webhookUrl(config)}/domains`,
          body: JSON.stringify(config.dns.domain),
          token,
        },
        {
          kind: "webhook",
          what: "tell the DNS webhook the controller address",
          url: `${webhookUrl(config)}/clusterip`,
          body: JSON.stringify(facts.controllerIp),
          token,
        },
        apply(`Secret ${JSON.stringify(DNS_WEBHOOK_SECRET)} (the DNS webhook's URL and token)`, [
          { apiVersion: "v1", kind: "Namespace", metadata: { name: "external-dns" } },
          {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: DNS_WEBHOOK_SECRET, namespace: "external-dns" },
            type: "Opaque",
            stringData: { url: webhookUrlWithToken(webhookUrl(config), token) },
          },
        ], false),
      ];
    },
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
    images: {
      // prometheus-community/helm-charts@kube-prometheus-stack-80.6.0 (values.yaml, the
      // operator's deployment template) with its subcharts kube-state-metrics-7.0.0 and
      // prometheus-node-exporter-4.49.2, and grafana/helm-charts@grafana-10.4.0 (grafana 12.3.0,
      // k8s-sidecar 2.1.2; init-chown only with persistence, which is off).
      "80.6.0": {
        source: "prometheus-community/helm-charts@kube-prometheus-stack-80.6.0, " +
          "kube-state-metrics-7.0.0, prometheus-node-exporter-4.49.2; grafana/helm-charts@grafana-10.4.0",
        fromChartSource: true,
        images: [
          { ref: "quay.io/prometheus-operator/prometheus-operator:v0.87.1" },
          {
            ref: "quay.io/prometheus-operator/prometheus-config-reloader:v0.87.1",
            via: "operator flag --prometheus-config-reloader",
          },
          { ref: "quay.io/prometheus/prometheus:v3.8.1", via: "Prometheus resource" },
          { ref: "quay.io/prometheus/alertmanager:v0.30.0", via: "Alertmanager resource" },
          {
            ref: "ghcr.io/jkroepke/kube-webhook-certgen:1.7.3",
            via: "admission webhook hook jobs",
          },
          { ref: "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.17.0" },
          { ref: "quay.io/prometheus/node-exporter:v1.10.2" },
          { ref: "docker.io/grafana/grafana:12.3.0" },
          { ref: "quay.io/kiwigrid/k8s-sidecar:2.1.2" },
        ],
      },
    },
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
        grafana: {
          adminPassword: "admin",
          // Grafana checks grafana.com for updates and reports usage by default.
          "grafana.ini": {
            analytics: {
              check_for_updates: false,
              check_for_plugin_updates: false,
              reporting_enabled: false,
              feedback_links_enabled: false,
            },
            news: { news_feed_enabled: false },
          },
        },
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
    images: {
      // kubernetes-sigs/headlamp@headlamp-helm-0.40.0 charts/headlamp: ghcr.io/headlamp-k8s/
      // headlamp, tag v<appVersion>; the plugin manager (node image) is off.
      "0.40.0": {
        source: "kubernetes-sigs/headlamp@headlamp-helm-0.40.0 charts/headlamp",
        fromChartSource: true,
        images: [{ ref: "ghcr.io/headlamp-k8s/headlamp:v0.40.0" }],
      },
    },
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
    images: {
      // Chart 7.14.0 with its kong 2.52.0 dependency, from second-hand lists (offline mirror
      // scripts and a vendored render of that chart); the kubernetes/dashboard source at hand
      // stops at 7.13.0.
      "7.14.0": {
        source:
          "image lists of kubernetes-dashboard 7.14.0 (kong chart 2.52.0) in offline mirror scripts",
        fromChartSource: false,
        images: [
          { ref: "docker.io/kubernetesui/dashboard-api:1.14.0" },
          { ref: "docker.io/kubernetesui/dashboard-auth:1.4.0" },
          { ref: "docker.io/kubernetesui/dashboard-web:1.7.0" },
          { ref: "docker.io/kubernetesui/dashboard-metrics-scraper:1.2.2" },
          { ref: "docker.io/library/kong:3.9" },
        ],
      },
    },
    secretValues: true,
    values: (input) => ({
      // The Kong gateway sends anonymous usage reports to Kong by default.
      kong: { env: { anonymous_reports: "off" } },
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
    images: {
      // kubernetes-sigs/metrics-server@metrics-server-helm-chart-3.13.0 charts/metrics-server:
      // tag v<appVersion> = v0.8.0; the addon resizer is off.
      "3.13.0": {
        source:
          "kubernetes-sigs/metrics-server@metrics-server-helm-chart-3.13.0 charts/metrics-server",
        fromChartSource: true,
        images: [{ ref: "registry.k8s.io/metrics-server/metrics-server:v0.8.0" }],
      },
    },
    values: () => ({}),
    ready: () => [rollout("deployment", "metrics-server", "metrics-server")],
  }),
  define("openebs", {
    description: "OpenEBS local PV hostpath provisioner, the default StorageClass",
    release: "openebs",
    namespace: "openebs",
    images: {
      // localpv-provisioner 4.4.0 from second-hand lists (an installer's per-chart image list and
      // test defaults); the openebs/dynamic-localpv-provisioner source at hand stops at 4.1.1,
      // where the helper pod image (hostpath setup/cleanup, given to the provisioner) is
      // helperPod.image openebs/linux-utils.
      "4.4.0": {
        source: "image lists of openebs localpv-provisioner 4.4.0 (kubekey's chart image list)",
        fromChartSource: false,
        images: [
          { ref: "docker.io/openebs/provisioner-localpv:4.4.0" },
          { ref: "docker.io/openebs/linux-utils:4.3.0", via: "provisioner helper pods" },
        ],
      },
    },
    values: () => ({
      hostpathClass: { isDefaultClass: true },
      // The chart pings OpenEBS's analytics every 24 h by default: an offline cluster reaches
      // nothing.
      analytics: { enabled: false },
    }),
    ready: () => [{ kind: "deployments", namespace: "openebs" }],
  }),
  define("nfs-provisioner", {
    description: "NFS subdir provisioner on an NFS share of the controller (RWX volumes)",
    release: "nfs-subdir-external-provisioner",
    namespace: "nfs",
    images: {
      // kubernetes-sigs/nfs-subdir-external-provisioner@nfs-subdir-external-provisioner-4.0.18.
      "4.0.18": {
        source:
          "kubernetes-sigs/nfs-subdir-external-provisioner@nfs-subdir-external-provisioner-4.0.18 " +
          "charts/nfs-subdir-external-provisioner/values.yaml",
        fromChartSource: true,
        images: [{ ref: "registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2" }],
      },
    },
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
    images: {
      // loft-sh/vcluster@v0.30.4 chart/ (the k8s distro when none is enabled: the vcluster-pro
      // control plane, tag = chart version, and the kubernetes init image) and
      // pkg/constants/coredns.go (the CoreDNS vcluster deploys for its 1.34 API, synced to the
      // host as a pod). mirror.gcr.io/library/alpine:3.20 runs only for a StatefulSet inside the
      // virtual cluster (rewriteHosts), so it is not locked.
      "0.30.4": {
        source:
          "loft-sh/vcluster@v0.30.4 chart/values.yaml, chart/templates, pkg/constants/coredns.go",
        fromChartSource: true,
        images: [
          { ref: "ghcr.io/loft-sh/vcluster-pro:0.30.4" },
          { ref: "ghcr.io/loft-sh/kubernetes:v1.34.0", via: "init container" },
          { ref: "docker.io/coredns/coredns:1.12.1", via: "vcluster's CoreDNS" },
        ],
      },
    },
    // Chart 0.2x schema: the original's legacy `syncer.extraArgs` is rejected by these charts.
    values: ({ facts }) => ({
      controlPlane: { proxy: { extraSANs: [...facts.nodeIps] } },
      // On by default: the control plane reports to Loft.
      telemetry: { enabled: false },
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

/** The Secret holding the URL, token included, external-dns calls the DNS webhook at. */
export const DNS_WEBHOOK_SECRET = "dtk-dns-webhook";

function webhookToken(facts: RenderInput["facts"]): string {
  if (facts.dnsWebhookToken === undefined) {
    throw new DtkError(`Add-on "external-dns" needs the DNS webhook's token`, {
      hint: "Install it with dtk install-addon external-dns, which makes the token",
    });
  }
  return facts.dnsWebhookToken;
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
