/**
 * Image fetch benchmark: `dtk fetch` of a multi-layer image (6 gzip layers, 336 MiB) from a
 * loopback Debian `docker-registry` into a fresh store, against `skopeo copy docker://… oci:DIR`
 * of the same image from the same registry, in the same run (best of 3 each, alternated).
 *
 * @module
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { ensureLock, type Lockfile, ObjectStore, resolveImages } from "../../store/mod.ts";
import { missingTools, push, skopeo, startUpstream } from "../store/_upstream.ts";
import type { BenchResult } from "./types.ts";

const MiB = 1 << 20;
const LAYERS = 6;
const LAYER_BYTES = 56 * MiB;

const hexOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** An OCI layout at `dir` holding `big:1`: incompressible layers stored as gzip (level 0). */
async function writeBigImage(dir: string): Promise<number> {
  const blobs = join(dir, "blobs", "sha256");
  await Deno.mkdir(blobs, { recursive: true });
  const put = async (bytes: Uint8Array) => {
    const hex = hexOf(bytes);
    await Deno.writeFile(join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const layers = [];
  const raw = new Uint8Array(LAYER_BYTES);
  for (let i = 0; i < LAYERS; i++) {
    for (let off = 0; off < raw.length; off += 65536) {
      crypto.getRandomValues(raw.subarray(off, off + 65536));
    }
    // Gzip level 0: a real gzip stream of random bytes, so skopeo keeps it as it is.
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      ...await put(gzipSync(raw, { level: 0 })),
    });
  }
  const config = await put(new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
  })));
  const manifest = await put(new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers,
  })));
  await Deno.writeTextFile(
    join(dir, "oci-layout"),
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
  await Deno.writeTextFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "1" },
      }],
    }),
  );
  return manifest.size + config.size + layers.reduce((n, l) => n + l.size, 0);
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

export async function run(): Promise<BenchResult[]> {
  const missing = await missingTools(["docker-registry", "skopeo"]);
  if (missing.length > 0) {
    console.error(`image_bench: skipped: ${missing.join(", ")} not installed`);
    return [];
  }
  const dir = await Deno.makeTempDir({ prefix: "dtk-image-bench-" });
  const up = await startUpstream(join(dir, "upstream"));
  try {
    const layout = join(dir, "layout");
    const bytes = await writeBigImage(layout);
    const ref = `${up.host}/bench/big:1`;
    await push(layout, "1", ref);
    await Deno.remove(layout, { recursive: true });
    const resolved = await resolveImages([ref], "amd64", {});
    if (resolved.failures.length > 0) throw new Error(resolved.failures[0]!.message);
    const lock: Lockfile = { version: 1, artifacts: resolved.artifacts };
    let dtk = Infinity;
    let ref_ = Infinity;
    for (let i = 0; i < 3; i++) {
      const storeDir = join(dir, `store-${i}`);
      dtk = Math.min(
        dtk,
        await seconds(() => ensureLock(lock, { store: new ObjectStore(storeDir), jobs: 4 })),
      );
      await Deno.remove(storeDir, { recursive: true });
      const out = join(dir, `oci-${i}`);
      ref_ = Math.min(
        ref_,
        await seconds(async () => {
          const r = await skopeo([
            "copy",
            "--src-tls-verify=false",
            `docker://${ref}`,
            `oci:${out}:big`,
          ]);
          if (r.code !== 0) throw new Error(`skopeo copy failed: ${r.stderr}`);
        }),
      );
      await Deno.remove(out, { recursive: true });
    }
    const rate = (s: number) => bytes / MiB / s;
    return [{
      name: `dtk fetch of a ${LAYERS}-layer image (${
        Math.round(bytes / MiB)
      } MiB, loopback docker-registry)`,
      value: rate(dtk),
      unit: "MiB/s",
      reference: `skopeo copy docker:// oci:: ${rate(ref_).toFixed(1)} MiB/s`,
      ratio: ref_ / dtk,
      goal: ">= 1.0x skopeo",
    }];
  } finally {
    await up.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
