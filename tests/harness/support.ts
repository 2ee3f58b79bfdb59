/**
 * Whether this machine can run nspawn nodes, checked synchronously so that tests can pass the
 * result to `Deno.test({ ignore })` and name the reason.
 *
 * @module
 */
import { rootfsPath } from "./rootfs.ts";

function onPath(tool: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${tool}`).isFile) return true;
    } catch { /* not here */ }
  }
  return false;
}

export function nodeSupport(): { ok: boolean; reason: string } {
  if (Deno.build.os !== "linux") return { ok: false, reason: "nspawn nodes need Linux" };
  if (Deno.uid() !== 0) return { ok: false, reason: "nspawn nodes need root" };
  for (
    const [tool, pkg] of [
      ["systemd-nspawn", "systemd-container"],
      ["ip", "iproute2"],
      ["ssh", "openssh-client"],
      ["ssh-keygen", "openssh-client"],
    ]
  ) {
    if (!onPath(tool!)) return { ok: false, reason: `${tool} missing (apt-get install ${pkg})` };
  }
  let rootfsCached = false;
  try {
    Deno.statSync(`${rootfsPath()}/.complete`);
    rootfsCached = true;
  } catch { /* not built yet */ }
  if (!rootfsCached && !onPath("debootstrap")) {
    return {
      ok: false,
      reason: "no cached node rootfs and debootstrap missing (apt-get install debootstrap)",
    };
  }
  try {
    if (!Deno.readTextFileSync("/proc/filesystems").includes("overlay")) {
      return { ok: false, reason: "the kernel has no overlayfs" };
    }
  } catch {
    return { ok: false, reason: "cannot read /proc/filesystems" };
  }
  return { ok: true, reason: "" };
}
