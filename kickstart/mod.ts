/**
 * Kickstart templates (embedded in the program) and what renders them, plus the cloud-init
 * `cidata` seed of the cloud-image template path and of every KVM clone.
 *
 * Values are inserted by plain string substitution, never through `sed` or a regex replacement,
 * and the public key lands in a quoted here-document: whatever bytes it holds (`/`, `&`, `\`,
 * `$`), it arrives intact.
 *
 * @module
 */
import { HOSTS_BEGIN, HOSTS_END } from "../lib/render/mod.ts";
import { stringify } from "yaml";
import { q, UsageError } from "../lib/errors/mod.ts";
import type { Linux } from "../lib/config/types.ts";
import type { IsoFile } from "../lib/iso/mod.ts";
import type { HostKey } from "../drivers/types.ts";
import kvmText from "./kvm.text.ks.cfg" with { type: "text" };
import vboxText from "./vbox.text.ks.cfg" with { type: "text" };
import firstBootScript from "./desktop-kubernetes.sh" with { type: "text" };
import firstBootUnit from "./desktop-kubernetes.service" with { type: "text" };

/** What differs between the supported distributions. */
export interface Distro {
  linux: Linux;
  /** Human name, e.g. `AlmaLinux 9`. */
  title: string;
  /** `virt-install --os-variant` value. */
  osVariant: string;
  /** AppStream repository on the mounted DVD, as Anaconda of that release mounts it. */
  appstreamUrl: string;
  /**
   * Kernel arguments the installed system boots with. EL8 boots cgroup v1 by default, which the
   * kubelet refuses from Kubernetes 1.35 (`failCgroupV1`); `systemd.unified_cgroup_hierarchy=1`
   * is Red Hat's documented switch to cgroup v2 on EL8. EL9 is on v2 already.
   */
  kernelArgs: string;
}

const EL9_DVD = "file:///run/install/sources/mount-0000-cdrom/AppStream";
const EL8_DVD = "file:///run/install/repo/AppStream";
const EL8_CGROUP_V2 = "systemd.unified_cgroup_hierarchy=1";

export const DISTROS: Readonly<Record<Linux, Distro>> = {
  alma9: {
    linux: "alma9",
    title: "AlmaLinux 9",
    osVariant: "almalinux9",
    appstreamUrl: EL9_DVD,
    kernelArgs: "",
  },
  alma8: {
    linux: "alma8",
    title: "AlmaLinux 8",
    osVariant: "almalinux8",
    appstreamUrl: EL8_DVD,
    kernelArgs: EL8_CGROUP_V2,
  },
  centos9: {
    linux: "centos9",
    title: "CentOS Stream 9",
    osVariant: "centos-stream9",
    appstreamUrl: EL9_DVD,
    kernelArgs: "",
  },
  rocky: {
    linux: "rocky",
    title: "Rocky Linux 8",
    osVariant: "rocky8",
    appstreamUrl: EL8_DVD,
    kernelArgs: EL8_CGROUP_V2,
  },
};

/** Embedded templates by the names config uses (`kvm.kickstart`, `vbox.kickstart`). */
export const KICKSTARTS: Readonly<Record<string, string>> = {
  "kvm.text.ks.cfg": kvmText,
  "vbox.text.ks.cfg": vboxText,
};

export interface KickstartOptions {
  linux: Linux;
  /** `ssh-ed25519 AAAA… comment`: one line. */
  authorizedKey: string;
}

/** Renders the embedded template `name` for a distribution and a key. */
export function renderKickstart(name: string, options: KickstartOptions): string {
  const template = KICKSTARTS[name];
  if (template === undefined) {
    throw new UsageError(`Unknown kickstart ${q(name)}`, {
      hint: `Use one of: ${Object.keys(KICKSTARTS).join(", ")}`,
    });
  }
  return renderTemplate(template, options);
}

/** Renders any template text with the `{{…}}` placeholders of the embedded ones. */
export function renderTemplate(template: string, options: KickstartOptions): string {
  const key = checkPublicKey(options.authorizedKey);
  const distro = DISTROS[options.linux];
  let heredoc = "DTK_AUTHORIZED_KEYS";
  for (let n = 1; key.includes(heredoc); n++) heredoc = `DTK_AUTHORIZED_KEYS_${n}`;
  const values: Record<string, string> = {
    DISTRO_NAME: distro.title,
    APPSTREAM_URL: distro.appstreamUrl,
    HEREDOC: heredoc,
    AUTHORIZED_KEY: key,
    BOOTLOADER_APPEND: distro.kernelArgs === "" ? "" : ` --append="${distro.kernelArgs}"`,
  };
  // One pass over the template, so a value that itself looks like a placeholder stays as it is.
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (whole, name: string) => values[name] ?? whole);
}

/** The files of the VirtualBox `OEMDRV` volume. Never a private key: only the public one, inline. */
export function oemdrvFiles(name: string, options: KickstartOptions): IsoFile[] {
  return [
    { name: "ks.cfg", data: renderKickstart(name, options) },
    { name: "desktop-kubernetes.sh", data: firstBootScript },
    { name: "desktop-kubernetes.service", data: firstBootUnit },
  ];
}

/** A public key must be one line; anything else would end the here-document early. */
export function checkPublicKey(key: string): string {
  const trimmed = key.trim();
  if (trimmed === "" || /[\r\n\0]/.test(trimmed)) {
    throw new UsageError("Invalid SSH public key: it must be exactly one non-empty line", {
      hint: "Pass the content of the .pub file, e.g. ssh-ed25519 AAAA… comment",
    });
  }
  if (trimmed.includes("PRIVATE KEY")) {
    throw new UsageError("Refusing to place a private SSH key where a public key belongs", {
      hint: "Pass the content of the .pub file",
    });
  }
  return trimmed;
}

export interface CloudInitOptions {
  hostname: string;
  authorizedKey: string;
  /** dtk's host key for the node; without it cloud-init generates fresh ones. */
  hostKey?: HostKey;
  /** Static IPv4 as `a.b.c.d/len` with its gateway; DHCP on the first NIC when absent. */
  staticIp?: { address: string; gateway: string; dns?: string[] };
  /** Lines of `/etc/hosts` to manage (`ip name`), kept in one marked block. */
  hosts?: { ip: string; name: string }[];
}

export interface CloudInitSeed {
  userData: string;
  metaData: string;
  networkConfig: string;
}

/** Renders the NoCloud seed: `user-data`, `meta-data`, `network-config`. */
export function renderCloudInit(options: CloudInitOptions): CloudInitSeed {
  const key = checkPublicKey(options.authorizedKey);
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(options.hostname)) {
    throw new UsageError(`Invalid host name ${q(options.hostname)}`, {
      hint: "Use lower-case letters, digits and dashes (RFC 1123), e.g. vm1",
    });
  }
  const user: Record<string, unknown> = {
    hostname: options.hostname,
    preserve_hostname: false,
    // Root logs in with dtk's key; cloud-init would otherwise wrap it in a "login as …" command.
    disable_root: false,
    users: [],
    ssh_pwauth: false,
    locale: "C.UTF-8",
    ssh_deletekeys: true,
  };
  if (options.hostKey) {
    user.ssh_keys = {
      ed25519_private: options.hostKey.privateKey.endsWith("\n")
        ? options.hostKey.privateKey
        : `${options.hostKey.privateKey}\n`,
      ed25519_public: `${checkPublicKey(options.hostKey.publicKey)}\n`,
    };
    user.ssh_genkeytypes = [];
  }
  if (options.hosts && options.hosts.length > 0) {
    user.bootcmd = [["sh", "-c", hostsScript(options.hosts)]];
  }
  const meta = {
    "instance-id": `dtk-${options.hostname}`,
    "local-hostname": options.hostname,
    "public-keys": [key],
  };
  const ethernet: Record<string, unknown> = options.staticIp
    ? {
      match: { name: "e*" },
      addresses: [options.staticIp.address],
      routes: [{ to: "0.0.0.0/0", via: options.staticIp.gateway }],
      ...(options.staticIp.dns ? { nameservers: { addresses: options.staticIp.dns } } : {}),
    }
    : { match: { name: "e*" }, dhcp4: true };
  return {
    userData: `#cloud-config\n${stringify(user, { lineWidth: 0 })}`,
    metaData: stringify(meta, { lineWidth: 0 }),
    networkConfig: stringify({ version: 2, ethernets: { primary: ethernet } }, { lineWidth: 0 }),
  };
}

/** The seed as ISO files for a volume labelled `cidata`. */
export function cidataFiles(options: CloudInitOptions): IsoFile[] {
  const seed = renderCloudInit(options);
  return [
    { name: "user-data", data: seed.userData },
    { name: "meta-data", data: seed.metaData },
    { name: "network-config", data: seed.networkConfig },
  ];
}

/**
 * A POSIX shell script doing what `updateHosts` (lib/render) does, on a node at boot (cloud-init
 * `bootcmd`): the same marked block, so the pipeline and the boot script never add a second one.
 */
export function hostsScript(
  entries: readonly { ip: string; name: string }[],
  options: { path?: string } = {},
): string {
  const path = options.path ?? "/etc/hosts";
  if (!/^\/[\w./-]+$/.test(path)) throw new UsageError(`Invalid hosts file path ${q(path)}`);
  for (const e of entries) {
    if (!/^[0-9a-fA-F.:]+$/.test(e.ip) || !/^[A-Za-z0-9.-]+$/.test(e.name)) {
      throw new UsageError(`Invalid hosts entry ${q(`${e.ip} ${e.name}`)}`);
    }
  }
  const block = [HOSTS_BEGIN, ...entries.map((e) => `${e.ip} ${e.name}`), HOSTS_END].join("\n");
  const names = entries.map((e) => e.name).join("|");
  return [
    "set -eu",
    `t=$(mktemp ${path}.dtk.XXXXXX)`,
    `awk -v b='${HOSTS_BEGIN}' -v e='${HOSTS_END}' ` +
    `'$0==b{skip=1;next} $0==e{skip=0;next} skip{next} ` +
    `NF==2 && $1 ~ /^[0-9.]+$/ && $2 ~ /^(${
      names.replaceAll(".", "\\.")
    })$/ {next} {print}' ${path} > "$t"`,
    `cat >> "$t" <<'DTK_HOSTS'\n${block}\nDTK_HOSTS`,
    'chmod 0644 "$t"',
    `mv -f "$t" ${path}`,
  ].join("\n");
}
