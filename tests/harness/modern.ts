/**
 * The modern tier's artifacts: Debian sid's containerd 2.1.9, runc 1.3.6, CNI plugins 1.9.1, etcd
 * 3.5.30 and kubectl 1.36.4 in the upstream release layouts, built by `build_modern.sh` into
 * `/var/cache/dtk-test/modern/<recipe>/`. Served and locked like the 1.20 tier's set
 * (`startArtifactMirror`, `testLock`).
 *
 * What is not upstream's: the bytes (Debian's builds, dynamically linked); runc's ELF
 * interpreter and rpath, which point at `/opt/dtk-sid/lib` where a test puts the `sid-libs`
 * artifact (sid's glibc 2.43 loader and libc, libseccomp 2.6), because the bookworm nodes' glibc
 * 2.36 lacks a symbol sid's runc needs.
 *
 * @module
 */
import { join } from "node:path";
import type { ArtifactSet } from "./artifacts.ts";
import { cacheRoot } from "./_util.ts";

/** Must match `RECIPE` in build_modern.sh. */
export const MODERN_RECIPE = "v1";

export interface ModernSet extends ArtifactSet {
  /** Where the `sid-libs` tarball's `lib/` must be on a node for runc to start. */
  sidLibDir: string;
}

export function modernDir(): string {
  return join(cacheRoot(), "modern", MODERN_RECIPE);
}

/** Whether the modern set is built, and if not, why (tests skip with this reason). */
export function modernStatus(): { ok: boolean; reason: string } {
  try {
    Deno.statSync(join(modernDir(), ".complete"));
    Deno.statSync(join(modernDir(), "index.json"));
    return { ok: true, reason: "" };
  } catch {
    return {
      ok: false,
      reason: `no modern artifact set in ${modernDir()}; run tests/harness/build_modern.sh ` +
        "(~2 min, needs Debian's sid on the apt mirror)",
    };
  }
}

/** The built set. Throws when `modernStatus()` is not ok. */
export async function loadModernSet(): Promise<ModernSet> {
  const set = JSON.parse(await Deno.readTextFile(join(modernDir(), "index.json"))) as ModernSet;
  for (const name of ["containerd", "runc", "cni-plugins", "etcd", "kubectl", "sid-libs"]) {
    if (!set.artifacts.some((a) => a.name === name)) {
      throw new Error(`${modernDir()}/index.json has no ${name}: rebuild it`);
    }
  }
  return set;
}
