/**
 * Store benchmarks: hashing 1 GiB (dtk vs openssl vs sha256sum), fetching 1 GiB from a loopback
 * server (dtk vs curl), a warm `dtk fetch` of a default-sized lock, and `store verify` speed.
 * The loopback server is busybox httpd in its own process, stopped by PID at the end.
 *
 * @module
 */
import { join } from "node:path";
import {
  ensureLock,
  ensureObject,
  formatHash,
  hashFile,
  type Lockfile,
  ObjectStore,
  verifyObjects,
  writeLock,
} from "../../store/mod.ts";
import { defaultConfig } from "../../lib/config/mod.ts";
import { resolveArtifacts } from "../../lib/catalog/mod.ts";
import type { BenchResult } from "./types.ts";

const GiB = 1 << 30;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function best(runs: number, fn: () => Promise<unknown>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) min = Math.min(min, await time(fn));
  return min;
}

async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

async function makeFile(path: string, size: number): Promise<string> {
  const chunk = crypto.getRandomValues(new Uint8Array(1 << 16));
  const block = new Uint8Array(16 << 20);
  for (let i = 0; i < block.length; i += chunk.length) {
    block.set(chunk, i);
    chunk[0] = (chunk[0]! + 1) & 0xff;
  }
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let off = 0; off < size; off += block.length) {
    block[0] = off / block.length; // no two blocks alike
    await f.write(block.subarray(0, Math.min(block.length, size - off)));
  }
  f.close();
  return (await hashFile(path)).hash;
}

/** A fresh folder on tmpfs with room for two 1 GiB files, or undefined when there is none. */
async function tmpfsDir(): Promise<string | undefined> {
  try {
    const out = await sh("df", ["--output=fstype,avail", "-B1", "/dev/shm"]);
    const [type, avail] = out.trim().split("\n").at(-1)!.trim().split(/\s+/);
    if (type !== "tmpfs" || Number(avail) < 3 * GiB) return undefined;
    return await Deno.makeTempDir({ dir: "/dev/shm", prefix: "dtk-bench-" });
  } catch {
    return undefined;
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const dir = await Deno.makeTempDir({ prefix: "dtk-store-bench-" });
  let httpd: Deno.ChildProcess | undefined;
  try {
    const www = join(dir, "www");
    await Deno.mkdir(www);
    const big = join(www, "big.iso");
    const hex = await makeFile(big, GiB);

    // 1. Hash 1 GiB (warm page cache: every contender reads the same cached file).
    const gibps = (s: number) => 1 / s;
    const dtk = await best(3, () => hashFile(big));
    const openssl = await best(3, () => sh("openssl", ["dgst", "-sha256", big]));
    const sum = await best(2, () => sh("sha256sum", [big]));
    results.push({
      name: "store: sha256 of 1 GiB (dtk)",
      value: gibps(dtk),
      unit: "GiB/s",
      reference: `openssl dgst -sha256 ${gibps(openssl).toFixed(2)} GiB/s; sha256sum ${
        gibps(sum).toFixed(2)
      } GiB/s`,
      ratio: openssl / dtk,
      goal: ">= 0.95x openssl",
    });

    // 2. Fetch 1 GiB from loopback into the store (download + hash + fsync + rename) vs curl -so.
    const port = freePort();
    httpd = new Deno.Command("busybox", {
      args: ["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", www],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const url = `http://127.0.0.1:${port}/big.iso`;
    for (let i = 0; i < 50; i++) {
      const ok = await fetch(url, { method: "HEAD" }).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const storeDir = join(dir, "store");
    const fetchInto = (where: string) => async () => {
      const store = new ObjectStore(where);
      await store.remove(hex).catch(() => {});
      await ensureObject(store, { name: "big", hex, size: GiB, file: "big.iso", urls: [url] }, {
        attempts: 1,
      });
      await store.remove(hex);
    };
    const curlInto = (out: string, durable: boolean) => async () => {
      await sh("curl", ["-so", out, url]);
      // `sync FILE` fsyncs that file: the durability dtk gives every object.
      if (durable) await sh("sync", [out]);
      await Deno.remove(out);
    };
    // dtk and curl alternate, best of 3 each, so a busy moment on the host hits both alike.
    const race = async (a: () => Promise<void>, b: () => Promise<void>) => {
      let ta = Infinity;
      let tb = Infinity;
      for (let i = 0; i < 3; i++) {
        ta = Math.min(ta, await time(a));
        tb = Math.min(tb, await time(b));
      }
      return [ta, tb] as const;
    };
    // 2a. The pipeline itself, the disk left out: both write to tmpfs, where fsync is free.
    const shm = await tmpfsDir();
    if (shm) {
      try {
        const [d, c] = await race(
          fetchInto(join(shm, "store")),
          curlInto(join(shm, "curl"), false),
        );
        results.push({
          name: "store: fetch 1 GiB from loopback into tmpfs (download+hash+fsync+rename)",
          value: 1 / d,
          unit: "GiB/s",
          reference: `curl -so to tmpfs ${(1 / c).toFixed(2)} GiB/s`,
          ratio: c / d,
          goal: ">= 1.0x curl",
        });
      } finally {
        await Deno.remove(shm, { recursive: true }).catch(() => {});
      }
    }
    // 2b. Onto disk, with the same durability on both sides.
    const curlOut = join(dir, "curl.out");
    const [d, c] = await race(fetchInto(storeDir), curlInto(curlOut, true));
    results.push({
      name: "store: fetch 1 GiB from loopback onto disk (download+hash+fsync+rename)",
      value: 1 / d,
      unit: "GiB/s",
      reference: `curl -so then sync of the file ${(1 / c).toFixed(2)} GiB/s`,
      ratio: c / d,
      goal: ">= 1.0x curl with fsync",
    });
    // 2c. For the record: curl's plain write leaves the bytes in the page cache, unsynced.
    const plain = await best(3, curlInto(curlOut, false));
    results.push({
      name: "store: fetch 1 GiB onto disk vs curl without fsync",
      value: 1 / d,
      unit: "GiB/s",
      reference: `curl -so ${(1 / plain).toFixed(2)} GiB/s (no hash, no fsync)`,
      ratio: plain / d,
      goal: "none: shows what durability costs on this disk",
    });
    // Part 3 and 4 use the object.
    await ensureObject(
      new ObjectStore(storeDir),
      { name: "big", hex, size: GiB, file: "big.iso", urls: [url] },
      { attempts: 1 },
    );

    // 3. Warm fetch of a lock the size of the default config's, everything present.
    const store = new ObjectStore(storeDir);
    const specs = resolveArtifacts(defaultConfig({ dir }));
    const lock: Lockfile = { version: 1, artifacts: {} };
    for (const [i, spec] of specs.entries()) {
      const file = join(dir, `a${i}`);
      // Small stand-ins: a warm fetch never reads the bytes, only checks size and metadata.
      const h = await makeFile(file, 1 << 20);
      await ensureObject(store, {
        name: spec.name,
        hex: h,
        size: 1 << 20,
        file: spec.file,
        urls: [`file://${file}`],
      });
      lock.artifacts[spec.name] = {
        version: spec.version,
        kind: spec.kind,
        arch: spec.arch,
        urls: [`file://${file}`],
        hash: formatHash(h),
        size: 1 << 20,
        source: "computed",
      };
    }
    lock.artifacts["os-iso"] = {
      ...lock.artifacts["os-iso"]!,
      hash: formatHash(hex),
      size: GiB,
      urls: [url],
    };
    const lockPath = join(dir, "dtk.lock");
    await writeLock(lockPath, lock);
    const warm = await best(5, () => ensureLock(lock, { store, lockPath }));
    results.push({
      name: `store: warm fetch of a ${specs.length}-artifact lock, in process`,
      value: warm,
      unit: "s",
      goal: "< 0.2 s",
    });
    const entry = new URL("../store/_dtk.ts", import.meta.url).pathname;
    const cli = await best(3, () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", entry, "fetch", "--lock", lockPath, "-q"],
        env: { DTK_STORE: storeDir, DENO_NO_UPDATE_CHECK: "1" },
        cwd: dir,
        stdout: "null",
        stderr: "null",
      }).output());
    results.push({
      name: `store: warm \`dtk fetch\` of a ${specs.length}-artifact lock, whole process`,
      value: cli,
      unit: "s",
      reference: "includes Deno start-up and module loading",
      goal: "< 0.2 s",
    });

    // 4. store verify of that lock (1 GiB + small objects) vs openssl over the same files.
    const hexes = await store.list();
    const verify = await best(2, () => verifyObjects(store, hexes));
    const paths = hexes.map((h) => store.objectPath(h));
    const osslAll = await best(2, () => sh("openssl", ["dgst", "-sha256", ...paths]));
    results.push({
      name: "store: verify of the lock's objects",
      value: verify,
      unit: "s",
      reference: `openssl dgst -sha256 of the same files ${osslAll.toFixed(3)} s`,
      ratio: osslAll / verify,
      goal: "near openssl (ratio ~1)",
    });
  } finally {
    if (httpd) {
      httpd.kill("SIGTERM");
      await httpd.status;
    }
    await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
  return results;
}

if (import.meta.main) {
  for (const r of await run()) {
    console.log(
      `${r.name}: ${r.value.toFixed(3)} ${r.unit}${
        r.ratio ? ` (ratio ${r.ratio.toFixed(2)})` : ""
      }` +
        `${r.reference ? `; ref: ${r.reference}` : ""}${r.goal ? `; goal ${r.goal}` : ""}`,
    );
  }
}
