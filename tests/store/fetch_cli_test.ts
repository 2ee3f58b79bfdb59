/**
 * `dtk lock`, `dtk fetch` and `dtk store` as real subprocesses: SIGKILL mid-download and resume,
 * a server that ignores Range, several processes fetching the same artifact, offline mode,
 * `--frozen`, hand-written locks, and the store commands.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { formatHash, type Lockfile, ObjectStore, readLock, writeLock } from "../../store/mod.ts";
import { fixture, sha256, TestServer } from "./_server.ts";

const ENTRY = new URL("./_dtk.ts", import.meta.url).pathname;

interface Env {
  dir: string;
  store: ObjectStore;
  server: TestServer;
  env: Record<string, string>;
}

async function withEnv(fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-fetch-cli-" });
  const server = new TestServer();
  const env = {
    DTK_STORE: join(dir, "store"),
    DTK_BACKOFF_MS: "20",
    DTK_STALL_TIMEOUT_MS: "5000",
    NO_COLOR: "1",
    RUST_BACKTRACE: "0",
    DENO_NO_UPDATE_CHECK: "1",
  };
  try {
    await fn({ dir, store: new ObjectStore(env.DTK_STORE), server, env });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function dtk(env: Env, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ENTRY, ...args],
    cwd: env.dir,
    env: env.env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
}

async function run(env: Env, args: string[]) {
  const out = await dtk(env, args).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function oneArtifactLock(env: Env, body: Uint8Array, path: string): Promise<string> {
  const lock: Lockfile = {
    version: 1,
    artifacts: {
      big: {
        version: "1",
        kind: "iso",
        arch: "amd64",
        urls: [`${env.server.url}${path}`],
        hash: formatHash(sha256(body)),
        size: body.length,
        source: "pinned",
      },
    },
  };
  const lockPath = join(env.dir, "test.lock");
  await writeLock(lockPath, lock);
  return lockPath;
}

async function killAndResume(rangeSupported: boolean) {
  await withEnv(async (env) => {
    const body = fixture(24 << 20, 99);
    const hex = sha256(body);
    env.server.routes.set("/big.iso", {
      body,
      chunk: 64 * 1024,
      delayMs: 4,
      range: rangeSupported,
    });
    await oneArtifactLock(env, body, "/big.iso");
    const child = dtk(env, ["fetch", "--lock", "test.lock"]);
    const partial = env.store.partialPath(hex);
    await waitFor(
      "a partial download of 3 MiB",
      async () => (await Deno.stat(partial).then((s) => s.size, () => 0)) > 3 << 20,
    );
    child.kill("SIGKILL");
    const status = await child.status;
    await child.stdout.cancel();
    await child.stderr.cancel();
    assert.equal(status.signal, "SIGKILL");
    // Consistent: nothing under the final name, the partial kept for resuming.
    assert.deepEqual(await env.store.list(), []);
    const kept = (await Deno.stat(partial)).size;
    assert.ok(kept > 0 && kept < body.length);
    env.server.routes.set("/big.iso", { body, range: rangeSupported });
    const second = await run(env, ["fetch", "--lock", "test.lock"]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /1 artifacts ready: 1 fetched, 0 already present/);
    const last = env.server.log.filter((l) => l.path === "/big.iso").at(-1)!;
    assert.match(last.range ?? "", /^bytes=\d+-$/, "the resumed request asks for a range");
    assert.ok(last.ifRange, "with If-Range");
    assert.equal(last.status, rangeSupported ? 206 : 200);
    assert.deepEqual(await env.store.list(), [hex]);
    assert.equal(sha256(await Deno.readFile(env.store.objectPath(hex))), hex);
    assert.equal(await Deno.stat(partial).catch(() => null), null);
  });
}

Deno.test("fetch killed by SIGKILL leaves the store consistent; the next fetch resumes (Range)", () =>
  killAndResume(true));

Deno.test("resume against a server that ignores Range restarts and succeeds", () =>
  killAndResume(false));

Deno.test("three dtk processes fetching the same artifact download it once and all succeed", async () => {
  await withEnv(async (env) => {
    const body = fixture(8 << 20, 77);
    env.server.routes.set("/shared.iso", { body, chunk: 128 * 1024, delayMs: 5 });
    await oneArtifactLock(env, body, "/shared.iso");
    const children = [0, 1, 2].map(() => dtk(env, ["fetch", "--lock", "test.lock"]));
    const results = await Promise.all(children.map((c) => c.output()));
    for (const r of results) assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    assert.equal(env.server.log.filter((l) => l.path === "/shared.iso").length, 1);
    assert.deepEqual(await env.store.list(), [sha256(body)]);
  });
});

Deno.test("fetch --offline lists what is missing and fails; succeeds once all is present", async () => {
  await withEnv(async (env) => {
    const body = fixture(100_000, 5);
    env.server.routes.set("/x", { body });
    await oneArtifactLock(env, body, "/x");
    const offline = await run(env, ["fetch", "--offline", "--lock", "test.lock"]);
    assert.equal(offline.code, 1);
    assert.match(offline.stderr, /missing: big 1 sha256:/);
    assert.equal(env.server.log.length, 0, "offline never touches the network");
    assert.equal((await run(env, ["fetch", "--lock", "test.lock"])).code, 0);
    const again = await run(env, ["fetch", "--offline", "--lock", "test.lock"]);
    assert.equal(again.code, 0, again.stderr);
  });
});

Deno.test("a hand-written lock (bare hex, SRI, minimal fields) fetches from a folder mirror", async () => {
  await withEnv(async (env) => {
    const a = fixture(5000, 1);
    const b = fixture(6000, 2);
    const mirror = join(env.dir, "usb");
    await Deno.mkdir(mirror);
    await Deno.writeFile(join(mirror, "a.bin"), a);
    await Deno.writeFile(join(mirror, "b.bin"), b);
    const sri = "sha256-" +
      btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", b))));
    await Deno.writeTextFile(
      join(env.dir, "hand.lock"),
      JSON.stringify({
        artifacts: {
          a: { urls: ["https://example.invalid/a.bin"], hash: sha256(a) },
          b: { urls: [], file: "b.bin", hash: sri },
        },
      }),
    );
    const r = await run(env, ["fetch", "--lock", "hand.lock", "--mirror", mirror]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await env.store.list(), [sha256(a), sha256(b)].sort());
    const bad = await run(env, ["fetch", "--lock", "hand.lock", "--mirror", "/nonexistent"]);
    assert.equal(bad.code, 0, "already present: no source needed");
    await Deno.writeTextFile(
      join(env.dir, "evil.lock"),
      JSON.stringify({ artifacts: { "../../etc/x": { urls: [], hash: sha256(a) } } }),
    );
    const evil = await run(env, ["fetch", "--lock", "evil.lock"]);
    assert.equal(evil.code, 2);
    assert.match(evil.stderr, /artifact name "..\/..\/etc\/x" is not a plain file name/);
  });
});

Deno.test("dtk lock: pinned entries offline, --frozen fails without writing, version bumps re-resolve", async () => {
  await withEnv(async (env) => {
    const config = (k8s: string) =>
      // containerd 2.2.1 and runc v1.4.0: versions whose hashes dtk pins (the defaults' come
      // from the publisher).
      `versions:\n  kubernetes: ${k8s}\n  containerd: 2.2.1\n  runc: v1.4.0\naddons:\n- name: cilium\n  enabled: true\n`;
    await Deno.writeTextFile(join(env.dir, "config.yaml"), config("v1.35.0"));
    const frozenMissing = await run(env, ["lock", "--frozen"]);
    assert.equal(frozenMissing.code, 1);
    assert.match(frozenMissing.stderr, /does not exist/);
    const first = await run(env, ["lock"]);
    assert.equal(first.code, 0, first.stderr);
    const lockPath = join(env.dir, "dtk.lock");
    const text = await Deno.readTextFile(lockPath);
    assert.ok(text.endsWith("}\n"));
    const lock = (await readLock(lockPath))!;
    assert.equal(Object.keys(lock.artifacts).length, 17);
    assert.ok(Object.values(lock.artifacts).every((a) => a.source === "pinned"));
    assert.deepEqual(lock.artifacts["registry.k8s.io+pause@3.10"], {
      version: "3.10",
      kind: "image",
      arch: "amd64",
      urls: [],
      hash: "sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
      size: null,
      source: "pinned",
      ref: "registry.k8s.io/pause:3.10",
    });
    assert.equal(
      lock.artifacts["kube-apiserver"]?.hash,
      "sha256:999e4874de50139f40929d6a9f4844efc66ad09647dc0e84031daca4711f12b6",
    );
    assert.equal((await run(env, ["lock", "--frozen"])).code, 0);
    await Deno.writeTextFile(join(env.dir, "config.yaml"), config("v1.35.1"));
    const frozen = await run(env, ["lock", "--frozen"]);
    assert.equal(frozen.code, 1);
    assert.match(frozen.stderr, /would change: kube-apiserver, kube-controller-manager/);
    assert.equal(await Deno.readTextFile(lockPath), text, "--frozen changed nothing");
    const bumped = await run(env, ["lock"]);
    assert.equal(bumped.code, 0, bumped.stderr);
    const after = (await readLock(lockPath))!;
    assert.equal(after.artifacts["kubelet"]?.version, "v1.35.1");
    assert.equal(after.artifacts["etcd"]?.hash, lock.artifacts["etcd"]?.hash);
    assert.equal(after.requested?.versions.kubernetes, "v1.35.1");
  });
});

Deno.test("dtk store add|ls|path|verify|gc|export|import", async () => {
  await withEnv(async (env) => {
    const body = fixture(70_000, 3);
    await Deno.writeFile(join(env.dir, "thing.bin"), body);
    const add = await run(env, ["store", "add", "thing.bin"]);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(add.stdout.trim(), formatHash(sha256(body)));
    const path = await run(env, ["store", "path", sha256(body)]);
    assert.equal(path.stdout.trim(), env.store.objectPath(sha256(body)));
    const ls = await run(env, ["--json", "store", "ls"]);
    const rows = JSON.parse(ls.stdout);
    assert.equal(rows[0].names[0], "thing.bin");
    assert.deepEqual(rows[0].locks, []);
    assert.equal((await run(env, ["store", "verify"])).code, 0);
    const obj = env.store.objectPath(sha256(body));
    await Deno.chmod(obj, 0o644);
    await Deno.writeFile(obj, fixture(70_000, 4));
    await Deno.chmod(obj, 0o444);
    const verify = await run(env, ["store", "verify"]);
    assert.equal(verify.code, 4);
    assert.match(verify.stderr, /corrupt thing.bin sha256:/);
    assert.match(verify.stderr, /1 of 1 objects failed verification/);
    const gc = await run(env, ["store", "gc"]);
    assert.equal(gc.code, 0);
    assert.deepEqual(await env.store.list(), []);

    env.server.routes.set("/x", { body });
    await oneArtifactLock(env, body, "/x");
    assert.equal((await run(env, ["fetch", "--lock", "test.lock"])).code, 0);
    assert.equal((await run(env, ["store", "gc"])).code, 0);
    assert.deepEqual(await env.store.list(), [sha256(body)], "a fetched lock is a root");
    const exp = await run(env, ["store", "export", "usb", "--lock", "test.lock"]);
    assert.equal(exp.code, 0, exp.stderr);
    env.env.DTK_STORE = join(env.dir, "store2");
    const imp = await run(env, ["store", "import", "usb", "--lock", "imported.lock"]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.deepEqual(await new ObjectStore(env.env.DTK_STORE).list(), [sha256(body)]);
    const off = await run(env, ["fetch", "--offline", "--lock", "imported.lock"]);
    assert.equal(off.code, 0, off.stderr);
  });
});
