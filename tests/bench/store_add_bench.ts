/**
 * `dtk store add` of a 768 MiB file onto disk (copy, hash, fsync, rename into the store) against
 * what a careful user would run for the same result: `cp`, `sync` of the copy, `openssl dgst
 * -sha256`. The ratio is dtk's time over theirs, measured alternately in the same run; goal ≤ 1.0.
 * `deno task bench store_add` runs only this.
 *
 * @module
 */
import { join } from "node:path";
import { addFile, ObjectStore } from "../../store/mod.ts";
import type { BenchResult } from "./types.ts";

const SIZE = 768 << 20;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** Incompressible, no two 16 MiB blocks alike (a filesystem that dedupes gains nothing). */
async function makeFile(path: string, size: number): Promise<void> {
  const block = new Uint8Array(16 << 20);
  for (let i = 0; i < block.length; i += 65536) {
    crypto.getRandomValues(block.subarray(i, i + 65536));
  }
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for (let off = 0; off < size; off += block.length) {
      block[0] = off / block.length;
      let n = 0;
      const part = block.subarray(0, Math.min(block.length, size - off));
      while (n < part.length) n += await f.write(part.subarray(n));
    }
    await f.sync();
  } finally {
    f.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  // On the disk of the temp folder, not tmpfs: the fsync is part of what is compared.
  const dir = await Deno.makeTempDir({ prefix: "dtk-add-bench-" });
  try {
    const src = join(dir, "src.bin");
    await makeFile(src, SIZE);
    const store = new ObjectStore(join(dir, "store"));
    const dtk = async () => {
      const added = await addFile(store, src);
      await store.remove(added.hex);
    };
    const copy = join(dir, "copy.bin");
    const reference = async () => {
      await sh("cp", [src, copy]);
      await sh("sync", [copy]);
      await sh("openssl", ["dgst", "-sha256", src]);
      await Deno.remove(copy);
    };
    // Warm the page cache for both, then alternate so a busy moment hits both alike.
    await sh("cat", [src]);
    let d = Infinity;
    let r = Infinity;
    for (let i = 0; i < 3; i++) {
      d = Math.min(d, await time(dtk));
      r = Math.min(r, await time(reference));
    }
    const mibps = (s: number) => SIZE / (1 << 20) / s;
    return [{
      name: "store: dtk store add of 768 MiB onto disk (copy+hash+fsync+rename)",
      value: d,
      unit: "s",
      reference: `cp + sync + openssl dgst -sha256 ${r.toFixed(3)} s (dtk ${
        mibps(d).toFixed(0)
      } MiB/s, reference ${mibps(r).toFixed(0)} MiB/s)`,
      ratio: d / r,
      goal: "<= 1.0x the reference's time",
    }];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  for (const r of await run()) {
    console.log(`${r.name}: ${r.value.toFixed(3)} ${r.unit}; ratio ${r.ratio?.toFixed(2)}`);
    console.log(`  ref: ${r.reference}; goal ${r.goal}`);
  }
}
