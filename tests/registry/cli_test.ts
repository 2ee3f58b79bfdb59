// `dtk registry` as a subprocess over a store seeded with real test images: real skopeo pulls
// through it, SIGTERM and SIGINT stop it, and each refusal says what to run.
import assert from "node:assert/strict";
import { join } from "node:path";
import { imageArtifacts, seedStore, testLayout } from "./_images.ts";
import { skopeo } from "../store/_upstream.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

interface Fixture {
  dir: string;
  env: Record<string, string>;
  lockFile: string;
}

async function withFixture(
  fn: (f: Fixture & { images: Awaited<ReturnType<typeof seedStore>> }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-registry-cli-" });
  try {
    const storeDir = join(dir, "store");
    const images = await seedStore(storeDir, await testLayout(dir));
    const lockFile = join(dir, "dtk.lock");
    await Deno.writeTextFile(
      lockFile,
      JSON.stringify({ version: 1, artifacts: imageArtifacts(images) }, null, 2),
    );
    await fn({ dir, env: { DTK_STORE: storeDir, NO_COLOR: "1" }, lockFile, images });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function dtk(args: string[], f: Fixture) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    cwd: f.dir,
    env: f.env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Starts `dtk registry`, waits for the address it prints on stdout (bounded). */
async function startRegistry(args: string[], f: Fixture) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "registry", ...args],
    cwd: f.dir,
    env: f.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  let text = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
  }
  clearTimeout(deadline);
  const url = text.split("\n")[0]!;
  const rest = (async () => {
    for (;;) {
      const { done } = await reader.read();
      if (done) return;
    }
  })();
  const stop = async (signal: Deno.Signal) => {
    child.kill(signal);
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const status = await child.status;
    clearTimeout(killer);
    await rest;
    return { code: status.code, signal: status.signal, stderr: await stderr };
  };
  return { url, stop, stderr };
}

Deno.test("dtk registry: serves the lock's images to skopeo, stops on SIGTERM and SIGINT", async () => {
  await withFixture(async (f) => {
    const run = await startRegistry(["--listen", "127.0.0.1:0", "--lock", f.lockFile], f);
    let stopped = false;
    try {
      const m = /^http:\/\/(127\.0\.0\.1:\d+)$/.exec(run.url);
      assert.ok(m, `first line of stdout: ${run.url}`);
      const address = m[1]!;
      for (const image of f.images) {
        const path = image.ref.slice(image.ref.indexOf("/") + 1);
        const info = await skopeo(["inspect", "--tls-verify=false", `docker://${address}/${path}`]);
        assert.equal(info.code, 0, info.stderr);
        assert.equal(JSON.parse(info.stdout).Digest, image.hash);
        const target = join(f.dir, `copy-${image.name}`);
        const copy = await skopeo([
          "copy",
          "--preserve-digests",
          "--src-tls-verify=false",
          `docker://${address}/${path}`,
          `oci:${target}:x`,
        ]);
        assert.equal(copy.code, 0, copy.stderr);
        const index = JSON.parse(await Deno.readTextFile(join(target, "index.json")));
        assert.equal(index.manifests[0].digest, image.hash);
      }
      const end = await run.stop("SIGTERM");
      stopped = true;
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stderr, /Serving 2 image\(s\)/);
      assert.match(end.stderr, /Stopped \(SIGTERM\)/);
    } finally {
      if (!stopped) await run.stop("SIGKILL");
    }
    const again = await startRegistry(["--listen", "127.0.0.1:0", "--lock", f.lockFile], f);
    const end = await again.stop("SIGINT");
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, /Stopped \(SIGINT\)/);
  });
});

Deno.test("dtk registry: a taken port is refused with the address and a hint", async () => {
  await withFixture(async (f) => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (taken.addr as Deno.NetAddr).port;
      const r = await dtk(["registry", "--listen", `127.0.0.1:${port}`, "--lock", f.lockFile], f);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`"127\\.0\\.0\\.1:${port}": the port is in use`));
      assert.match(r.stderr, /^hint: .*--listen/m);
    } finally {
      taken.close();
    }
  });
});

Deno.test("dtk registry: a lock without images says to run dtk lock; missing blobs dtk fetch", async () => {
  await withFixture(async (f) => {
    const empty = join(f.dir, "empty.lock");
    await Deno.writeTextFile(empty, JSON.stringify({ version: 1, artifacts: {} }));
    const r = await dtk(["registry", "--listen", "127.0.0.1:0", "--lock", empty], f);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /names no container images/);
    assert.match(r.stderr, /^hint: .*dtk lock/m);

    const other = await dtk(["registry", "--listen", "127.0.0.1:0", "--lock", f.lockFile], {
      ...f,
      env: { ...f.env, DTK_STORE: join(f.dir, "empty-store") },
    });
    assert.equal(other.code, 1, other.stderr);
    assert.match(other.stderr, /not (complete )?in the store/);
    assert.match(other.stderr, /^hint: .*dtk fetch/m);

    const bad = await dtk(["registry", "--listen", "nowhere", "--lock", f.lockFile], f);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /Invalid --listen "nowhere"/);
  });
});
