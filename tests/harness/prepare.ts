/**
 * Builds the harness caches up front, so that test tiers measure tests, not cache builds:
 * the node rootfs, and the repacked artifacts (after `build_k8s.sh`, so they include
 * Kubernetes). Also removes leftovers of killed runs and artifact sets of older inputs (only here,
 * before tests run: a test process may still serve an older set). For `.ci/run`:
 *
 * ```sh
 * tests/harness/build_k8s.sh && deno run -A tests/harness/prepare.ts
 * ```
 *
 * @module
 */
import { LocalRunner } from "../../lib/exec/mod.ts";
import { ensureRootfs } from "./rootfs.ts";
import { k8sStatus, prepareArtifacts } from "./artifacts.ts";
import { sweepStale } from "./sweep.ts";
import { cacheRoot } from "./_util.ts";
import { dirname, join } from "node:path";
import { nodeSupport } from "./support.ts";

const runner = new LocalRunner();
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

let t = performance.now();
const swept = await sweepStale(runner);
console.error(`[harness] sweepStale: ${swept.dirs.length} stale run(s) removed (${seconds(t)})`);

const support = nodeSupport();
if (support.ok) {
  t = performance.now();
  const rootfs = await ensureRootfs(runner);
  console.error(`[harness] node rootfs ${rootfs} ready (${seconds(t)})`);
} else {
  console.error(`[harness] node rootfs skipped: ${support.reason}`);
}

t = performance.now();
const set = await prepareArtifacts({ runner });
const k8s = k8sStatus();
console.error(
  `[harness] ${set.artifacts.length} artifacts in ${set.dir} (${seconds(t)})` +
    (k8s.ok ? "" : `; without Kubernetes: ${k8s.reason}`),
);

for await (const entry of Deno.readDir(cacheRoot())) {
  const path = join(cacheRoot(), entry.name);
  if (/^artifacts-[0-9a-f]{16}$/.test(entry.name) && path !== dirname(set.dir)) {
    await Deno.remove(path, { recursive: true });
    console.error(`[harness] removed the outdated artifact set ${path}`);
  }
}
