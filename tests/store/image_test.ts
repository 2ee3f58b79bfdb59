/**
 * Images between a registry of the tests' own and the store: `dtk lock` resolving tags
 * (anonymous bearer tokens, arch pick, sizes, nothing contacted when locked), `dtk fetch`
 * pulling every blob as an object, and each bad input refused with nothing stored.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DtkError, IntegrityError } from "../../lib/errors/mod.ts";
import { verifyFiles } from "../../lib/verify/mod.ts";
import {
  ensureLock,
  exportLock,
  gcStore,
  imageArtifactName,
  imageClosure,
  importDir,
  type LockArtifact,
  type Lockfile,
  missingArtifacts,
  ObjectStore,
  resolveImages,
  writeLock,
} from "../../store/mod.ts";
import { OCI_INDEX, TestRegistry } from "./_registry.ts";

const fast = { backoffMs: 10, stallTimeoutMs: 3000, attempts: 2 };

async function withEnv(
  fn: (env: { registry: TestRegistry; store: ObjectStore; dir: string }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-image-test-" });
  const registry = new TestRegistry();
  try {
    await fn({ registry, store: new ObjectStore(join(dir, "store")), dir });
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A lock of one image entry written by hand: its ref and hash only, no size. */
function handWrittenLock(ref: string, hash: string, arch: "amd64" | "arm64"): Lockfile {
  return {
    version: 1,
    artifacts: {
      a: { kind: "image", ref, hash, arch, urls: [], version: "1", size: null, source: "registry" },
    },
  };
}

async function lockOf(
  _registry: TestRegistry,
  refs: string[],
  arch: "amd64" | "arm64" = "amd64",
  previous?: Record<string, LockArtifact>,
): Promise<Lockfile> {
  const { artifacts, failures } = await resolveImages(refs, arch, { ...fast, previous });
  if (failures.length > 0) throw new Error(failures.map((f) => f.message).join("\n"));
  return { version: 1, artifacts };
}

Deno.test("lock + fetch: tag → index digest and arch manifest behind a bearer token; every blob an object", async () => {
  await withEnv(async ({ registry, store }) => {
    registry.faults.auth = true;
    const built = registry.add("team/app", "v1", { layers: 5, layerSize: 50_000 });
    const ref = `${registry.host}/team/app:v1`;
    const lock = await lockOf(registry, [ref]);
    const name = imageArtifactName(ref);
    const entry = lock.artifacts[name]!;
    assert.deepEqual(
      { ...entry },
      {
        version: "v1",
        kind: "image",
        arch: "amd64",
        urls: [],
        hash: built.top,
        size: built.size,
        source: "registry",
        ref,
        manifest: built.amd64,
      },
    );
    assert.ok(registry.log.some((r) => r.path === "/token"), "a token was asked for");
    assert.deepEqual(await missingArtifacts(store, lock), [name]);
    const summary = await ensureLock(lock, { store, ...fast });
    assert.equal(summary.fetched, 8, "index, manifest, config and 5 layers");
    const closure = await imageClosure(store, { name, ...entry, ref });
    assert.deepEqual(closure.map((b) => b.digest), [built.top, built.amd64, ...built.blobs]);
    assert.equal(closure[0]!.mediaType, OCI_INDEX);
    assert.equal((await store.readMeta(built.top.slice(7)))?.mediaType, OCI_INDEX);
    assert.equal(
      (await store.readMeta(built.blobs[1]!.slice(7)))?.mediaType,
      "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    assert.deepEqual(await missingArtifacts(store, lock), []);
    // Present: a second fetch contacts nothing.
    const before = registry.log.length;
    const again = await ensureLock(lock, { store, ...fast });
    assert.equal(again.fetched, 0);
    assert.equal(registry.log.length, before);
  });
});

Deno.test("lock: an entry already locked contacts nothing; --update takes a moved tag and says so", async () => {
  await withEnv(async ({ registry }) => {
    const old = registry.add("app", "1", { seed: 1 });
    const ref = `${registry.host}/app:1`;
    const lock = await lockOf(registry, [ref]);
    const before = registry.log.length;
    const kept = await resolveImages([ref], "amd64", { ...fast, previous: lock.artifacts });
    assert.equal(registry.log.length, before, "nothing contacted");
    assert.deepEqual(kept.artifacts, lock.artifacts);
    const moved = registry.add("app", "1", { seed: 2 });
    const warnings: string[] = [];
    const updated = await resolveImages([ref], "amd64", {
      ...fast,
      previous: lock.artifacts,
      update: true,
      warn: (m) => warnings.push(m),
    });
    assert.equal(updated.artifacts[imageArtifactName(ref)]!.hash, moved.top);
    assert.match(warnings.join("\n"), new RegExp(`moved from ${old.top} to ${moved.top}`));
  });
});

Deno.test("lock: a lone manifest locks with manifest = hash; its config must be of the arch", async () => {
  await withEnv(async ({ registry, store }) => {
    const built = registry.add("lone", "1", { lone: true });
    const ref = `${registry.host}/lone:1`;
    const lock = await lockOf(registry, [ref]);
    const entry = lock.artifacts[imageArtifactName(ref)]!;
    assert.equal(entry.hash, built.top);
    assert.equal(entry.manifest, built.top);
    await ensureLock(lock, { store, ...fast });
    const closure = await imageClosure(store, { name: "x", ref, hash: entry.hash });
    assert.deepEqual(closure.map((b) => b.role), ["manifest", "config", "layer", "layer"]);
    await assert.rejects(
      () => lockOf(registry, [ref], "arm64"),
      /is built for linux\/amd64, not linux\/arm64/,
    );
    // The arm64 manifest of an index.
    const multi = registry.add("multi", "1");
    const arm = await lockOf(registry, [`${registry.host}/multi:1`], "arm64");
    const armEntry = arm.artifacts[imageArtifactName(`${registry.host}/multi:1`)]!;
    assert.equal(armEntry.hash, multi.top);
    assert.notEqual(armEntry.manifest, multi.amd64);
  });
});

Deno.test("fetch: a tag moved since the lock: the lock's digest wins, and it is said", async () => {
  await withEnv(async ({ registry, store }) => {
    const old = registry.add("app", "1", { seed: 1 });
    const ref = `${registry.host}/app:1`;
    const lock = await lockOf(registry, [ref]);
    registry.add("app", "1", { seed: 2 });
    const log: string[] = [];
    await ensureLock(lock, { store, ...fast, log: (m) => log.push(m) });
    assert.match(
      log.join("\n"),
      /now names sha256:[0-9a-f]{64}, the lock pins .*fetching the lock's digest/,
    );
    const closure = await imageClosure(store, { name: "x", ref, hash: old.top });
    assert.equal(closure[0]!.digest, old.top);
  });
});

async function assertNothingStored(store: ObjectStore, except: string[] = []): Promise<void> {
  const left = (await store.list()).filter((h) => !except.includes(`sha256:${h}`));
  assert.deepEqual(left, [], "nothing stored");
  const tmp = await Array.fromAsync(Deno.readDir(join(store.dir, "tmp"))).catch(() => []);
  assert.deepEqual(tmp.filter((e) => e.name.endsWith(".partial")), [], "no partial left");
}

Deno.test("refused: manifest bytes that do not hash to the digest; nothing stored", async () => {
  await withEnv(async ({ registry, store }) => {
    const built = registry.add("app", "1");
    const ref = `${registry.host}/app:1`;
    const lock = await lockOf(registry, [ref]);
    registry.faults.corruptManifests = new Set([built.amd64.slice(7)]);
    await assert.rejects(
      () => ensureLock(lock, { store, ...fast }),
      (e: Error) => e instanceof IntegrityError && /does not match its digest/.test(e.message),
    );
    await assertNothingStored(store);
    registry.faults.corruptManifests = new Set([built.top.slice(7)]);
    await assert.rejects(() => lockOf(registry, [ref]), /does not match its digest/);
  });
});

Deno.test("refused: a layer whose bytes do not hash to its digest; no partial kept", async () => {
  await withEnv(async ({ registry, store }) => {
    const built = registry.add("app", "1", { layers: 3 });
    const lock = await lockOf(registry, [`${registry.host}/app:1`]);
    const bad = built.blobs[2]!;
    registry.faults.corruptBlobs = new Set([bad.slice(7)]);
    await assert.rejects(
      () => ensureLock(lock, { store, ...fast }),
      (e: Error) => e instanceof IntegrityError && e.message.includes("wrong bytes"),
    );
    assert.equal(await store.check(bad.slice(7)), "missing");
    await assertNothingStored(store, [
      built.top,
      built.amd64,
      ...built.blobs.filter((b) => b !== bad),
    ]);
  });
});

Deno.test("refused: a wrong media type; nothing stored", async () => {
  await withEnv(async ({ registry, store }) => {
    const built = registry.add("app", "1");
    const ref = `${registry.host}/app:1`;
    const lock = await lockOf(registry, [ref]);
    registry.faults.contentType = new Map([[built.top.slice(7), "text/html"]]);
    await assert.rejects(() => ensureLock(lock, { store, ...fast }), /served as "text\/html"/);
    await assertNothingStored(store);
    await assert.rejects(() => lockOf(registry, [ref]), /served as "text\/html"/);
  });
});

Deno.test("refused: a registry answering 401 forever, with a clear error", async () => {
  await withEnv(async ({ registry, store }) => {
    registry.add("app", "1");
    const ref = `${registry.host}/app:1`;
    registry.faults.authForever = true;
    await assert.rejects(
      () => lockOf(registry, [ref]),
      /refuses anonymous pulls of "app" \(HTTP 401 even with the token it gave\)/,
    );
    const lock = handWrittenLock(ref, `sha256:${"1".repeat(64)}`, "amd64");
    await assert.rejects(() => ensureLock(lock, { store, ...fast }), /refuses anonymous pulls/);
    await assertNothingStored(store);
  });
});

Deno.test("refused: an index without the arch; nothing stored", async () => {
  await withEnv(async ({ registry, store }) => {
    const built = registry.add("app", "1", { arches: ["amd64", "s390x"] });
    const ref = `${registry.host}/app:1`;
    await assert.rejects(
      () => lockOf(registry, [ref], "arm64"),
      /has no image for linux\/arm64 \(it has linux\/amd64, linux\/s390x\)/,
    );
    // A hand-written entry (ref + hash only) for arm64 is refused at fetch time.
    const lock = handWrittenLock(ref, built.top, "arm64");
    await assert.rejects(
      () => ensureLock(lock, { store, ...fast }),
      /has no image for linux\/arm64/,
    );
    await assertNothingStored(store);
  });
});

Deno.test("refused: a lock naming an image the registry no longer has", async () => {
  await withEnv(async ({ registry, store }) => {
    const built = registry.add("app", "1");
    const ref = `${registry.host}/app:1`;
    const lock = await lockOf(registry, [ref]);
    registry.manifests.delete(built.top.slice(7));
    await assert.rejects(
      () => ensureLock(lock, { store, ...fast }),
      (e: Error) =>
        e instanceof DtkError && e.message.includes(`has no "${registry.host}/app@${built.top}"`) &&
        /removed upstream/.test(e.hint ?? ""),
    );
    await assertNothingStored(store);
  });
});

Deno.test("gc keeps every blob of a locked image; export (with --oci) and import carry images", async () => {
  await withEnv(async ({ registry, store, dir }) => {
    const a = registry.add("a", "1", { layers: 3, seed: 1 });
    const b = registry.add("b", "1", { layers: 2, seed: 2 });
    const lock = await lockOf(registry, [`${registry.host}/a:1`, `${registry.host}/b:1`]);
    const lockFile = join(dir, "dtk.lock");
    await writeLock(lockFile, lock);
    await ensureLock(lock, { store, ...fast, lockPath: lockFile });
    const all = [a, b].flatMap((x) => [x.top, x.amd64, ...x.blobs]);
    assert.equal((await gcStore(store)).removed.length, 0);
    assert.deepEqual((await store.list()).sort(), all.map((d) => d.slice(7)).sort());
    // Export and import into an empty store, with the registry gone.
    const out = join(dir, "out");
    const exported = await exportLock(store, lock, out, { oci: true });
    assert.equal(exported.images, 2);
    assert.equal(exported.objects, all.length);
    const index = JSON.parse(await Deno.readTextFile(join(out, "index.json")));
    assert.deepEqual(
      index.manifests.map((m: { digest: string }) => m.digest),
      [a.top, b.top],
    );
    assert.equal(
      index.manifests[0].annotations["org.opencontainers.image.ref.name"],
      `${registry.host}/a:1`,
    );
    await registry.close();
    const other = new ObjectStore(join(dir, "other"));
    const imported = await importDir(other, out);
    assert.equal(imported.imported, all.length - 4);
    assert.deepEqual((await other.list()).sort(), all.map((d) => d.slice(7)).sort());
    assert.deepEqual(await missingArtifacts(other, lock), []);
    // Drop image b from the lock: gc removes its blobs only.
    const { [imageArtifactName(`${registry.host}/b:1`)]: _dropped, ...rest } = lock.artifacts;
    await writeLock(lockFile, { version: 1, artifacts: rest });
    const gc = await gcStore(store);
    assert.deepEqual(
      gc.removed.map((r) => r.hex).sort(),
      [b.top, b.amd64, ...b.blobs].map((d) => d.slice(7)).sort(),
    );
  });
});

Deno.test("dtk verify files: an image is ok only when every blob is there and intact", async () => {
  await withEnv(async ({ registry, store }) => {
    const built = registry.add("app", "1", { layers: 2 });
    const lock = await lockOf(registry, [`${registry.host}/app:1`]);
    await ensureLock(lock, { store, ...fast });
    const status = async () => (await verifyFiles(lock, { store })).results[0]!;
    assert.equal((await status()).status, "ok");
    const layer = built.blobs[2]!.slice(7);
    await Deno.chmod(store.objectPath(layer), 0o644);
    await Deno.writeFile(store.objectPath(layer), new Uint8Array(10_000));
    await Deno.chmod(store.objectPath(layer), 0o444);
    const corrupt = await status();
    assert.equal(corrupt.status, "corrupt");
    assert.equal(corrupt.expected, layer);
    await store.remove(layer);
    assert.equal((await status()).status, "missing");
  });
});

Deno.test("a registry that redirects to another wanting a token (as registry.k8s.io does): the token goes only there", async () => {
  await withEnv(async ({ registry: backend, store }) => {
    backend.faults.auth = true;
    const built = backend.add("mirror/pause", "3.10", { layers: 2 });
    const front = new TestRegistry();
    try {
      front.redirect = { host: backend.host, prefix: "mirror" };
      const ref = `${front.host}/pause:3.10`;
      const lock = await lockOf(front, [ref]);
      assert.equal(lock.artifacts[imageArtifactName(ref)]!.hash, built.top);
      const pulled = () => {
        const blobs = backend.log.filter((r) => r.path.includes("/blobs/") && r.status === 200);
        assert.equal(blobs.length, 3);
        assert.ok(blobs.every((r) => r.authorization === "Bearer good"));
        assert.ok(front.log.every((r) => r.authorization === null), "no token to the front");
      };
      await ensureLock(lock, { store, ...fast });
      const closure = await imageClosure(store, { name: "x", ref, hash: built.top });
      assert.equal(closure.length, 5);
      pulled();
      // The manifests are in the store now: where the blobs live is asked again.
      for (const b of built.blobs) await store.remove(b.slice(7));
      backend.log.length = 0;
      await ensureLock(lock, { store, ...fast });
      pulled();
    } finally {
      await front.close();
    }
  });
});
