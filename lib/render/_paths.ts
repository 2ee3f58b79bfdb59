/**
 * Where things live on a node (upstream spec §5.2). One table, so that the renderers, the
 * pipeline that uploads certificates, and `dtk verify` agree.
 *
 * @module
 */

export const NODE_PATHS = {
  /** Static pod manifests (a non-default kubelet path, as in the original). */
  staticPods: "/etc/desktop-kubernetes/static-pods",
  systemdDir: "/etc/systemd/system",

  containerdConfig: "/etc/containerd/config.toml",
  containerdCertsDir: "/etc/containerd/certs.d",
  containerdSocket: "/run/containerd/containerd.sock",
  crictlConfig: "/etc/crictl.yaml",
  cniConfDir: "/etc/cni/net.d",
  cniConflist: "/etc/cni/net.d/20-containerd-net.conflist",
  cniBinDir: "/opt/cni/bin",
  cniLogDir: "/var/log/desktop-kubernetes/cni",
  sysctl: "/etc/sysctl.d/k8s.conf",
  modulesLoad: "/etc/modules-load.d/k8s.conf",
  networkManagerDtk: "/etc/NetworkManager/conf.d/dtk.conf",
  networkManagerCalico: "/etc/NetworkManager/conf.d/calico.conf",
  hosts: "/etc/hosts",
  environment: "/etc/environment",

  kubeletDir: "/var/lib/kubelet",
  kubeletConfig: "/var/lib/kubelet/kubelet-config.yaml",
  kubeletCert: "/var/lib/kubelet/kubelet.pem",
  kubeletKey: "/var/lib/kubelet/kubelet-key.pem",
  kubeletKubeconfig: "/var/lib/kubelet/kubeconfig/kubelet.kubeconfig",
  kubeProxyDir: "/var/lib/kube-proxy",
  kubeProxyConfig: "/var/lib/kube-proxy/kube-proxy-config.yaml",
  kubeProxyKubeconfig: "/var/lib/kube-proxy/kubeconfig/kube-proxy.kubeconfig",

  kubernetesDir: "/var/lib/kubernetes",
  caCert: "/var/lib/kubernetes/ca.pem",
  caKey: "/var/lib/kubernetes/ca-key.pem",
  apiserverCert: "/var/lib/kubernetes/kubernetes.pem",
  apiserverKey: "/var/lib/kubernetes/kubernetes-key.pem",
  serviceAccountCert: "/var/lib/kubernetes/service-account.pem",
  serviceAccountKey: "/var/lib/kubernetes/service-account-key.pem",
  aggregatorCert: "/var/lib/kubernetes/aggregator.pem",
  aggregatorKey: "/var/lib/kubernetes/aggregator-key.pem",
  encryptionConfig: "/var/lib/kubernetes/encryption-config.yaml",
  auditPolicy: "/var/lib/kubernetes/audit-policy.yaml",
  controllerManagerKubeconfig: "/var/lib/kubernetes/kube-controller-manager.kubeconfig",
  schedulerKubeconfig: "/var/lib/kubernetes/kube-scheduler.kubeconfig",
  authDir: "/etc/kubernetes/auth",
  staticTokenFile: "/etc/kubernetes/auth/static-token.csv",
  kubernetesConfigDir: "/etc/kubernetes/config",
  schedulerConfig: "/etc/kubernetes/config/kube-scheduler.yaml",
  auditLog: "/var/log/audit.log",

  etcdConfigDir: "/etc/etcd",
  etcdCaCert: "/etc/etcd/ca.pem",
  etcdCert: "/etc/etcd/kubernetes.pem",
  etcdKey: "/etc/etcd/kubernetes-key.pem",
  etcdDataDir: "/var/lib/etcd",
} as const;

export type NodePaths = typeof NODE_PATHS;

/** Binaries installed to `/usr/local/bin` (spec §5.2). */
export const LOCAL_BIN = "/usr/local/bin";
/** containerd's `bin/` goes to `/bin` (spec §4.10 d). */
export const CONTAINERD_BIN = "/bin";
