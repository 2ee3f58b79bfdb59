/**
 * The node root filesystem: one debootstrap tree, built once per machine and cached under
 * `/var/cache/dtk-test/rootfs-<recipe hash>/`, shared read-only by every node through overlayfs.
 *
 * @module
 */
import { join } from "node:path";
import type { Runner } from "../../lib/exec/mod.ts";
import { PrerequisiteError } from "../../lib/errors/mod.ts";
import { exists } from "../../lib/fs/mod.ts";
import { cacheRoot, sha256Text } from "./_util.ts";

/**
 * What a dtk node needs: systemd + sshd for the provisioning, and what containerd, runc and the
 * kubelet call at run time (iptables, conntrack, socat, mount, nsenter, ethtool). python3 is not
 * needed. libseccomp2: the Debian runc links it.
 */
export const ROOTFS_PACKAGES: readonly string[] = [
  "systemd-sysv",
  "dbus",
  "openssh-server",
  "iproute2",
  "kmod",
  "procps",
  "iptables",
  "ca-certificates",
  "conntrack",
  "socat",
  "tar",
  "curl",
  "util-linux",
  "mount",
  "ethtool",
  "libseccomp2",
  "less",
];

const SUITE = "bookworm";

/**
 * Runs in the chroot after debootstrap. Host keys are removed so that no two nodes share one:
 * each node gets its own at clone time. Units that cannot work in a container (consoles, udev
 * hardware probing) are masked so `systemctl is-system-running` can say `running`.
 */
const POST_SCRIPT = `set -eu
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/ssh/sshd_config.d /root/.ssh
chmod 700 /root/.ssh
cat >/etc/ssh/sshd_config.d/10-dtk-test.conf <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
EOF
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id
for unit in console-getty.service getty@.service serial-getty@.service \\
  systemd-networkd-wait-online.service systemd-udevd.service systemd-udev-trigger.service \\
  systemd-udev-settle.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \\
  fstrim.timer systemd-timesyncd.service; do
  ln -sf /dev/null /etc/systemd/system/$unit
done
systemctl enable ssh.service >/dev/null 2>&1 || true
update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null 2>&1 || true
update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/*.log
`;

/** The recipe; its hash names the cache folder, so any change builds a new rootfs. */
export function rootfsRecipe(): {
  suite: string;
  variant: string;
  packages: string[];
  post: string;
} {
  return { suite: SUITE, variant: "minbase", packages: [...ROOTFS_PACKAGES], post: POST_SCRIPT };
}

export function rootfsPath(): string {
  const hash = sha256Text(JSON.stringify(rootfsRecipe())).slice(0, 16);
  return join(cacheRoot(), `rootfs-${hash}`);
}

/** The Debian mirror this machine's apt already uses. */
export async function debianMirror(): Promise<string> {
  const candidates: string[] = [];
  try {
    for await (const entry of Deno.readDir("/etc/apt/sources.list.d")) {
      if (!entry.isFile) continue;
      if (!entry.name.endsWith(".sources") && !entry.name.endsWith(".list")) continue;
      candidates.push(await Deno.readTextFile(join("/etc/apt/sources.list.d", entry.name)));
    }
  } catch { /* no folder */ }
  try {
    candidates.push(await Deno.readTextFile("/etc/apt/sources.list"));
  } catch { /* no file */ }
  for (const text of candidates) {
    const deb822 = text.match(/^URIs:\s*(\S+\/debian)\s*$/m);
    if (deb822?.[1]) return deb822[1];
    const oneLine = text.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm\s/m);
    if (oneLine?.[1]) return oneLine[1];
  }
  return "http://deb.debian.org/debian";
}

/**
 * Returns the cached rootfs, building it first when missing (~1-2 min: debootstrap from the
 * Debian mirror). Built in a temp folder and renamed into place; `flock` makes concurrent test
 * processes wait for one build.
 */
export async function ensureRootfs(
  runner: Runner,
  options: { timeoutMs?: number } = {},
): Promise<string> {
  const path = rootfsPath();
  if (await exists(join(path, ".complete"))) return path;
  for (const tool of ["debootstrap", "flock", "chroot"]) {
    const found = await runner.run(["sh", "-c", `command -v ${tool}`], { check: false });
    if (!found.success) {
      throw new PrerequisiteError(`Cannot build the node rootfs: ${tool} is missing`, {
        hint: "Install it: apt-get install -y debootstrap util-linux coreutils",
      });
    }
  }
  await Deno.mkdir(cacheRoot(), { recursive: true });
  const mirror = await debianMirror();
  const temp = `${path}.tmp-${Deno.pid}`;
  const script = `set -eu
if [ -f '${path}/.complete' ]; then exit 0; fi
# Under the lock no other build runs: temp folders left here are from killed builds.
rm -rf '${path}' '${path}'.tmp-*
debootstrap --variant=minbase --include=${
    ROOTFS_PACKAGES.join(",")
  } ${SUITE} '${temp}' '${mirror}' >'${temp}.log' 2>&1 || { tail -n 30 '${temp}.log' >&2; exit 1; }
chroot '${temp}' /bin/sh -s <<'DTK_POST'
${POST_SCRIPT}
DTK_POST
date -u +%Y-%m-%dT%H:%M:%SZ >'${temp}/.complete'
mv '${temp}' '${path}'
rm -f '${temp}.log'
`;
  await runner.run(["flock", `${path}.lock`, "sh", "-c", script], {
    timeoutMs: options.timeoutMs ?? 15 * 60_000,
    what: `build the node rootfs in ${path}`,
  });
  return path;
}
