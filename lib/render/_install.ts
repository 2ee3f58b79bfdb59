/**
 * Which binaries each step installs and which PKI files it places: one table shared by the
 * pipeline (what to copy) and `dtk verify` (what to compare with the lock).
 *
 * @module
 */
import { CNI_PLUGINS, CONTAINERD, CRICTL, ETCD, RUNC } from "../catalog/mod.ts";
import { CONTAINERD_BIN, LOCAL_BIN, NODE_PATHS } from "./_paths.ts";
import type { BinaryInstall, PkiPlacement, RenderConfig, RunMode, StepName } from "./_types.ts";

const P = NODE_PATHS;
const EXEC = 0o755;

function withV(version: string): string {
  return version.startsWith("v") ? version : `v${version}`;
}

function file(step: StepName, artifact: string, dest: string, member?: string): BinaryInstall {
  return member === undefined
    ? { kind: "file", step, artifact, dest, mode: EXEC }
    : { kind: "file", step, artifact, member, dest, mode: EXEC };
}

/**
 * The binaries `step` installs. A containerized component needs no binary, except etcd: its
 * `etcdctl` serves the health gate, so both stay installed (as in the original).
 */
export function stepBinaries(
  step: StepName,
  config: Pick<RenderConfig, "versions" | "arch">,
  runMode: RunMode = "systemd",
): BinaryInstall[] {
  switch (step) {
    case "sysctl":
      return [];
    case "containerd":
      return [
        {
          kind: "tree",
          step,
          artifact: CONTAINERD,
          dir: "bin",
          destDir: CONTAINERD_BIN,
          mode: EXEC,
        },
        file(step, RUNC, `${LOCAL_BIN}/runc`),
      ];
    case "crictl":
      return [file(step, CRICTL, `${LOCAL_BIN}/crictl`, "crictl")];
    case "cni":
      return [{
        kind: "tree",
        step,
        artifact: CNI_PLUGINS,
        dir: "",
        destDir: P.cniBinDir,
        mode: EXEC,
      }];
    case "kubelet":
      return [file(step, "kubelet", `${LOCAL_BIN}/kubelet`)];
    case "etcd": {
      const top = `etcd-${withV(config.versions.etcd)}-linux-${config.arch}`;
      return [
        file(step, ETCD, `${LOCAL_BIN}/etcd`, `${top}/etcd`),
        file(step, ETCD, `${LOCAL_BIN}/etcdctl`, `${top}/etcdctl`),
      ];
    }
    case "kube-proxy":
    case "kube-apiserver":
    case "kube-controller-manager":
    case "kube-scheduler":
      return runMode === "static-pod" ? [] : [file(step, step, `${LOCAL_BIN}/${step}`)];
  }
}

const CERT = 0o644;
const SECRET = 0o600;

/** The PKI files `step` places on `node` (the certificate matrix of `lib/pki`). */
export function stepPki(step: StepName, node: string): PkiPlacement[] {
  const ca = { source: { kind: "ca-cert" }, path: P.caCert, mode: CERT } as const;
  const pair = (identity: string, cert: string, key: string): PkiPlacement[] => [
    { source: { kind: "cert", identity }, path: cert, mode: CERT },
    { source: { kind: "key", identity }, path: key, mode: SECRET },
  ];
  const kubeconfig = (identity: string, path: string): PkiPlacement => ({
    source: { kind: "kubeconfig", identity },
    path,
    mode: SECRET,
  });
  switch (step) {
    case "kubelet":
      return [
        ca,
        ...pair(`kubelet-${node}`, P.kubeletCert, P.kubeletKey),
        kubeconfig(`kubelet-${node}`, P.kubeletKubeconfig),
      ];
    case "kube-proxy":
      return [kubeconfig("kube-proxy", P.kubeProxyKubeconfig)];
    case "etcd":
      return [
        { source: { kind: "ca-cert" }, path: P.etcdCaCert, mode: CERT },
        ...pair("kubernetes", P.etcdCert, P.etcdKey),
      ];
    case "kube-apiserver":
      return [
        ca,
        ...pair("kubernetes", P.apiserverCert, P.apiserverKey),
        ...pair("service-account", P.serviceAccountCert, P.serviceAccountKey),
        ...pair("aggregator", P.aggregatorCert, P.aggregatorKey),
        { source: { kind: "encryption-config" }, path: P.encryptionConfig, mode: SECRET },
        { source: { kind: "static-token" }, path: P.staticTokenFile, mode: SECRET },
      ];
    case "kube-controller-manager":
      // It signs with the CA and with the service-account key, so it places them itself.
      return [
        ca,
        { source: { kind: "ca-key" }, path: P.caKey, mode: SECRET },
        ...pair("service-account", P.serviceAccountCert, P.serviceAccountKey),
        kubeconfig("kube-controller-manager", P.controllerManagerKubeconfig),
      ];
    case "kube-scheduler":
      return [kubeconfig("kube-scheduler", P.schedulerKubeconfig)];
    default:
      return [];
  }
}
