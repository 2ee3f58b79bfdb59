/**
 * The host checks of `dtk doctor`. Each check reads the host through `Host` and returns one
 * `Check`. A check that gates `cluster create` is `blocking`; its problems are `fail`. Every other
 * problem is a `warn`.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { q } from "../errors/mod.ts";
import { formatCommand, shellQuote } from "../exec/mod.ts";
import { formatBytes } from "../ui/mod.ts";
import { storeDir } from "../paths/mod.ts";
import {
  type DiskSpace,
  firstLine,
  type Host,
  type Identity,
  parseMemAvailable,
  virtFlag,
} from "./_host.ts";
import {
  bareVersion,
  helmVersion,
  kernelVersion,
  kubectlVersion,
  minorOf,
  qemuImgVersion,
  sshVersion,
  vboxVersion,
  versionAtLeast,
} from "./_versions.ts";

export type CheckStatus = "ok" | "warn" | "fail";

/** One finding of `dtk doctor`. */
export interface Check {
  /** Stable identifier, e.g. `ssh`, `kvm-device`, `libvirt-network`. */
  id: string;
  /** What is checked, as shown in the table. */
  title: string;
  status: CheckStatus;
  /** What the host has, e.g. `9.2p1`, `not found`, `12.3 GiB free`. */
  found: string;
  /** What dtk needs, e.g. `>= 7.6`. */
  required: string;
  /** Whether a `fail` of this check stops `cluster create` (only blocking checks can fail). */
  blocking: boolean;
  /** The exact command(s) that fix the problem, one per line. Only on `warn` and `fail`. */
  fix?: string;
  /** Why it matters or what was seen, when `found` alone does not say it. */
  detail?: string;
  /** Where the tool or file was found. */
  path?: string;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/**
 * Minimum versions. Not the exact strings the original compares: the oldest releases that have
 * what dtk uses. OpenSSH 7.6: `%C` in ControlPath (6.7), Ed25519 (6.5), `accept-new` (7.6), and
 * the oldest OpenSSH of any supported distro. libvirt/virt-install/qemu: the oldest versions the
 * original documents as tested (Ubuntu 22.04: virsh 8.0.0, virt-install/virt-clone 4.0.0, qemu
 * 6.2); qemu-img ≥ 5.1 is needed anyway for `-F` on backing files. VirtualBox 7.0: the oldest
 * series the original supports. Helm 3.8: dtk pulls every chart (OCI ones too) into its store and
 * hands helm a local `.tgz`, so helm never pulls OCI itself and the original's "Helm 4.1.1 for OCI
 * pulls" does not apply; 3.8 is where OCI became GA, so `helm pull oci://…` by hand works too.
 */
export const MINIMUMS = {
  ssh: "7.6",
  virsh: "8.0.0",
  virtInstall: "4.0.0",
  virtClone: "4.0.0",
  qemuImg: "6.2.0",
  vbox: "7.0.0",
  helm: "3.8.0",
} as const;

/** Approximate download sizes, for the free-space check of the store. */
const ISO_BYTES: Record<Config["vm"]["linux"], number> = {
  alma9: 10 * GIB,
  alma8: 13 * GIB,
  rocky: 13 * GIB,
  centos9: 12 * GIB,
};
const CLOUD_IMAGE_BYTES = 0.6 * GIB;
const GUEST_ADDITIONS_BYTES = 0.1 * GIB;
/** Kubernetes binaries, runtime tarballs and charts together. */
const CORE_ARTIFACT_BYTES = 0.5 * GIB;
/** A VM disk's size when `disk` is not set (the template's). */
export const DEFAULT_DISK_GIB = 30;
/**
 * What a freshly created node really occupies on its thin disk (OS, binaries, images); below
 * this per VM the create itself runs out of space, so the check blocks.
 */
const VM_FLOOR_BYTES = 4 * GIB;

/** `sudo apt install <debian>`, and the Fedora command when the package name differs. */
function install(debian: string, fedora?: string): string {
  const apt = formatCommand(["sudo", "apt", "install", debian]);
  return fedora && fedora !== debian
    ? `${apt}\n(Fedora: ${formatCommand(["sudo", "dnf", "install", fedora])})`
    : apt;
}

const FIX = {
  ssh: install("openssh-client", "openssh-clients"),
  virsh: install("libvirt-clients", "libvirt-client"),
  virtinst: install("virtinst", "virt-install"),
  qemuImg: install("qemu-utils", "qemu-img"),
  libvirtd: `${
    install("libvirt-daemon-system", "libvirt-daemon-kvm")
  }\nsudo systemctl enable --now libvirtd\n(Fedora: sudo systemctl enable --now virtqemud.socket virtnetworkd.socket)`,
  vbox:
    "sudo apt install virtualbox   # Ubuntu (multiverse); on Debian install Oracle's virtualbox-7.1 package\n(Fedora: sudo dnf install VirtualBox, from RPM Fusion)",
  helm:
    "curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash\n(Ubuntu: sudo snap install helm --classic; Fedora: sudo dnf install helm)",
} as const;

interface ToolSpec {
  id: string;
  title: string;
  names: string[];
  args: string[];
  extract: (output: string) => string | undefined;
  minimum: string;
  /** A missing tool blocks `cluster create`. */
  blocking: boolean;
  fix: string;
  /** Looks further at a tool that answered with a good version. */
  inspect?: (output: string, check: Check) => Check;
}

/** Finds a tool, runs it for its version, compares with the minimum. */
async function toolCheck(host: Host, spec: ToolSpec): Promise<Check> {
  const base = { id: spec.id, title: spec.title, required: `>= ${spec.minimum}` };
  const probe = await host.run(spec.names, spec.args);
  const missing = spec.blocking ? "fail" : "warn";
  if (!probe.ok) {
    const found = probe.reason === "not found" ? "not found" : `error: ${probe.reason}`;
    return {
      ...base,
      status: missing,
      found,
      blocking: spec.blocking,
      fix: spec.fix,
      ...(probe.path ? { path: probe.path } : {}),
    };
  }
  const output = `${probe.stdout}\n${probe.stderr}`;
  const version = spec.extract(output);
  if (version === undefined) {
    // The tool is there and may well work; an unknown banner is no reason to stop a create.
    return {
      ...base,
      status: "warn",
      found: "unknown version",
      blocking: spec.blocking,
      detail: `${[spec.names[0], ...spec.args].join(" ")} printed ${
        q(firstLine(output) || `nothing (exit code ${probe.code})`)
      }`,
      fix: spec.fix,
      path: probe.path,
    };
  }
  if (!versionAtLeast(version, spec.minimum)) {
    return {
      ...base,
      status: "warn",
      found: version,
      blocking: spec.blocking,
      detail: `${spec.names[0]} ${version} is older than dtk was tested with`,
      fix: spec.fix,
      path: probe.path,
    };
  }
  const check: Check = {
    ...base,
    status: "ok",
    found: version,
    blocking: spec.blocking,
    path: probe.path,
  };
  return spec.inspect ? spec.inspect(output, check) : check;
}

export function sshCheck(host: Host): Promise<Check> {
  return toolCheck(host, {
    id: "ssh",
    title: "ssh",
    names: ["ssh"],
    args: ["-V"],
    extract: sshVersion,
    minimum: MINIMUMS.ssh,
    blocking: true,
    fix: FIX.ssh,
  });
}

export async function scpCheck(host: Host): Promise<Check> {
  // scp has no version option; it comes from the same package as ssh.
  const path = await host.which("scp");
  const base = { id: "scp", title: "scp", required: "present", blocking: true };
  return path
    ? { ...base, status: "ok", found: "present", path }
    : { ...base, status: "fail", found: "not found", fix: FIX.ssh };
}

export function kvmToolChecks(host: Host): Promise<Check>[] {
  return [
    toolCheck(host, {
      id: "virsh",
      title: "virsh",
      names: ["virsh"],
      args: ["--version"],
      extract: bareVersion,
      minimum: MINIMUMS.virsh,
      blocking: true,
      fix: FIX.virsh,
    }),
    toolCheck(host, {
      id: "virt-install",
      title: "virt-install",
      names: ["virt-install"],
      args: ["--version"],
      extract: bareVersion,
      minimum: MINIMUMS.virtInstall,
      blocking: true,
      fix: FIX.virtinst,
    }),
    toolCheck(host, {
      id: "virt-clone",
      title: "virt-clone",
      names: ["virt-clone"],
      args: ["--version"],
      extract: bareVersion,
      minimum: MINIMUMS.virtClone,
      blocking: true,
      fix: FIX.virtinst,
    }),
    toolCheck(host, {
      id: "qemu-img",
      title: "qemu-img",
      names: ["qemu-img"],
      args: ["--version"],
      extract: qemuImgVersion,
      minimum: MINIMUMS.qemuImg,
      blocking: true,
      fix: FIX.qemuImg,
    }),
  ];
}

/**
 * Hardware virtualisation usable by KVM: a `vmx`/`svm` CPU flag, and not the `kvm_pvm` module
 * (a paravirtualised KVM inside a VM, where hardware guests hang). Without it, `accel: kvm`
 * would hang the first VM; the check says so instead and offers TCG.
 */
export async function kvmAccelCheck(host: Host, config: Config): Promise<Check> {
  const cpuinfo = await host.read("/proc/cpuinfo");
  const modules = await host.modules();
  const flag = cpuinfo === undefined ? undefined : virtFlag(cpuinfo);
  const pvm = modules.has("kvm_pvm");
  const usable = flag !== undefined && !pvm;
  const label = flag === "vmx" ? "vmx (Intel VT-x)" : flag === "svm" ? "svm (AMD-V)" : undefined;
  const base = {
    id: "kvm-accel",
    title: "hardware virtualisation",
    required: "vmx or svm CPU flag, no kvm_pvm",
  };
  if (config.kvm.accel === "tcg") {
    return {
      ...base,
      status: "ok",
      found: usable ? `tcg configured; ${label} is available` : "tcg configured",
      blocking: false,
      ...(usable
        ? { detail: "kvm.accel: kvm would run the VMs several times faster on this host" }
        : {}),
    };
  }
  if (cpuinfo === undefined) {
    return {
      ...base,
      status: "fail",
      found: `cannot read ${host.path("/proc/cpuinfo")}`,
      blocking: true,
      fix: "Set kvm.accel: tcg in the config (software emulation: slow, but needs no KVM)",
    };
  }
  if (usable) return { ...base, status: "ok", found: label ?? "", blocking: true };
  const found = pvm
    ? "kvm_pvm module (paravirtualised KVM, no hardware guests)"
    : "no vmx/svm flag in /proc/cpuinfo";
  const fix = pvm
    ? "Set kvm.accel: tcg in the config (software emulation: slow, but works here)"
    : "Enable VT-x/AMD-V in the firmware (BIOS/UEFI) setup, or for a nested VM enable nested virtualisation on its host\nor set kvm.accel: tcg in the config (software emulation: slow, but works)";
  return {
    ...base,
    status: "fail",
    found,
    blocking: true,
    detail: "A VM of type kvm would hang or abort at start on this host",
    fix,
  };
}

/**
 * `/dev/kvm` readable and writable. With `qemu:///session` QEMU runs as the user, so the user
 * needs it (blocking). With `qemu:///system` libvirt runs QEMU as its own user, so a user
 * without access is only told (warning); root always has access.
 */
export async function kvmDeviceCheck(host: Host, config: Config): Promise<Check> {
  const device = host.path("/dev/kvm");
  const session = isSessionUri(config.kvm.uri);
  const base = {
    id: "kvm-device",
    title: "/dev/kvm access",
    required: "read+write",
    blocking: true,
  };
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(device);
  } catch {
    return {
      ...base,
      status: "fail",
      found: "missing",
      detail: "The KVM kernel module is not loaded",
      fix:
        "sudo modprobe kvm_intel   # kvm_amd on AMD CPUs\n(if it fails: enable VT-x/AMD-V in the firmware setup, or set kvm.accel: tcg)",
    };
  }
  const identity = await host.identity();
  const access = await deviceAccess(device, info, identity);
  if (access === "yes") {
    return { ...base, status: "ok", found: identity?.uid === 0 ? "yes (root)" : "yes" };
  }
  const groupName = info.gid === null ? undefined : await host.groupName(info.gid);
  const group = groupName ?? "kvm";
  const user = identity === undefined ? '"$USER"' : shellQuote(identity.user);
  const entry = await host.group(group);
  const pendingLogin = entry !== undefined && identity !== undefined &&
    entry.members.includes(identity.user) && !identity.groups.some((g) => g.gid === entry.gid);
  const fix = pendingLogin
    ? `Log out and back in (or run: ${formatCommand(["newgrp", group])})`
    : `sudo usermod -aG ${shellQuote(group)} ${user}\nthen log out and back in (or run: ${
      formatCommand(["newgrp", group])
    })`;
  const found = pendingLogin ? `no (in group ${q(group)} after a re-login)` : "no";
  if (!session) {
    return {
      ...base,
      status: "warn",
      found,
      blocking: false,
      detail:
        `With ${config.kvm.uri} libvirt runs QEMU as its own user; only qemu:///session needs this`,
      fix,
    };
  }
  return { ...base, status: "fail", found, fix };
}

/**
 * Access to a device for the identity. When the identity is this process's own, an open for
 * read+write asks the kernel (ACLs from logind's `uaccess` included); for another identity the
 * mode bits are evaluated the way the kernel would.
 */
async function deviceAccess(
  device: string,
  info: Deno.FileInfo,
  identity: Identity | undefined,
): Promise<"yes" | "no"> {
  if (identity?.uid === 0) return "yes";
  if (identity === undefined || identity.uid === Deno.uid()) {
    try {
      const file = await Deno.open(device, { read: true, write: true });
      file.close();
      return "yes";
    } catch {
      return "no";
    }
  }
  const mode = info.mode ?? 0;
  const bits = identity.uid === info.uid
    ? (mode >> 6) & 7
    : identity.groups.some((g) => g.gid === info.gid) || identity.gid === info.gid
    ? (mode >> 3) & 7
    : mode & 7;
  return (bits & 6) === 6 ? "yes" : "no";
}

function isSessionUri(uri: string): boolean {
  return /^qemu(\+\w+)?:\/\/[^/]*\/session/.test(uri);
}

/**
 * Membership of the `libvirt` group, which lets a user reach `qemu:///system` without sudo, and
 * whether it takes effect only after a new login (in `/etc/group`, not in the process's groups).
 */
export async function libvirtGroupCheck(host: Host, config: Config): Promise<Check> {
  const base = {
    id: "libvirt-group",
    title: "libvirt group",
    required: "member (for qemu:///system)",
    blocking: false,
  };
  if (isSessionUri(config.kvm.uri)) {
    return { ...base, status: "ok", found: `not needed for ${config.kvm.uri}` };
  }
  const identity = await host.identity();
  if (identity?.uid === 0) return { ...base, status: "ok", found: "root" };
  const entry = await host.group("libvirt");
  if (entry === undefined) {
    return {
      ...base,
      status: "warn",
      found: "no libvirt group",
      detail: "libvirt's daemon package creates the group",
      fix: FIX.libvirtd,
    };
  }
  if (identity === undefined) {
    return {
      ...base,
      status: "warn",
      found: "unknown user",
      detail: "id did not answer",
      fix: 'sudo usermod -aG libvirt "$USER"\nthen log out and back in',
    };
  }
  const inProcess = identity.groups.some((g) => g.gid === entry.gid) || identity.gid === entry.gid;
  const listed = entry.members.includes(identity.user);
  if (inProcess) return { ...base, status: "ok", found: `${identity.user} is a member` };
  if (listed) {
    return {
      ...base,
      status: "warn",
      found: "member after a re-login",
      detail: `${q(identity.user)} was added to "libvirt", but this login session predates it`,
      fix: "Log out and back in (or run: newgrp libvirt)",
    };
  }
  return {
    ...base,
    status: "warn",
    found: "not a member",
    detail: `Without it, virsh asks for a password or is refused on ${q(config.kvm.uri)}`,
    fix: `${
      formatCommand(["sudo", "usermod", "-aG", "libvirt", identity.user])
    }\nthen log out and back in (or run: newgrp libvirt)`,
  };
}

/** The libvirt network the VMs attach to is defined and active (`virsh net-info`). */
export async function libvirtNetworkCheck(host: Host, config: Config): Promise<Check> {
  const { uri, libvirtNetwork: name } = config.kvm;
  const base = {
    id: "libvirt-network",
    title: `libvirt network ${name}`,
    required: "active",
    blocking: true,
  };
  const virsh = (...args: string[]) => formatCommand(["virsh", "-c", uri, ...args]);
  const start = `${virsh("net-start", name)} && ${virsh("net-autostart", name)}`;
  const probe = await host.run("virsh", ["-c", uri, "net-info", name]);
  if (!probe.ok) {
    if (probe.reason === "not found") {
      // The virsh check already blocks; this one cannot be answered without it.
      return { ...base, status: "warn", found: "not checked (virsh not found)", fix: FIX.virsh };
    }
    return {
      ...base,
      status: "fail",
      found: `error: ${probe.reason}`,
      detail: "libvirtd did not answer; it may be hung",
      fix:
        "sudo systemctl restart libvirtd\n(Fedora: sudo systemctl restart virtqemud virtnetworkd)",
    };
  }
  const out = probe.stdout;
  if (probe.code !== 0) {
    const err = probe.stderr;
    if (/failed to connect|Failed to connect socket|authentication|Permission denied/i.test(err)) {
      return {
        ...base,
        status: "fail",
        found: "cannot connect to libvirt",
        detail: lastLine(err),
        fix: /Permission denied|authentication/i.test(err)
          ? 'sudo usermod -aG libvirt "$USER"\nthen log out and back in (or run: newgrp libvirt)'
          : FIX.libvirtd,
      };
    }
    if (/Network not found|no network with matching name/i.test(err)) {
      const define = name === "default"
        ? `${virsh("net-define", "/usr/share/libvirt/networks/default.xml")} && ${start}`
        : `${virsh("net-define", `${name}.xml`)} && ${start}`;
      return { ...base, status: "fail", found: "not defined", detail: lastLine(err), fix: define };
    }
    return {
      ...base,
      status: "fail",
      found: `error: ${lastLine(err) || `exit code ${probe.code}`}`,
      fix: start,
    };
  }
  const active = /^Active:\s*(\S+)/m.exec(out)?.[1];
  const autostart = /^Autostart:\s*(\S+)/m.exec(out)?.[1];
  const bridge = /^Bridge:\s*(\S+)/m.exec(out)?.[1];
  if (active === "yes") {
    if (autostart === "no") {
      return {
        ...base,
        status: "warn",
        found: "active, autostart off",
        blocking: true,
        detail: "It will be inactive after the next reboot",
        fix: virsh("net-autostart", name),
      };
    }
    return { ...base, status: "ok", found: bridge ? `active (${bridge})` : "active" };
  }
  if (active === "no") return { ...base, status: "fail", found: "inactive", fix: start };
  return {
    ...base,
    status: "fail",
    found: "unknown",
    detail: `virsh net-info printed ${q(firstLine(out))}`,
    fix: start,
  };
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return lines[lines.length - 1] ?? "";
}

export function vboxCheck(host: Host): Promise<Check> {
  return toolCheck(host, {
    id: "vboxmanage",
    title: "VBoxManage",
    names: ["VBoxManage", "vboxmanage"],
    args: ["--version"],
    extract: vboxVersion,
    minimum: MINIMUMS.vbox,
    blocking: true,
    fix: FIX.vbox,
    // VBoxManage still prints its version when vboxdrv is missing, but no VM can start.
    inspect: (output, check) =>
      /vboxdrv kernel module is not loaded/.test(output)
        ? {
          ...check,
          status: "fail",
          detail: "The vboxdrv kernel module is not loaded: no VM can start",
          fix:
            "sudo /sbin/vboxconfig\n(on Secure Boot hosts, enroll the module signing key it prints, then reboot)",
        }
        : check,
  });
}

/**
 * On kernels ≥ 6.12 a loaded `kvm_intel`/`kvm_amd` takes the CPU's virtualisation at load time
 * (module parameter `kvm.enable_virt_at_load`, default on) and VirtualBox VMs fail with
 * VERR_VMX_IN_VMX_ROOT_MODE / VERR_SVM_IN_USE.
 */
export async function kvmVsVirtualboxCheck(host: Host): Promise<Check> {
  const base = {
    id: "kvm-vs-virtualbox",
    title: "KVM vs VirtualBox",
    required: "KVM not holding VT-x/AMD-V",
    blocking: false,
  };
  const release = (await host.read("/proc/sys/kernel/osrelease"))?.trim();
  const kernel = release === undefined ? undefined : kernelVersion(release);
  const modules = await host.modules();
  const loaded = ["kvm_intel", "kvm_amd"].find((m) => modules.has(m));
  if (loaded === undefined) return { ...base, status: "ok", found: "KVM modules not loaded" };
  if (kernel === undefined) {
    return {
      ...base,
      status: "warn",
      found: `${loaded} loaded, kernel unknown`,
      detail: `Cannot read ${host.path("/proc/sys/kernel/osrelease")}`,
      fix: enableVirtAtLoadFix(loaded),
    };
  }
  const atLeast612 = kernel[0] > 6 || (kernel[0] === 6 && kernel[1] >= 12);
  if (!atLeast612) {
    return {
      ...base,
      status: "ok",
      found: `${loaded} loaded, kernel ${release} (KVM takes VT-x only while its VMs run)`,
    };
  }
  const param = (await host.read("/sys/module/kvm/parameters/enable_virt_at_load"))?.trim();
  if (param === "N" || param === "0") {
    return { ...base, status: "ok", found: `${loaded} loaded, enable_virt_at_load=N` };
  }
  return {
    ...base,
    status: "warn",
    found: `${loaded} loaded, kernel ${release}`,
    detail:
      "Since Linux 6.12 KVM enables VT-x/AMD-V when loaded; VirtualBox VMs then fail to start",
    fix: enableVirtAtLoadFix(loaded),
  };
}

function enableVirtAtLoadFix(module: string): string {
  return [
    'echo "options kvm enable_virt_at_load=0" | sudo tee /etc/modprobe.d/kvm.conf',
    `${formatCommand(["sudo", "modprobe", "-r", module, "kvm"])} && ${
      formatCommand(["sudo", "modprobe", module])
    }`,
    "(or add kvm.enable_virt_at_load=0 to the kernel command line and reboot)",
  ].join("\n");
}

export function helmCheck(host: Host): Promise<Check> {
  return toolCheck(host, {
    id: "helm",
    title: "helm",
    names: ["helm"],
    args: ["version", "--short"],
    extract: helmVersion,
    minimum: MINIMUMS.helm,
    blocking: false,
    fix: FIX.helm,
  });
}

/** kubectl present, and within the ±1 minor skew Kubernetes supports against the apiserver. */
export async function kubectlCheck(host: Host, config: Config): Promise<Check> {
  const k8s = config.versions.kubernetes.startsWith("v")
    ? config.versions.kubernetes
    : `v${config.versions.kubernetes}`;
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  const fix = `${
    formatCommand([
      "curl",
      "-fLo",
      "kubectl",
      `https://dl.k8s.io/release/${k8s}/bin/linux/${arch}/kubectl`,
    ])
  } && sudo install -m 0755 kubectl /usr/local/bin/kubectl`;
  const target = minorOf(k8s);
  const required = target ? `${target[0]}.${target[1] - 1} to ${target[0]}.${target[1] + 1}` : k8s;
  const base = { id: "kubectl", title: "kubectl", required, blocking: false };
  const probe = await host.run("kubectl", ["version", "--client"]);
  if (!probe.ok) {
    return {
      ...base,
      status: "warn",
      found: probe.reason === "not found" ? "not found" : `error: ${probe.reason}`,
      detail: "dtk writes an admin kubeconfig; kubectl is how you use it",
      fix,
      ...(probe.path ? { path: probe.path } : {}),
    };
  }
  const version = kubectlVersion(`${probe.stdout}\n${probe.stderr}`);
  const found = version === undefined ? undefined : minorOf(version);
  if (version === undefined || found === undefined) {
    return {
      ...base,
      status: "warn",
      found: "unknown version",
      detail: `kubectl version --client printed ${q(firstLine(probe.stdout || probe.stderr))}`,
      fix,
      path: probe.path,
    };
  }
  if (target && (found[0] !== target[0] || Math.abs(found[1] - target[1]) > 1)) {
    return {
      ...base,
      status: "warn",
      found: version,
      detail: `kubectl supports one minor version of skew; the cluster runs ${k8s}`,
      fix,
      path: probe.path,
    };
  }
  return { ...base, status: "ok", found: version, path: probe.path };
}

/** Bytes the store may need for this config's downloads (before subtracting what it holds). */
export function storeNeedBytes(config: Config): number {
  let bytes = CORE_ARTIFACT_BYTES;
  if (config.vm.createTemplate && config.virt !== "test-nspawn") {
    bytes += config.vm.templateSource === "cloud-image"
      ? CLOUD_IMAGE_BYTES
      : ISO_BYTES[config.vm.linux];
    if (config.virt === "virtualbox") bytes += GUEST_ADDITIONS_BYTES;
  }
  return bytes;
}

/** The folder the driver puts VM disks in. */
export function vmDiskDir(config: Config, host: Host): string | undefined {
  const home = host.env("HOME") ?? "/root";
  if (config.virt === "kvm") {
    if (isSessionUri(config.kvm.uri)) {
      const data = host.env("XDG_DATA_HOME") ?? join(home, ".local", "share");
      return join(data, "libvirt", "images");
    }
    return host.path("/var/lib/libvirt/images");
  }
  if (config.virt === "virtualbox") return config.vbox.vboxdir ?? join(home, "VirtualBox VMs");
  return undefined;
}

/** Disks: the template's (when built) and one per VM, 30 GiB unless `disk` is set. */
function vmDisks(config: Config): number[] {
  const disks = config.vms.map((vm) => (vm.disk ?? DEFAULT_DISK_GIB) * GIB);
  if (config.vm.createTemplate) disks.push(DEFAULT_DISK_GIB * GIB);
  return disks;
}

/**
 * Free space for the store (full downloads: a shortfall is a warning because objects already in
 * the store need no room) and for the VM disks (thin-provisioned: short of their full size is a
 * warning, short of what a new node really occupies blocks). When both live on one filesystem
 * the VMs get what the store leaves.
 */
export async function diskChecks(host: Host, config: Config): Promise<Check[]> {
  const store = storeDir(config, host.env);
  const storeNeed = storeNeedBytes(config);
  const storeSpace = await host.freeSpace(store);
  const checks: Check[] = [];
  const storeBase = {
    id: "disk-store",
    title: "disk for the store",
    required: `${formatBytes(storeNeed)} free`,
    blocking: false,
    path: store,
  };
  if ("error" in storeSpace) {
    checks.push({
      ...storeBase,
      status: "warn",
      found: "unknown",
      detail: storeSpace.error,
      fix: install("coreutils"),
    });
  } else {
    const ok = storeSpace.availableBytes >= storeNeed;
    checks.push({
      ...storeBase,
      status: ok ? "ok" : "warn",
      found: `${formatBytes(storeSpace.availableBytes)} free on ${storeSpace.mountPoint}`,
      ...(ok ? {} : {
        detail: `The downloads (OS image, binaries, charts) may not fit in ${store}`,
        fix:
          `Free space on ${storeSpace.mountPoint}, or put the store elsewhere: export DTK_STORE=<folder on a larger disk>`,
      }),
    });
  }
  const dir = vmDiskDir(config, host);
  if (dir === undefined) return checks;
  const disks = vmDisks(config);
  const need = disks.reduce((a, b) => a + b, 0);
  const floor = disks.length * VM_FLOOR_BYTES;
  const base = {
    id: "disk-vms",
    title: "disk for the VMs",
    required: `${formatBytes(need)} (thin), at least ${formatBytes(floor)}`,
    blocking: true,
    path: dir,
  };
  const space = await host.freeSpace(dir);
  if ("error" in space) {
    checks.push({
      ...base,
      status: "warn",
      found: "unknown",
      detail: space.error,
      fix: install("coreutils"),
    });
    return checks;
  }
  const shared = !("error" in storeSpace) && sameFs(storeSpace, space);
  const available = shared ? Math.max(0, space.availableBytes - storeNeed) : space.availableBytes;
  const found = `${formatBytes(available)} free on ${space.mountPoint}${
    shared ? " (after the store)" : ""
  }`;
  const fix =
    `Free space on ${space.mountPoint}, or give the VMs smaller disks (vms[].disk, in GiB)`;
  if (available < floor) {
    return [
      ...checks,
      {
        ...base,
        status: "fail",
        found,
        detail: `${disks.length} new VMs need about ${formatBytes(VM_FLOOR_BYTES)} each right away`,
        fix,
      },
    ];
  }
  if (available < need) {
    return [
      ...checks,
      {
        ...base,
        status: "warn",
        found,
        detail: "The disks are thin-provisioned: they fill as the cluster is used",
        fix,
      },
    ];
  }
  return [...checks, { ...base, status: "ok", found }];
}

function sameFs(a: DiskSpace, b: DiskSpace): boolean {
  return a.mountPoint === b.mountPoint;
}

/** MemAvailable against the sum of the VMs' memory: short warns, below half blocks. */
export async function memoryCheck(host: Host, config: Config): Promise<Check> {
  const need = config.vms.reduce((sum, vm) => sum + vm.mem, 0) * MIB;
  const base = {
    id: "memory",
    title: "memory",
    required: `${formatBytes(need)} for ${config.vms.length} VMs`,
    blocking: true,
  };
  const meminfo = await host.read("/proc/meminfo");
  const available = meminfo === undefined ? undefined : parseMemAvailable(meminfo);
  if (available === undefined) {
    return {
      ...base,
      status: "warn",
      found: "unknown",
      detail: `Cannot read MemAvailable from ${host.path("/proc/meminfo")}`,
      fix: "Check free memory with: free -h",
    };
  }
  const found = `${formatBytes(available)} available`;
  const fix = "Close other programs, or lower vms[].mem in the config (MiB per VM)";
  if (available < need / 2) {
    return {
      ...base,
      status: "fail",
      found,
      detail: "Less than half of what the VMs are given: the host would swap or kill VMs",
      fix,
    };
  }
  if (available < need) {
    return {
      ...base,
      status: "warn",
      found,
      detail: "The VMs may be given more memory than is free; guests rarely use all of it",
      fix,
    };
  }
  return { ...base, status: "ok", found };
}
