/**
 * The validated, defaults-filled config. Keys are camelCase here; in `config.yaml` they are
 * kebab-case as in the original Desktop Kubernetes (`pod-cidr` → `podCidr`).
 *
 * @module
 */

/** VM drivers a user can choose. `vbox` is accepted in config as an alias of `virtualbox`. */
export type Virt = "kvm" | "virtualbox";
/** Drivers including the test-only one (selected by the hidden `test-nspawn` value). */
export type AnyVirt = Virt | "test-nspawn";

export type Linux = "alma9" | "alma8" | "centos9" | "rocky";
export type Arch = "amd64" | "arm64";

/** Control-plane components that can run as static pods (`k8s.containerized-cplane`). */
export type CplaneComponent =
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kube-scheduler"
  | "kube-proxy";

export const CPLANE_COMPONENTS: readonly CplaneComponent[] = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kube-proxy",
];

export interface AddonConfig {
  name: string;
  enabled: boolean;
  /** ingress-nginx only: adds the controller arg `enable-ssl-passthrough`. */
  sslPassthrough: boolean;
  /** Overrides the built-in chart version (optional). */
  chartVersion: string | undefined;
}

export interface ContainerdMirror {
  enabled: boolean;
  /** Folder under `/etc/containerd/certs.d/` (`_default` = every registry). */
  name: string;
  /** Written verbatim as `hosts.toml`. */
  config: string;
}

export interface K8sConfig {
  /** Components run as static pods; empty = all as systemd units. */
  containerizedCplane: CplaneComponent[];
  clusterCidr: string;
  clusterDns: string;
  /** dtk: the original hard-codes 10.32.0.0/24. */
  serviceCidr: string;
  /** dtk: the original hard-codes cluster.local. */
  clusterDomain: string;
  kubeProxy: boolean;
  containerdMirror: ContainerdMirror;
  /** kube-apiserver audit `Policy` (YAML), written verbatim; undefined = dtk's built-in policy. */
  auditPolicy: string | undefined;
  /** kube-apiserver `--runtime-config`; undefined = the flag is not passed (upstream defaults). */
  runtimeConfig: string | undefined;
  /** kubelet `resolvConf`: the node's file whose name servers `dnsPolicy: Default` Pods get. */
  resolvConf: string;
}

/** Versions of the core artifacts (the original's `artifacts` file pins these). */
export interface VersionsConfig {
  kubernetes: string;
  etcd: string;
  containerd: string;
  runc: string;
  crictl: string;
  cniPlugins: string;
  guestAdditions: string;
}

export interface KvmConfig {
  /** `nat`: the libvirt network `libvirtNetwork`; `user`: user-mode networking, ssh forwarded to 127.0.0.1. */
  network: "nat" | "user";
  libvirtNetwork: string;
  /** libvirt connection URI. */
  uri: string;
  /** `kvm` (hardware) or `tcg` (software emulation: domains of type `qemu`). */
  accel: "kvm" | "tcg";
  kickstart: string;
  osVariant: string;
}

export interface VboxConfig {
  /** Host NIC for bridged mode; exclusive with `hostOnlyNetwork`. */
  hostNetworkInterface: string | undefined;
  /** First three octets, e.g. `192.168.56`; NAT + host-only mode. */
  hostOnlyNetwork: string | undefined;
  kickstart: string;
  vboxdir: string | undefined;
}

export interface VmDefaults {
  linux: Linux;
  createTemplate: boolean;
  templateVmname: string;
  /** `kickstart` (install from the DVD, the original's way) or `cloud-image` (fast, KVM). */
  templateSource: "kickstart" | "cloud-image";
}

export interface DnsConfig {
  domain: string;
  hostIp: string | undefined;
  webhookPort: number;
}

export interface StoreConfig {
  /** Store folder; empty = `$DTK_STORE`, else `$XDG_CACHE_HOME/dtk/store`, else `~/.cache/dtk/store`. */
  path: string | undefined;
  /** Mirror URLs or folders, tried before the upstream URLs. */
  mirrors: string[];
}

export interface VmConfig {
  name: string;
  cpu: number;
  /** MiB. */
  mem: number;
  /** Last octet in VirtualBox host-only mode. */
  ip: number | undefined;
  /** GiB; grow the root disk to this size (KVM). */
  disk: number | undefined;
  podCidr: string;
}

export interface ClusterConfig {
  /** Names the cluster's folder under `generated/`, its kubeconfig context and its CA. */
  name: string;
}

/** `ConfigSource.file` of the built-in default config. */
export const BUILT_IN = "<built-in>";

/** Where a config came from. */
export interface ConfigSource {
  /** Absolute path, or `<built-in>`. */
  file: string;
  /** Folder of the config (where `dtk.lock` and `generated/` live); the cwd for `<built-in>`. */
  dir: string;
  builtIn: boolean;
}

export interface Config {
  cluster: ClusterConfig;
  virt: AnyVirt;
  arch: Arch;
  addons: AddonConfig[];
  k8s: K8sConfig;
  versions: VersionsConfig;
  kvm: KvmConfig;
  vbox: VboxConfig;
  vm: VmDefaults;
  dns: DnsConfig;
  store: StoreConfig;
  vms: VmConfig[];
  /** Hidden, test-only settings of the `test-nspawn` driver; never in user docs. */
  testNspawn: Record<string, unknown> | undefined;
  source: ConfigSource;
}
