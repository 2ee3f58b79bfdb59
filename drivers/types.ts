/**
 * The `Driver` port: the VM lifecycle behind one interface. Implementations: `kvm`,
 * `virtualbox`, and (tests only) `test-nspawn`. Every call of a real driver goes through the
 * `Runner` port so that tests can substitute it.
 *
 * @module
 */

export type VmState = "running" | "stopped" | "paused" | "absent" | "unknown";

export interface VmStatus {
  name: string;
  state: VmState;
}

/** How to reach a node: its cluster IP, and where its sshd answers (may be a forwarded port). */
export interface NodeAddress {
  /** The address other nodes and certificates use. */
  ip: string;
  ssh: { host: string; port: number };
}

/** An SSH host key pair dtk made for a node, so that its public half can be pinned up front. */
export interface HostKey {
  /** OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`). */
  privateKey: string;
  /** `ssh-ed25519 AAAA…` */
  publicKey: string;
}

export interface TemplateSpec {
  /** Template VM name (`vm.template-vmname`). */
  name: string;
  /** Public key (`ssh-ed25519 …`) allowed to log in as root. */
  authorizedKey: string;
  /**
   * Store paths of the artifacts the template is built from: `iso` (OS DVD), `guestAdditions`
   * (VirtualBox), `cloudImage` (KVM cloud-image path), and for images without a boot loader
   * `kernel`, `initrd`, `cmdline` (direct kernel boot).
   */
  media: Partial<
    Record<"iso" | "guestAdditions" | "cloudImage" | "kernel" | "initrd" | "cmdline", string>
  >;
  /** Folder for files the driver generates (kickstart, ISOs), inside the cluster's folder. */
  workDir: string;
}

export interface CloneSpec {
  /** VM name = hostname = Kubernetes node name. */
  name: string;
  template: string;
  cpu: number;
  /** MiB. */
  mem: number;
  /** GiB; grow the root disk (KVM). */
  disk: number | undefined;
  /** VirtualBox host-only: the static IP the clone gets. */
  staticIp: string | undefined;
  /** When given, the driver installs this host key in the clone (else the clone makes its own). */
  hostKey: HostKey | undefined;
  authorizedKey: string;
  workDir: string;
}

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface PreflightOptions {
  /** Also check this template VM (its storage readable). */
  template?: string;
}

/** A problem found before anything is touched, with the exact fix. */
export interface PreflightProblem {
  message: string;
  fix: string;
}

export interface Driver {
  readonly name: string;
  /** Checks the host can run this driver at all. Blocking problems only. */
  preflight(options?: PreflightOptions): Promise<PreflightProblem[]>;
  exists(name: string): Promise<boolean>;
  createTemplate(spec: TemplateSpec, options: WaitOptions): Promise<void>;
  clone(spec: CloneSpec, options: WaitOptions): Promise<void>;
  start(name: string, options: WaitOptions): Promise<void>;
  /** Graceful stop within `timeoutMs`, then forced. */
  stop(name: string, options: WaitOptions): Promise<void>;
  pause(name: string): Promise<void>;
  resume(name: string): Promise<void>;
  /** Removes the VM and its disks. Returns false when there was nothing to delete (not an error). */
  delete(name: string, options: WaitOptions): Promise<boolean>;
  status(name: string): Promise<VmState>;
  list(): Promise<VmStatus[]>;
  /** The node's address, waiting up to `timeoutMs` for it to appear. */
  address(name: string, options: WaitOptions): Promise<NodeAddress>;
  /**
   * Where a server on the host is reachable from the nodes (dtk's image registry): the address
   * to bind on the host and the one the nodes use for it (they differ behind NAT, where the
   * host is an alias of its loopback). Undefined when the nodes have no known route to the
   * host (bridged networking): images then go over ssh.
   */
  hostEndpoint?(): Promise<HostEndpoint | undefined>;
}

/** A host address the nodes reach. */
export interface HostEndpoint {
  /** The host address to bind. */
  listen: string;
  /** The address the nodes connect to. */
  reach: string;
}
