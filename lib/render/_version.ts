/**
 * What differs between Kubernetes and containerd versions, decided in one place (as kubeadm
 * does per minor version): flags that appeared or disappeared, config API versions.
 *
 * @module
 */
import { ConfigError, q } from "../errors/mod.ts";

export interface Semver {
  major: number;
  minor: number;
  patch: number;
}

/** Parses `v1.35.0`, `1.20.2`, `1.6.20~ds1` (only the numeric head counts). */
export function parseVersion(version: string, what: string): Semver {
  const match = version.trim().match(/^v?(\d+)\.(\d+)(?:\.(\d+))?/);
  if (!match) {
    throw ConfigError.forKey(
      `versions.${what}`,
      `Version ${q(version)} of ${what} is not a version number`,
      { hint: "Write it as MAJOR.MINOR.PATCH, e.g. v1.35.0" },
    );
  }
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
}

/** Oldest Kubernetes minor dtk renders for; older flags and config APIs are not modelled. */
export const OLDEST_KUBERNETES_MINOR = 20;

/** The version-dependent choices for one Kubernetes version. */
export interface KubeFeatures {
  version: Semver;
  /**
   * `--insecure-port=0` closes the plain-HTTP port. From 1.20 the port is always off and the
   * flag is hidden with "no effect now" (removed in 1.24), so only older versions need it.
   */
  insecurePortFlag: boolean;
  /** The runtime endpoint is a KubeletConfiguration field (1.27+), else kubelet flags. */
  runtimeEndpointInConfig: boolean;
  /**
   * `--container-runtime=remote` is needed: before 1.24 the default is `docker`. From 1.24 the
   * default is `remote` and the flag only logs "Flag --container-runtime has been deprecated,
   * will be removed in 1.27 as the only valid value is 'remote'" (kubernetes release-1.24
   * pkg/kubelet/config/flags.go, MarkDeprecated); 1.27 removed it.
   */
  containerRuntimeFlag: boolean;
  /** `kubescheduler.config.k8s.io/<this>`. */
  schedulerConfigApi: string;
  /**
   * The kubelet refuses to start on a cgroup v1 host: KubeletConfiguration `failCgroupV1`
   * defaults to true from 1.35 (kubelet config v1beta1 defaults.go), false before.
   */
  refusesCgroupV1: boolean;
  /**
   * kube-proxy serves NodePorts on the node's primary IPs only (`nodePortAddresses: [primary]`).
   * From 1.31 an unset list makes kube-proxy log, at error level, "Kube-proxy configuration may
   * be incomplete or incorrect ... nodePortAddresses is unset; NodePort connections will be
   * accepted on all local IPs. Consider using `--nodeport-addresses primary`" (kubernetes
   * pkg/proxy/README.md "As of 1.31, kube-proxy now warns"; cmd/kube-proxy/app/server.go), and
   * the iptables mode also sets route_localnet=1 for NodePorts on 127.0.0.1. `primary` is what
   * the nftables mode defaults to; older kube-proxies may not know the keyword.
   */
  kubeProxyPrimaryNodePorts: boolean;
}

export function kubeFeatures(version: string): KubeFeatures {
  const v = parseVersion(version, "kubernetes");
  if (v.major !== 1 || v.minor < OLDEST_KUBERNETES_MINOR) {
    throw ConfigError.forKey(
      "versions.kubernetes",
      `Kubernetes ${q(version)} is older than dtk supports`,
      { hint: `Use Kubernetes 1.${OLDEST_KUBERNETES_MINOR} or newer` },
    );
  }
  const m = v.minor;
  return {
    version: v,
    insecurePortFlag: m < 20,
    runtimeEndpointInConfig: m >= 27,
    containerRuntimeFlag: m < 24,
    schedulerConfigApi: m >= 25 ? "v1" : m >= 23 ? "v1beta3" : m === 22 ? "v1beta2" : "v1beta1",
    refusesCgroupV1: m >= 35,
    kubeProxyPrimaryNodePorts: m >= 31,
  };
}

/** The version-dependent choices for one etcd version. */
export interface EtcdFeatures {
  version: Semver;
  /**
   * etcdctl needs `ETCDCTL_API=3`: before 3.4 it spoke the v2 API by default (CHANGELOG-3.4
   * "Make `ETCDCTL_API=3 etcdctl` default"). 3.4 and 3.5 read the variable and unset it
   * (etcdctl/main.go at v3.5.30); 3.6 dropped the v2 client and that code (etcdctl/main.go at
   * v3.6.7), so the variable reaches pkg/flags' environment check, which warns "unrecognized
   * environment variable" on every call.
   */
  etcdctlApiEnv: boolean;
  /**
   * The metrics listener serves `/livez` (3.4.29, 3.5.11, 3.6: CHANGELOG-3.4/3.5 "Add
   * livez/readyz HTTP endpoints"), a local serializable read only. `/health` also fails on any
   * alarm, so a NOSPACE alarm would have the kubelet restart etcd in a loop, which frees no
   * space and gets in the way of the compaction that does (kubernetes/kubernetes#96886; kubeadm
   * probes `/livez`, kubeadm#3039).
   */
  livez: boolean;
}

export function etcdFeatures(version: string): EtcdFeatures {
  const v = parseVersion(version, "etcd");
  const three = v.major === 3;
  return {
    version: v,
    etcdctlApiEnv: v.major < 3 || (three && v.minor < 4),
    livez: v.major > 3 ||
      (three &&
        (v.minor >= 6 || (v.minor === 5 && v.patch >= 11) || (v.minor === 4 && v.patch >= 29))),
  };
}

/** The version-dependent choices for one containerd version. */
export interface ContainerdFeatures {
  version: Semver;
  /** Config file schema: 3 for containerd 2.x, 2 for 1.x. */
  configVersion: 2 | 3;
  /** `bin_dirs` (2.1+) instead of `bin_dir`. */
  cniBinDirs: boolean;
  /** `enable_cdi` exists (1.7+). */
  cdi: boolean;
}

export function containerdFeatures(version: string): ContainerdFeatures {
  const v = parseVersion(version, "containerd");
  const two = v.major >= 2;
  return {
    version: v,
    configVersion: two ? 3 : 2,
    cniBinDirs: v.major > 2 || (two && v.minor >= 1),
    cdi: two || v.minor >= 7,
  };
}
