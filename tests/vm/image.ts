/**
 * A small Debian disk image with cloud-init for the real-VM tests: built once by debootstrap,
 * `mkfs.ext4 -d` and `qemu-img`, then cached under `/var/cache/dtk-test/vm-image-<recipe hash>/`
 * so that later runs (and other tests on the same machine) start in seconds.
 *
 * The image has no SSH host keys, no authorized key and no fixed hostname: all of those come from
 * the `cidata` seed dtk writes, which is what the tests want to prove.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";
import { exists } from "../../lib/fs/mod.ts";

/** A built image: a qcow2 root filesystem on `/dev/vda` (no partitions) and a kernel to boot it. */
export interface TestImage {
  dir: string;
  disk: string;
  kernel: string;
  initrd: string;
  /** Kernel command line for direct kernel boot. */
  cmdline: string;
}

const SUITE = "bookworm";
const MIRROR = "http://deb.debian.org/debian";
const PACKAGES = [
  "systemd-sysv",
  "udev",
  "openssh-server",
  "linux-image-amd64",
  "initramfs-tools",
  "iproute2",
  "kmod",
  "ca-certificates",
  "cloud-init",
  // debootstrap does not resolve virtual packages: this one provides python3-cffi-backend-api-*.
  "python3-cffi-backend",
];
const CLOUD_CFG = `datasource_list: [ NoCloud, None ]
`;
// DHCP on any NIC as a fallback: slirp answers DHCP; a network-config from cidata (rendered by
// cloud-init as 10-cloud-init-*.network) sorts first and wins when present.
const NETWORKD_FALLBACK = `[Match]
Name=en*

[Network]
DHCP=ipv4
`;
const FSTAB = "/dev/vda / ext4 defaults 0 1\n";
const CMDLINE = "root=/dev/vda rw console=ttyS0 panic=-1";

/** The recipe, hashed into the cache folder's name: change it and a new image is built. */
function recipe(): string {
  return JSON.stringify({
    v: 1,
    SUITE,
    PACKAGES,
    CLOUD_CFG,
    NETWORKD_FALLBACK,
    FSTAB,
    CMDLINE,
    size: "2G",
  });
}

export function imageDir(cacheRoot = "/var/cache/dtk-test"): string {
  const hash = createHash("sha256").update(recipe()).digest("hex").slice(0, 16);
  return join(cacheRoot, `vm-image-${hash}`);
}

/** Returns the cached image, building it first when missing (about 3 minutes). */
export async function ensureTestImage(
  options: { cacheRoot?: string; runner?: Runner; log?: (line: string) => void } = {},
): Promise<TestImage> {
  const dir = imageDir(options.cacheRoot);
  const image: TestImage = {
    dir,
    disk: join(dir, "base.qcow2"),
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.img"),
    cmdline: CMDLINE,
  };
  if (await exists(join(dir, "recipe.json"))) return image;
  const runner = options.runner ?? new LocalRunner();
  const log = options.log ?? (() => {});
  await Deno.mkdir(join(dir, ".."), { recursive: true });
  // One builder per machine: a second test process waits for the first one's result.
  const lock = await Deno.open(`${dir}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    if (await exists(join(dir, "recipe.json"))) return image;
    const work = `${dir}.build-${Deno.pid}`;
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await Deno.mkdir(work, { recursive: true });
    try {
      const rootfs = join(work, "rootfs");
      log(`debootstrap ${SUITE} into ${rootfs}`);
      await runner.run([
        "debootstrap",
        "--variant=minbase",
        `--include=${PACKAGES.join(",")}`,
        SUITE,
        rootfs,
        MIRROR,
      ], { timeoutMs: 20 * 60_000, what: "debootstrap of the test VM image" });
      await writeText(join(rootfs, "etc/cloud/cloud.cfg.d/90-dtk-test.cfg"), CLOUD_CFG);
      await writeText(join(rootfs, "etc/systemd/network/80-dhcp.network"), NETWORKD_FALLBACK);
      await writeText(join(rootfs, "etc/fstab"), FSTAB);
      await writeText(join(rootfs, "etc/hostname"), "localhost\n");
      await runner.run(["chroot", rootfs, "systemctl", "enable", "systemd-networkd"], {
        timeoutMs: 60_000,
      });
      // No host keys in the image: each VM gets its own from cloud-init (dtk's or generated).
      for await (const entry of Deno.readDir(join(rootfs, "etc/ssh"))) {
        if (entry.name.startsWith("ssh_host_")) {
          await Deno.remove(join(rootfs, "etc/ssh", entry.name));
        }
      }
      await Deno.remove(join(rootfs, "etc/machine-id")).catch(() => {});
      await Deno.writeTextFile(join(rootfs, "etc/machine-id"), "");
      let kernel: string | undefined;
      let initrd: string | undefined;
      for await (const entry of Deno.readDir(join(rootfs, "boot"))) {
        if (entry.name.startsWith("vmlinuz-")) kernel = entry.name;
        if (entry.name.startsWith("initrd.img-")) initrd = entry.name;
      }
      if (!kernel || !initrd) throw new Error("debootstrap left no kernel or initrd in /boot");
      await Deno.copyFile(join(rootfs, "boot", kernel), join(work, "vmlinuz"));
      await Deno.copyFile(join(rootfs, "boot", initrd), join(work, "initrd.img"));
      log("mkfs.ext4 -d and qemu-img convert");
      await runner.run(
        ["mkfs.ext4", "-q", "-F", "-L", "root", "-d", rootfs, join(work, "disk.raw"), "2G"],
        { timeoutMs: 10 * 60_000 },
      );
      await runner.run([
        "qemu-img",
        "convert",
        "-O",
        "qcow2",
        join(work, "disk.raw"),
        join(work, "base.qcow2"),
      ], { timeoutMs: 10 * 60_000 });
      await Deno.remove(join(work, "disk.raw"));
      await Deno.remove(rootfs, { recursive: true });
      await Deno.chmod(join(work, "base.qcow2"), 0o444);
      await writeText(join(work, "recipe.json"), recipe());
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.rename(work, dir);
    } catch (error) {
      await Deno.remove(work, { recursive: true }).catch(() => {});
      throw error;
    }
    return image;
  } finally {
    lock.close();
  }
}

// Files inside the build folder need no atomic write: the folder is renamed into place at the end.
async function writeText(path: string, text: string): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, text);
}

if (import.meta.main) {
  const image = await ensureTestImage({ log: (l) => console.error(l) });
  console.log(JSON.stringify(image, null, 2));
}
