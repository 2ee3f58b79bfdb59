/**
 * The downloader against a real loopback HTTP server: sources in order, wrong bytes, wrong size,
 * 404, 500, resets, stalls, truncation, Range and no-Range, local mirrors, OCI registries.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { IntegrityError } from "../../lib/errors/mod.ts";
import { DtkError } from "../../lib/errors/mod.ts";
import {
  addFile,
  ensureLock,
  ensureObject,
  exportLock,
  formatHash,
  gcStore,
  importDir,
  type Lockfile,
  ObjectStore,
  verifyObjects,
  writeLock,
} from "../../store/mod.ts";
import { fixture, sha256, type StoreEnv, target, withStoreEnv } from "./_server.ts";

const fast = { backoffMs: 10, stallTimeoutMs: 2000, attempts: 3 };

const withEnv = (fn: (env: StoreEnv) => Promise<void>) => withStoreEnv("dtk-store-test-", fn);

async function assertStored(store: ObjectStore, body: Uint8Array): Promise<void> {
  const hex = sha256(body);
  const path = store.objectPath(hex);
  const info = await Deno.stat(path);
  assert.equal(info.mode! & 0o777, 0o444, "objects are read-only");
  assert.equal(sha256(await Deno.readFile(path)), hex);
  assert.equal(await Deno.stat(store.partialPath(hex)).catch(() => null), null, "no partial left");
}

Deno.test("fetch stores verified bytes read-only, then finds them present", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(3 << 20, 7);
    server.routes.set("/a.bin", { body });
    const t = target(body, [`${server.url}/a.bin`]);
    const first = await ensureObject(store, t, fast);
    assert.equal(first.status, "fetched");
    assert.equal(first.transferred, body.length);
    await assertStored(store, body);
    const second = await ensureObject(store, t, fast);
    assert.equal(second.status, "present");
    assert.equal(server.fullGets("/a.bin"), 1);
    const meta = await store.readMeta(t.hex);
    assert.deepEqual(meta?.names, ["thing"]);
    assert.equal(meta?.size, body.length);
  });
});

Deno.test("wrong bytes from a mirror are rejected and the next source is tried", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(1 << 20, 1);
    const wrong = fixture(1 << 20, 2);
    server.routes.set(`/mirror/sha256/${sha256(body)}`, { body: wrong });
    server.routes.set("/up/thing.bin", { body });
    const logs: string[] = [];
    const r = await ensureObject(store, target(body, [`${server.url}/up/thing.bin`]), {
      ...fast,
      mirrors: [`${server.url}/mirror`],
      log: (m) => logs.push(m),
    });
    assert.equal(r.status, "fetched");
    assert.equal(r.from, `${server.url}/up/thing.bin`);
    assert.ok(logs.some((l) => l.includes("wrong bytes")), logs.join("\n"));
    // The wrong source is not retried: wrong bytes are not a network hiccup.
    assert.equal(server.log.filter((l) => l.path.startsWith("/mirror/sha256")).length, 1);
    await assertStored(store, body);
  });
});

Deno.test("no right source: the error names each URL, the expected and actual hash", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(100_000, 3);
    const wrong = fixture(100_000, 4);
    server.routes.set("/one", { body: wrong });
    server.routes.set("/two", { status: 404 });
    const t = target(body, [`${server.url}/one`, `${server.url}/two`]);
    const error = await ensureObject(store, t, fast).then(() => null, (e) => e);
    assert.ok(error instanceof IntegrityError, String(error));
    assert.equal(error.exitCode, 4);
    assert.match(error.message, new RegExp(`expected ${formatHash(t.hex)}`));
    assert.match(
      error.message,
      new RegExp(`${server.url}/one: wrong bytes: got ${formatHash(sha256(wrong))}`),
    );
    assert.match(error.message, new RegExp(`${server.url}/two: HTTP 404 \\(3 tries\\)`));
    assert.ok(error.hint?.includes("dtk lock --update"));
    assert.deepEqual(await store.list(), []);
  });
});

Deno.test("wrong size is rejected before downloading it all", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(200_000, 5);
    server.routes.set("/big", { body: fixture(300_000, 5) });
    const t = target(body, [`${server.url}/big`]);
    const error = await ensureObject(store, t, fast).then(() => null, (e) => e);
    assert.ok(error instanceof IntegrityError);
    assert.match(error.message, /wrong size: the server announces 300000 bytes, expected 200000/);
  });
});

Deno.test("a truncated body (no length) is rejected as wrong size", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(200_000, 6);
    server.routes.set("/t", { body, truncateTo: 1000 });
    const error = await ensureObject(store, target(body, [`${server.url}/t`]), fast)
      .then(() => null, (e) => e);
    assert.ok(error instanceof IntegrityError);
    assert.match(error.message, /wrong size: got 1000 bytes, expected 200000/);
  });
});

Deno.test("404 and 500 are retried with backoff, then succeed", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(50_000, 8);
    server.routes.set("/flaky", { body, failTimes: 2 });
    server.routes.set("/late", { body, notFoundTimes: 1 });
    const r1 = await ensureObject(store, target(body, [`${server.url}/flaky`]), fast);
    assert.equal(r1.status, "fetched");
    assert.equal(
      server.log.filter((l) => l.path === "/flaky").map((l) => l.status).join(","),
      "500,500,200",
    );
    await store.remove(sha256(body));
    const r2 = await ensureObject(store, target(body, [`${server.url}/late`]), fast);
    assert.equal(r2.status, "fetched");
  });
});

Deno.test("a connection reset mid-body is retried and resumes with Range + If-Range", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(8 << 20, 9);
    server.routes.set("/reset", { body, resetAfter: 5 << 20, resetTimes: 1, chunk: 64 * 1024 });
    const r = await ensureObject(store, target(body, [`${server.url}/reset`]), fast);
    assert.equal(r.status, "fetched");
    const reqs = server.log.filter((l) => l.path === "/reset");
    assert.equal(reqs.length, 2);
    // What was written before the reset is kept; at most the buffer being filled is fetched again.
    const from = Number(/^bytes=(\d+)-$/.exec(reqs[1]!.range ?? "")?.[1]);
    assert.ok(from >= 3 << 20 && from <= 5 << 20, `resumed at ${reqs[1]!.range}`);
    assert.equal(r.transferred, body.length - from, "the resumed request brought only the rest");
    assert.ok(reqs[1]!.ifRange, "If-Range sent");
    assert.equal(reqs[1]!.status, 206);
    await assertStored(store, body);
  });
});

Deno.test("a stalled download times out, is retried, and completes", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(1 << 20, 10);
    server.routes.set("/stall", { body, stallAfter: 100_000, stallTimes: 1, chunk: 50_000 });
    const logs: string[] = [];
    const started = performance.now();
    const r = await ensureObject(store, target(body, [`${server.url}/stall`]), {
      ...fast,
      stallTimeoutMs: 300,
      log: (m) => logs.push(m),
    });
    assert.equal(r.status, "fetched");
    assert.ok(logs.some((l) => l.includes("stalled: no data for 300ms")), logs.join("\n"));
    assert.ok(performance.now() - started < 5000);
    await assertStored(store, body);
  });
});

Deno.test("a server that ignores Range is handled by restarting", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(2 << 20, 11);
    server.routes.set("/norange", {
      body,
      range: false,
      resetAfter: 1 << 20,
      resetTimes: 1,
      chunk: 64 * 1024,
    });
    const r = await ensureObject(store, target(body, [`${server.url}/norange`]), fast);
    assert.equal(r.status, "fetched");
    const reqs = server.log.filter((l) => l.path === "/norange");
    assert.equal(reqs[1]!.status, 200, "second answer ignored the Range");
    await assertStored(store, body);
  });
});

Deno.test("file:// URLs and plain folders work as mirrors (by hash and by file name)", async () => {
  await withEnv(async ({ store, dir }) => {
    const a = fixture(10_000, 12);
    const b = fixture(20_000, 13);
    const mirror = join(dir, "usb");
    await Deno.mkdir(join(mirror, "sha256"), { recursive: true });
    await Deno.writeFile(join(mirror, "sha256", sha256(a)), a);
    await Deno.writeFile(join(mirror, "b.tgz"), b);
    const ra = await ensureObject(store, target(a, ["http://127.0.0.1:9/never"]), {
      ...fast,
      mirrors: [mirror],
    });
    assert.equal(ra.from, join(mirror, "sha256", sha256(a)));
    const rb = await ensureObject(store, target(b, [], { file: "b.tgz" }), {
      ...fast,
      mirrors: [`file://${mirror}/`],
    });
    assert.equal(rb.from, `file://${mirror}/b.tgz`);
    await assertStored(store, a);
    await assertStored(store, b);
  });
});

Deno.test("OCI chart: anonymous bearer token, manifest, chart layer", async () => {
  await withEnv(async ({ server, store }) => {
    const chart = fixture(30_000, 14);
    const hex = sha256(chart);
    const token = "tok-123";
    server.handler = (req, url) => {
      if (url.pathname === "/token") {
        assert.equal(url.searchParams.get("scope"), "repository:charts/ngf:pull");
        return Response.json({ token });
      }
      if (!url.pathname.startsWith("/v2/")) return undefined;
      if (req.headers.get("authorization") !== `Bearer ${token}`) {
        return new Response("", {
          status: 401,
          headers: {
            "www-authenticate":
              `Bearer realm="${server.url}/token",service="test",scope="repository:charts/ngf:pull"`,
          },
        });
      }
      if (url.pathname === "/v2/charts/ngf/manifests/2.4.1") {
        return Response.json({
          schemaVersion: 2,
          config: {
            mediaType: "application/vnd.cncf.helm.config.v1+json",
            digest: "sha256:" + "0".repeat(64),
            size: 2,
          },
          layers: [{
            mediaType: "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            digest: `sha256:${hex}`,
            size: chart.length,
          }],
        });
      }
      if (url.pathname === `/v2/charts/ngf/blobs/sha256:${hex}`) {
        return new Response(chart as Uint8Array<ArrayBuffer>);
      }
      return new Response("", { status: 404 });
    };
    const ref = `oci://127.0.0.1:${server.port}/charts/ngf:2.4.1`;
    const r = await ensureObject(store, target(chart, [ref]), fast);
    assert.equal(r.status, "fetched");
    assert.ok(
      server.log.some((l) => l.path.includes("/blobs/") && l.authorization === `Bearer ${token}`),
    );
    await assertStored(store, chart);
    // A registry serving another chart is a wrong-bytes failure.
    await store.remove(hex);
    const other = target(fixture(30_000, 15), [ref]);
    const error = await ensureObject(store, other, fast).then(() => null, (e) => e);
    assert.ok(error instanceof IntegrityError);
    assert.match(error.message, /serves a different chart/);
  });
});

Deno.test("ensureLock fetches several at once, dedupes equal hashes, registers the root", async () => {
  await withEnv(async ({ server, store, dir }) => {
    const lock: Lockfile = { version: 1, artifacts: {} };
    const bodies = [1, 2, 3, 4, 5].map((i) => fixture(300_000 + i, 20 + i));
    bodies.forEach((b, i) => {
      server.routes.set(`/f${i}`, { body: b, chunk: 32 * 1024, delayMs: 5 });
      lock.artifacts[`f${i}`] = {
        version: "1",
        kind: "binary",
        arch: "amd64",
        urls: [`${server.url}/f${i}`],
        hash: formatHash(sha256(b)),
        size: b.length,
        source: "pinned",
      };
    });
    lock.artifacts["same-as-f0"] = { ...lock.artifacts["f0"]!, urls: [`${server.url}/f0`] };
    const lockPath = join(dir, "dtk.lock");
    await writeLock(lockPath, lock);
    const summary = await ensureLock(lock, { store, jobs: 3, lockPath, ...fast });
    assert.equal(summary.fetched, 5);
    assert.equal(summary.present, 1);
    assert.equal(server.fullGets("/f0"), 1);
    assert.deepEqual((await store.roots()).map((r) => r.record.path), [lockPath]);
    const again = await ensureLock(lock, { store, ...fast });
    assert.equal(again.fetched, 0);
    assert.equal(again.bytes, 0);
  });
});

Deno.test("the cheap check catches a changed size; verify rehashes; --repair refetches", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(100_000, 30);
    server.routes.set("/v", { body });
    const t = target(body, [`${server.url}/v`]);
    await ensureObject(store, t, fast);
    const path = store.objectPath(t.hex);
    // Corrupt it in place, same size: only the full rehash can see it.
    await Deno.chmod(path, 0o644);
    const bad = new Uint8Array(body);
    bad[500] = bad[500]! ^ 0xff;
    await Deno.writeFile(path, bad);
    await Deno.chmod(path, 0o444);
    assert.equal(await store.check(t.hex, t.size), "present");
    const report = await verifyObjects(store, [t.hex]);
    assert.equal(report[0]?.status, "corrupt");
    assert.equal(report[0]?.actual, sha256(bad));
    const repaired = await verifyObjects(store, [t.hex], { repair: true, download: fast });
    assert.equal(repaired[0]?.status, "repaired");
    await assertStored(store, body);
    // A truncated object fails the cheap check and is fetched again on use.
    await Deno.chmod(path, 0o644);
    await Deno.writeFile(path, body.subarray(0, 10));
    await Deno.chmod(path, 0o444);
    assert.equal(await store.check(t.hex, t.size), "corrupt");
    const r = await ensureObject(store, t, fast);
    assert.equal(r.status, "fetched");
    await assertStored(store, body);
  });
});

Deno.test("gc keeps what roots need; export and import move a lock's objects", async () => {
  await withEnv(async ({ server, store, dir }) => {
    const keep = fixture(10_000, 40);
    const drop = fixture(10_000, 41);
    server.routes.set("/keep", { body: keep });
    const lock: Lockfile = {
      version: 1,
      artifacts: {
        keep: {
          version: "1",
          kind: "binary",
          arch: "noarch",
          urls: [`${server.url}/keep`],
          hash: formatHash(sha256(keep)),
          size: null,
          source: "computed",
        },
      },
    };
    const lockPath = join(dir, "proj", "dtk.lock");
    await writeLock(lockPath, lock);
    await ensureLock(lock, { store, lockPath, ...fast });
    const dropFile = join(dir, "drop.bin");
    await Deno.writeFile(dropFile, drop);
    const added = await addFile(store, dropFile);
    assert.equal(added.status, "added");
    assert.equal(added.hex, sha256(drop));
    // A cluster's folder is a root too (dtk cluster list): kept while there, stale once gone.
    const live = join(dir, "proj", "generated", "live");
    await Deno.mkdir(live, { recursive: true });
    await store.addRoot(live, "cluster");
    await store.addRoot(join(dir, "proj", "generated", "gone"), "cluster");
    const dry = await gcStore(store, { dryRun: true });
    assert.deepEqual(dry.removed.map((r) => r.hex), [sha256(drop)]);
    assert.deepEqual(dry.staleRoots, [join(dir, "proj", "generated", "gone")]);
    assert.equal((await store.list()).length, 2);
    const real = await gcStore(store);
    assert.equal(real.removed.length, 1);
    assert.deepEqual(await store.list(), [sha256(keep)]);
    assert.deepEqual((await store.roots()).map((r) => r.record.path).sort(), [lockPath, live]);

    const usb = join(dir, "usb");
    const exported = await exportLock(store, lock, usb);
    assert.equal(exported.objects, 1);
    const other = new ObjectStore(join(dir, "other-store"));
    const imported = await importDir(other, usb);
    assert.equal(imported.imported, 1);
    assert.deepEqual(await other.list(), [sha256(keep)]);
    // A tampered export is refused on import.
    const third = new ObjectStore(join(dir, "third-store"));
    await Deno.chmod(join(usb, "sha256", sha256(keep)), 0o644);
    await Deno.writeFile(join(usb, "sha256", sha256(keep)), drop);
    const error = await importDir(third, usb).then(() => null, (e) => e);
    assert.ok(error instanceof DtkError);
    assert.deepEqual(await third.list(), []);
  });
});

const isRoot = Deno.uid() === 0;

Deno.test({
  name: "a full disk stops the fetch at once with a store error, not a retried network error",
  ignore: !isRoot, // mounting a small tmpfs needs root
  fn: async () => {
    await withEnv(async ({ server, dir }) => {
      const mnt = join(dir, "small");
      await Deno.mkdir(mnt);
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
        stderr: "piped",
      }).output();
      assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
      try {
        // No size known and no Content-Length: nothing warns before the disk fills.
        const body = fixture(4 << 20, 21);
        server.routes.set("/big.bin", { body, truncateTo: body.length });
        const store = new ObjectStore(join(mnt, "store"));
        await assert.rejects(
          () => ensureObject(store, target(body, [`${server.url}/big.bin`], { size: null }), fast),
          (e: unknown) => {
            assert.ok(e instanceof DtkError && !(e instanceof IntegrityError), String(e));
            assert.match(e.message, /^Cannot write to the store at ".*\.partial": /);
            assert.match(e.hint ?? "", /Free disk space/);
            return true;
          },
        );
        // No retry and no other source: the disk, not the server, was the problem.
        assert.equal(server.log.filter((l) => l.path === "/big.bin").length, 1);
      } finally {
        await new Deno.Command("umount", { args: [mnt] }).output();
      }
    });
  },
});
