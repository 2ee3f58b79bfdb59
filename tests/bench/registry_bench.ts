/**
 * Serving benchmark: a concurrent pull of every blob of an 8-layer image (256 MiB) from
 * `dtk registry` (the real command, its own process, over a store seeded with the image) vs the
 * same blobs from Debian's `docker-registry` on 127.0.0.1, in the same run. The client is curl
 * with every blob at once (`--parallel`), the same for both; best of 5 each, alternated.
 *
 * @module
 */
import { join } from "node:path";
import { missingTools, push, startUpstream } from "../store/_upstream.ts";
import { imageArtifacts, seedStore, syntheticLayout } from "../registry/_images.ts";
import type { BenchResult } from "./types.ts";

const MiB = 1 << 20;
const LAYERS = 8;
const LAYER_BYTES = 32 * MiB;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

/** `dtk registry` in its own process; resolves once it printed its address (bounded). */
async function startDtkRegistry(lockFile: string, storeDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "registry", "--listen", "127.0.0.1:0", "--lock", lockFile],
    env: { DTK_STORE: storeDir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`dtk registry did not start: ${await stderr}`);
    text += new TextDecoder().decode(value);
  }
  clearTimeout(killer);
  const drained = (async () => {
    while (!(await reader.read()).done) { /* until it exits */ }
  })();
  const host = text.split("\n")[0]!.replace(/^http:\/\//, "");
  return {
    host,
    async stop() {
      child.kill("SIGTERM");
      const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(force);
      await drained;
      await stderr;
    },
  };
}

/** curl fetches every URL at once, to /dev/null; throws unless every one answered 200. */
async function pullAll(urls: readonly string[]): Promise<void> {
  const args = ["-s", "--fail", "--parallel", "--parallel-max", String(urls.length)];
  for (const url of urls) args.push("-o", "/dev/null", url);
  const out = await new Deno.Command("curl", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`curl failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
}

export async function run(): Promise<BenchResult[]> {
  const missing = await missingTools(["docker-registry", "skopeo", "curl"]);
  if (missing.length > 0) {
    console.error(`registry_bench: skipped: ${missing.join(", ")} not installed`);
    return [];
  }
  const dir = await Deno.makeTempDir({ prefix: "dtk-registry-bench-" });
  const up = await startUpstream(join(dir, "upstream"));
  let dtk: Awaited<ReturnType<typeof startDtkRegistry>> | undefined;
  try {
    const ref = "dtk.bench/bench/big:1";
    const layout = await syntheticLayout(dir, { ref, layers: LAYERS, layerBytes: LAYER_BYTES });
    await push(layout, "1", `${up.host}/bench/big:1`);
    const storeDir = join(dir, "store");
    const images = await seedStore(storeDir, layout);
    const lockFile = join(dir, "dtk.lock");
    await Deno.writeTextFile(
      lockFile,
      JSON.stringify({ version: 1, artifacts: imageArtifacts(images) }),
    );
    const manifestHex = images[0]!.hash.slice(7);
    const manifest = JSON.parse(
      await Deno.readTextFile(join(layout, "blobs", "sha256", manifestHex)),
    );
    const digests: string[] = [
      manifest.config.digest,
      ...manifest.layers.map((l: { digest: string }) => l.digest),
    ];
    const bytes = manifest.config.size +
      manifest.layers.reduce((n: number, l: { size: number }) => n + l.size, 0);
    await Deno.remove(layout, { recursive: true });
    dtk = await startDtkRegistry(lockFile, storeDir);
    const urls = (host: string) => digests.map((d) => `http://${host}/v2/bench/big/blobs/${d}`);
    // One warm-up each: page cache and connections as in steady state.
    await pullAll(urls(dtk.host));
    await pullAll(urls(up.host));
    let ours = Infinity;
    let theirs = Infinity;
    // The host is shared: the best of several alternated runs is the least disturbed.
    for (let i = 0; i < 5; i++) {
      ours = Math.min(ours, await seconds(() => pullAll(urls(dtk!.host))));
      theirs = Math.min(theirs, await seconds(() => pullAll(urls(up.host))));
    }
    const rate = (s: number) => bytes / MiB / s;
    return [{
      name: `dtk registry: concurrent pull of ${digests.length} blobs (${
        Math.round(bytes / MiB)
      } MiB, curl --parallel, loopback)`,
      value: rate(ours),
      unit: "MiB/s",
      reference: `docker-registry: ${rate(theirs).toFixed(1)} MiB/s`,
      ratio: theirs / ours,
      goal: ">= 1.0x docker-registry",
    }];
  } finally {
    await dtk?.stop();
    await up.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
