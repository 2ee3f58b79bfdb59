/**
 * The data the renderers take and give.
 *
 * @module
 */
import type { ImageRegistryInput } from "./_registry.ts";
import type { Config, CplaneComponent } from "../config/types.ts";

/** One file to put on a node. */
export interface NodeFile {
  /** Absolute path on the node. */
  path: string;
  content: string;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  /** `user` or `user:group`; root when absent. */
  owner?: string;
}

/** A folder a step needs even when no file lands in it. */
export interface NodeDir {
  path: string;
  mode: number;
}

/** A node of the cluster as the renderers see it. Node 0 is the controller. */
export interface RenderNode {
  name: string;
  /** The cluster address (what certificates and other nodes use). */
  ip: string;
  /** The node's pod subnet for the fallback bridge CNI (`vms[].pod-cidr`). */
  podCidr: string;
}

/** The parts of the config the renderers read. */
export type RenderConfig = Pick<Config, "k8s" | "versions" | "arch" | "cluster">;

/**
 * Settings that differ from production only where a node cannot do what a VM can (containers
 * without cgroup delegation, refused negative OOM scores). Production leaves them unset.
 */
export interface RenderOverrides {
  /** kubelet `cgroupDriver` and containerd `SystemdCgroup` (always kept consistent). */
  cgroupDriver?: "systemd" | "cgroupfs";
  /** containerd `restrict_oom_score_adj`. */
  restrictOomScoreAdj?: boolean;
  /** Drop `OOMScoreAdjust=` from the containerd unit. */
  noOomScoreAdjust?: boolean;
  /** Merged (shallowly) into the KubeletConfiguration. */
  kubelet?: Record<string, unknown>;
  /** Merged (shallowly) into the KubeProxyConfiguration. */
  kubeProxy?: Record<string, unknown>;
  /** Container images of the static pods, e.g. a locally imported tag. */
  images?: Partial<Record<CplaneComponent, string>>;
}

export interface RenderInput {
  config: RenderConfig;
  /** Every node, the controller first. */
  nodes: readonly RenderNode[];
  /** The node to render for. */
  node: string;
  overrides?: RenderOverrides;
  /** Pulls go through `dtk registry` (cluster create): the hosts.toml files point at it. */
  imageRegistry?: ImageRegistryInput;
}

/** The provisioning steps that put files on a node, in the order a node needs them. */
export const STEPS = [
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
] as const;

export type StepName = typeof STEPS[number];

/** Steps that run only on the controller (node 0). */
export const CONTROLLER_STEPS: readonly StepName[] = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
];

/** A binary the step copies to the node, and where it comes from in the lock. */
export interface BinaryFile {
  kind: "file";
  step: StepName;
  /** Lock entry name (`kubelet`, `etcd`, `containerd`, …). */
  artifact: string;
  /** Path inside the tarball; absent when the artifact itself is the binary. */
  member?: string;
  /** Absolute destination on the node. */
  dest: string;
  mode: number;
}

/** Every regular file under `dir` of a tarball, copied into `destDir` (CNI plugins, containerd `bin/`). */
export interface BinaryTree {
  kind: "tree";
  step: StepName;
  artifact: string;
  /** Folder inside the tarball (`""` = its root), without leading `./`. */
  dir: string;
  destDir: string;
  mode: number;
}

export type BinaryInstall = BinaryFile | BinaryTree;

/** A file the PKI makes (in `generated/<cluster>/`) that a step places on the node. */
export type PkiSource =
  | { kind: "ca-cert" }
  | { kind: "ca-key" }
  | { kind: "cert"; identity: string }
  | { kind: "key"; identity: string }
  | { kind: "kubeconfig"; identity: string }
  | { kind: "encryption-config" }
  | { kind: "static-token" };

export interface PkiPlacement {
  source: PkiSource;
  /** Absolute destination on the node. */
  path: string;
  mode: number;
}

/** How a component runs. */
export type RunMode = "systemd" | "static-pod";

/** Everything one step puts on one node. */
export interface StepFiles {
  step: StepName;
  node: string;
  /** `systemd` or `static-pod` for components that can be containerized, else `systemd`. */
  runMode: RunMode;
  files: NodeFile[];
  dirs: NodeDir[];
  binaries: BinaryInstall[];
  pki: PkiPlacement[];
  /** systemd units to (re)start when the step's inputs changed, in order. */
  units: string[];
  /** Idempotent shell commands that apply the files (sysctl, modprobe). */
  activate: string[];
}
