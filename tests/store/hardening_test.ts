/**
 * The store against hostile and careless input (issue 14): locks that lie about sizes or do not
 * parse, unbounded and dripping downloads, a full disk, links and FIFOs planted where files are
 * expected, credentials in URLs, 10,000 names over one hash, remote `file://` URLs, read-only
 * stores, duplicate lock keys. Each test fails without its fix.
 *
 * The full-disk tests mount a small tmpfs (they need root and are skipped otherwise); the
 * read-only store is a read-only tmpfs mount as root, else a folder without write permission.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DtkError, ExitCode, IntegrityError } from "../../lib/errors/mod.ts";
import { renderError } from "../../lib/cli/render_error.ts";
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
  readLock,
  verifyObjects,
  writeLock,
} from "../../store/mod.ts";
import { fixture, sha256, type StoreEnv, target, withStoreEnv } from "./_server.ts";

const fast = { backoffMs: 10, stallTimeoutMs: 2000, attempts: 1 };
const isRoot = Deno.uid() === 0;
const ENTRY = new URL("./_dtk.ts", import.meta.url).pathname;

const withEnv = (fn: (env: StoreEnv) => Promise<void>) => withStoreEnv("dtk-harden-", fn);

function lockOf(entries: Record<string, { body: Uint8Array; size?: number | null }>): Lockfile {
  const artifacts: Lockfile["artifacts"] = {};
  for (const [name, e] of Object.entries(entries)) {
    artifacts[name] = {
      version: "1",
      kind: "binary",
      arch: "noarch",
      urls: [],
      hash: formatHash(sha256(e.body)),
      size: e.size === undefined ? e.body.length : e.size,
      source: "pinned",
    };
  }
  return { version: 1, artifacts };
}

/** Fails (instead of hanging the suite) when `promise` takes longer than `ms`. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function mountTmpfs(path: string, options: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true });
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", options, "tmpfs", path],
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

async function umount(path: string): Promise<void> {
  await new Deno.Command("umount", { args: [path] }).output();
}

// --- sizes in locks are claims ---------------------------------------------------------------

Deno.test("a lock's wrong size never deletes a verified object; the error names the size", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(100_000, 1);
    server.routes.set("/a.bin", { body });
    await ensureObject(store, target(body, [`${server.url}/a.bin`]), fast);
    const lock = lockOf({ good: { body }, liar: { body, size: body.length + 1 } });
    await assert.rejects(
      () => ensureObject(store, target(body, [], { name: "liar", size: body.length + 1 }), fast),
      (e: unknown) => {
        assert.ok(e instanceof IntegrityError, String(e));
        assert.match(e.message, /The lock's size for "liar" is wrong: it says 100001 bytes/);
        assert.match(e.message, /is 100000 bytes/);
        assert.match(e.hint ?? "", /Correct "size"/);
        return true;
      },
    );
    assert.equal(await store.check(sha256(body)), "present", "the object shared by locks stays");
    // Through a whole lock too, when the liar is not the first name of its hash.
    await assert.rejects(() => ensureLock(lock, { store, ...fast }), /"liar" is wrong/);
    assert.equal(await store.check(sha256(body)), "present");
    assert.equal(server.log.length, 1, "nothing was fetched again");
  });
});

Deno.test("right bytes with a writable mode or wrong metadata are repaired, not deleted", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(50_000, 2);
    server.routes.set("/a.bin", { body });
    const hex = sha256(body);
    await ensureObject(store, target(body, [`${server.url}/a.bin`]), fast);
    await Deno.chmod(store.objectPath(hex), 0o644);
    const [entry] = await verifyObjects(store, [hex], { repair: true });
    assert.equal(entry?.status, "repaired");
    assert.equal((await Deno.lstat(store.objectPath(hex))).mode! & 0o777, 0o444);
    // Metadata that lies about the size: the object is rehashed and kept.
    const meta = JSON.parse(await Deno.readTextFile(store.metaPath(hex)));
    await Deno.writeTextFile(store.metaPath(hex), JSON.stringify({ ...meta, size: 1 }));
    const again = await ensureObject(store, target(body, []), fast);
    assert.equal(again.status, "present");
    assert.equal((await store.readMeta(hex))?.size, body.length);
    assert.equal(server.log.length, 1, "never downloaded again");
  });
});

// --- gc and unreadable roots -----------------------------------------------------------------

Deno.test("gc stops on a registered lock that does not parse; --force drops that root", async () => {
  await withEnv(async ({ server, store, dir }) => {
    const body = fixture(10_000, 3);
    server.routes.set("/a.bin", { body });
    const hex = sha256(body);
    await ensureObject(store, target(body, [`${server.url}/a.bin`]), fast);
    const lockFile = join(dir, "dtk.lock");
    await writeLock(lockFile, lockOf({ thing: { body } }));
    await store.addRoot(lockFile);
    // A merge left conflict markers: the lock cannot be read.
    const text = await Deno.readTextFile(lockFile);
    await Deno.writeTextFile(lockFile, `<<<<<<< HEAD\n${text}=======\n>>>>>>> other\n`);
    await assert.rejects(() => gcStore(store), (e: unknown) => {
      assert.ok(e instanceof DtkError, String(e));
      assert.match(e.message, /cannot be read/);
      assert.ok(e.message.includes(lockFile), "names the file");
      assert.match(e.hint ?? "", /--force/);
      return true;
    });
    assert.equal(await store.check(hex), "present", "gc removed nothing");
    // A torn root record stops it too: it names a lock nobody can know.
    const torn = join(store.dir, "roots", "torn.json");
    await Deno.writeTextFile(torn, "{");
    await assert.rejects(() => gcStore(store), /torn\.json/);
    const dry = await gcStore(store, { force: true, dryRun: true });
    assert.equal(dry.droppedRoots.length, 2);
    assert.equal(await store.check(hex), "present");
    const forced = await gcStore(store, { force: true });
    assert.deepEqual(forced.removed.map((r) => r.hex), [hex]);
    assert.deepEqual((await store.roots()).length, 0, "the unreadable roots are forgotten");
  });
});

// --- bounded downloads -----------------------------------------------------------------------

Deno.test("a download of unknown size is bounded by kind or DTK_MAX_DOWNLOAD_BYTES", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(300_000, 4);
    // No Content-Length: the bound is enforced while streaming, and the partial is removed.
    server.routes.set("/endless", { body, truncateTo: body.length, chunk: 16_384, delayMs: 1 });
    server.routes.set("/announced", { body });
    const hex = sha256(body);
    for (const path of ["/endless", "/announced"]) {
      await assert.rejects(
        () =>
          ensureObject(
            store,
            target(body, [`${server.url}${path}`], { size: null, kind: "chart" }),
            { ...fast, maxBytes: 100_000 },
          ),
        (e: unknown) => {
          assert.ok(e instanceof DtkError, String(e));
          assert.match(e.message, /more than the 97\.7 KiB a chart of unknown size may take/);
          assert.match(e.message, /DTK_MAX_DOWNLOAD_BYTES/);
          return true;
        },
      );
      assert.equal(await Deno.lstat(store.partialPath(hex)).catch(() => null), null, path);
    }
    // The per-kind default applies without the override.
    const { MAX_BYTES_BY_KIND } = await import("../../store/mod.ts");
    assert.equal(MAX_BYTES_BY_KIND.chart, 64 << 20);
    const ok = await ensureObject(
      store,
      target(body, [`${server.url}/announced`], { size: null, kind: "binary" }),
      fast,
    );
    assert.equal(ok.status, "fetched");
  });
});

Deno.test({
  name: "full disk: refused before starting when the size is known; partial removed on ENOSPC",
  ignore: !isRoot, // a small tmpfs needs root to mount
  fn: async () => {
    await withEnv(async ({ server, dir }) => {
      const mnt = join(dir, "small");
      await mountTmpfs(mnt, "size=1m");
      try {
        const body = fixture(2 << 20, 5);
        server.routes.set("/big.bin", { body });
        server.routes.set("/nolength.bin", { body, truncateTo: body.length });
        const store = new ObjectStore(join(mnt, "store"));
        await assert.rejects(
          () => ensureObject(store, target(body, [`${server.url}/big.bin`]), fast),
          /Not enough space in the store for "thing": it needs 2\.0 MiB/,
        );
        assert.equal(server.log.length, 0, "not one request before the space check");
        await assert.rejects(
          () =>
            ensureObject(store, target(body, [`${server.url}/nolength.bin`], { size: null }), fast),
          /Cannot write to the store/,
        );
        const tmp = [...Deno.readDirSync(join(store.dir, "tmp"))].map((e) => e.name);
        assert.deepEqual(tmp, [], "the partial is gone: the disk is not left full");
      } finally {
        await umount(mnt);
      }
    });
  },
});

Deno.test("gc removes partial downloads no process holds, and keeps a held one", async () => {
  await withEnv(async ({ store }) => {
    await store.init();
    const idle = "a".repeat(64);
    const held = "b".repeat(64);
    for (const hex of [idle, held]) {
      await Deno.writeFile(store.partialPath(hex), new Uint8Array(1000));
      await Deno.writeTextFile(`${store.partialPath(hex)}.json`, "{}");
    }
    // A temp file of a process that is gone, and one of this (live) process.
    const gone = join(store.dir, "tmp", "new-999999999-x.partial");
    const mine = store.tempPath();
    await Deno.writeFile(gone, new Uint8Array(10));
    await Deno.writeFile(mine, new Uint8Array(10));
    const report = await store.withLock(held, () => gcStore(store));
    assert.equal(report.partials, 3);
    const left = [...Deno.readDirSync(join(store.dir, "tmp"))].map((e) => e.name).sort();
    assert.deepEqual(left, [`${held}.partial`, `${held}.partial.json`, mine.split("/").at(-1)]);
  });
});

// --- links and FIFOs -------------------------------------------------------------------------

Deno.test("a partial planted as a link is never written through, chmodded or committed", async () => {
  await withEnv(async ({ server, store, dir }) => {
    const body = fixture(200_000, 6);
    server.routes.set("/a.bin", { body, etag: '"v1"' });
    const hex = sha256(body);
    await store.init();
    const victim = join(dir, "victim.txt");
    await Deno.writeTextFile(victim, "precious");
    await Deno.chmod(victim, 0o600);
    // As a resume (state file present) and as a fresh download.
    for (const resume of [true, false]) {
      await Deno.symlink(victim, store.partialPath(hex));
      if (resume) {
        await Deno.writeTextFile(
          `${store.partialPath(hex)}.json`,
          JSON.stringify({ url: `${server.url}/a.bin`, validator: '"v1"' }),
        );
      }
      await ensureObject(store, target(body, [`${server.url}/a.bin`]), fast);
      assert.equal(await Deno.readTextFile(victim), "precious");
      assert.equal((await Deno.stat(victim)).mode! & 0o777, 0o600, "the target's mode is kept");
      const info = await Deno.lstat(store.objectPath(hex));
      assert.ok(info.isFile && !info.isSymlink, "the object is a regular file");
      assert.equal(sha256(await Deno.readFile(store.objectPath(hex))), hex);
      await store.remove(hex);
    }
  });
});

Deno.test("objects and lock files planted as links are not followed", async () => {
  await withEnv(async ({ server, store, dir }) => {
    const body = fixture(5_000, 7);
    const hex = sha256(body);
    server.routes.set("/a.bin", { body });
    await store.init();
    const outside = join(dir, "outside.bin");
    await Deno.writeFile(outside, body);
    await Deno.chmod(outside, 0o444);
    await Deno.symlink(outside, store.objectPath(hex));
    assert.equal(await store.check(hex), "corrupt");
    const [v] = await verifyObjects(store, [hex]);
    assert.equal(v?.status, "corrupt", "a link is not an object, even to the right bytes");
    const lockTarget = join(dir, "created-by-lock.txt");
    await Deno.symlink(lockTarget, join(store.dir, "locks", `${hex}.lock`));
    const got = await ensureObject(store, target(body, [`${server.url}/a.bin`]), fast);
    assert.equal(got.status, "fetched");
    assert.ok((await Deno.lstat(store.objectPath(hex))).isFile);
    assert.equal(await Deno.lstat(lockTarget).catch(() => null), null, "no file made via the link");
  });
});

Deno.test("a FIFO as a file:// source, in store import or in store add is refused at once", async () => {
  await withEnv(async ({ store, dir }) => {
    const body = fixture(1000, 8);
    const fifo = join(dir, "fifo");
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mk.success);
    try {
      await within(
        5000,
        "a file:// FIFO source",
        assert.rejects(
          () => ensureObject(store, target(body, [`file://${fifo}`]), fast),
          /a FIFO, not a regular file/,
        ),
      );
      const usb = join(dir, "usb");
      await Deno.mkdir(join(usb, "sha256"), { recursive: true });
      await writeLock(join(usb, "dtk.lock"), lockOf({ thing: { body } }));
      await Deno.symlink(fifo, join(usb, "sha256", sha256(body)));
      await within(5000, "store import of a FIFO", assert.rejects(() => importDir(store, usb)));
      await within(5000, "store add of a FIFO", assert.rejects(() => addFile(store, fifo), /FIFO/));
    } finally {
      // Should an open have blocked on the FIFO, a writer releases it so the test can end
      // (read+write never blocks on Linux).
      const w = await Deno.open(fifo, { read: true, write: true }).catch(() => undefined);
      w?.close();
    }
  });
});

Deno.test("store import does not follow a link out of its folder", async () => {
  await withEnv(async ({ store, dir }) => {
    const body = fixture(3000, 9);
    const hex = sha256(body);
    const secret = join(dir, "private.bin");
    await Deno.writeFile(secret, body);
    const usb = join(dir, "usb");
    await Deno.mkdir(join(usb, "sha256"), { recursive: true });
    await writeLock(join(usb, "dtk.lock"), lockOf({ thing: { body } }));
    await Deno.symlink(secret, join(usb, "sha256", hex));
    await assert.rejects(() => importDir(store, usb), /Cannot fetch "thing"/);
    assert.equal(await store.check(hex), "missing");
    // A link inside the folder is fine.
    await Deno.remove(join(usb, "sha256", hex));
    await Deno.writeFile(join(usb, "real.bin"), body);
    await Deno.symlink(join(usb, "real.bin"), join(usb, "sha256", hex));
    const ok = await importDir(store, usb);
    assert.equal(ok.imported, 1);
  });
});

// --- slow sources ----------------------------------------------------------------------------

Deno.test("a drip below the minimum rate, or past the deadline, is given up with a named limit", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(100_000, 10);
    server.routes.set("/drip", { body, chunk: 10, delayMs: 20 });
    const t = target(body, [`${server.url}/drip`]);
    await within(
      10_000,
      "the drip",
      assert.rejects(
        () => ensureObject(store, t, { ...fast, minRate: 10_000, rateWindowMs: 400 }),
        /too slow: .* below the minimum of 9\.8 KiB\/s \(DTK_MIN_RATE\)/,
      ),
    );
    await within(
      10_000,
      "the deadline",
      assert.rejects(
        () => ensureObject(store, t, { ...fast, minRate: 0, deadlineMs: 300 }),
        /the deadline per artifact \(DTK_FETCH_DEADLINE_MS\)/,
      ),
    );
  });
});

// --- store folder, credentials ---------------------------------------------------------------

Deno.test("the store folder is created 0700; a folder others can read is reported", async () => {
  await withEnv(async ({ dir }) => {
    const store = new ObjectStore(join(dir, "fresh", "store"));
    await store.init();
    assert.equal((await Deno.stat(store.dir)).mode! & 0o777, 0o700);
    for (const sub of ["objects", "tmp", "meta"]) {
      assert.equal((await Deno.stat(join(store.dir, sub))).mode! & 0o077, 0, sub);
    }
    const open = join(dir, "open");
    await Deno.mkdir(open);
    await Deno.chmod(open, 0o755);
    const warnings: string[] = [];
    await new ObjectStore(open, { warn: (m) => warnings.push(m) }).init();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /can be read by other users \(mode 755\).*chmod 700/);
  });
});

Deno.test("credentials in URLs are never written to meta/*.json", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(2000, 11);
    server.routes.set("/a.bin", { body });
    const base = server.url.replace("http://", "http://alice:hunter2@");
    const url = `${base}/a.bin?token=s3cr3t&X-Amz-Signature=abc123&v=1`;
    await ensureObject(store, target(body, [url]), fast);
    const text = await Deno.readTextFile(store.metaPath(sha256(body)));
    for (const secret of ["hunter2", "alice", "s3cr3t", "abc123"]) {
      assert.ok(!text.includes(secret), `meta holds ${secret}: ${text}`);
    }
    assert.match(text, /"from": "http:\/\/127\.0\.0\.1:\d+\/a\.bin\?token=REDACTED/);
  });
});

// --- many names over one hash ----------------------------------------------------------------

/** Counts metadata writes: each `recordMeta` call writes at most once. */
class CountingStore extends ObjectStore {
  writes = 0;
  override recordMeta(...args: Parameters<ObjectStore["recordMeta"]>) {
    this.writes++;
    return super.recordMeta(...args);
  }
}

Deno.test("10,000 names over one hash: one metadata write per object, and store ls works", async () => {
  await withEnv(async ({ server, dir }) => {
    const body = fixture(1000, 12);
    server.routes.set("/a.bin", { body });
    const entries: Record<string, { body: Uint8Array }> = {};
    for (let i = 0; i < 10_000; i++) entries[`name-${i}`] = { body };
    const lock = lockOf(entries);
    for (const a of Object.values(lock.artifacts)) a.urls = [`${server.url}/a.bin`];
    const storeDir = join(dir, "store");
    const cold = new CountingStore(storeDir);
    const summary = await ensureLock(lock, { store: cold, ...fast });
    assert.equal(summary.results.length, 10_000);
    assert.equal(cold.writes, 1, "cold: one write for 10,000 names");
    assert.equal((await cold.readMeta(sha256(body)))?.names.length, 10_000);
    const warm = new CountingStore(storeDir);
    await ensureLock(lock, { store: warm, ...fast });
    assert.equal(warm.writes, 0, "warm: nothing new to write");
    // `dtk store ls` with that lock registered, as a real subprocess.
    const lockFile = join(dir, "dtk.lock");
    await writeLock(lockFile, lock);
    await warm.addRoot(lockFile);
    for (const args of [["store", "ls"], ["--json", "store", "ls"]]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", ENTRY, ...args],
        cwd: dir,
        env: { DTK_STORE: storeDir, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      assert.ok(!stderr.includes("RangeError"), stderr);
      const stdout = new TextDecoder().decode(out.stdout);
      if (args[0] !== "--json") {
        assert.match(stdout, /name-0,name-1,name-2,… \(\+9997 more\)/);
        assert.ok(stdout.length < 2000, "one short row, not 10,000 names");
      }
    }
  });
});

// --- user errors, not bugs -------------------------------------------------------------------

function assertUserError(e: unknown, pattern: RegExp): true {
  assert.ok(e instanceof DtkError, `a DtkError, not ${String(e)}`);
  assert.match(e.message, pattern);
  assert.ok(e.hint, "with a hint");
  const plain = (s: string) => s;
  const out = { red: plain, bold: plain, cyan: plain, dim: plain, verbose: false };
  assert.ok(!renderError(e, out).text.includes("This is a bug"));
  return true;
}

Deno.test("a file://host/ URL is a user error with a hint, in a lock and as a mirror", async () => {
  await withEnv(async ({ store, dir }) => {
    const body = fixture(100, 13);
    const lockFile = join(dir, "dtk.lock");
    const lock = lockOf({ thing: { body } });
    await Deno.writeTextFile(
      lockFile,
      JSON.stringify({
        ...lock,
        artifacts: { thing: { ...lock.artifacts.thing, urls: ["file://fileserver/x.bin"] } },
      }),
    );
    await assert.rejects(() => readLock(lockFile), (e: unknown) => {
      assertUserError(e, /names the host "fileserver": file:\/\/ URLs must be local/);
      assert.equal((e as DtkError).exitCode, ExitCode.usage);
      return true;
    });
    await assert.rejects(
      () => ensureObject(store, target(body, []), { ...fast, mirrors: ["file://nas/export"] }),
      (e: unknown) => assertUserError(e, /names the host "nas"/),
    );
  });
});

Deno.test("a read-only store is a user error with a hint", async () => {
  await withEnv(async ({ server, dir }) => {
    const body = fixture(100, 14);
    server.routes.set("/a.bin", { body });
    const ro = join(dir, "ro");
    if (isRoot) await mountTmpfs(ro, "ro,size=1m");
    else {
      await Deno.mkdir(ro);
      await Deno.chmod(ro, 0o555);
    }
    try {
      const store = new ObjectStore(join(ro, "store"));
      await assert.rejects(
        () => ensureObject(store, target(body, [`${server.url}/a.bin`]), fast),
        (e: unknown) => assertUserError(e, /Cannot write to the store/),
      );
      const error = await ensureObject(store, target(body, []), fast).catch((e) => e);
      assert.match((error as DtkError).hint ?? "", /DTK_STORE/);
    } finally {
      if (isRoot) await umount(ro);
    }
  });
});

Deno.test("duplicate keys in dtk.lock are refused with the line", async () => {
  await withEnv(async ({ dir }) => {
    const hex = "a".repeat(64);
    const path = join(dir, "dtk.lock");
    await Deno.writeTextFile(
      path,
      `{\n  "artifacts": {\n    "kubelet": { "hash": "sha256:${hex}", "urls": [] },\n` +
        `    "kubelet": { "hash": "sha256:${
          "b".repeat(64)
        }", "urls": [] }\n  },\n  "version": 1\n}\n`,
    );
    await assert.rejects(() => readLock(path), (e: unknown) => {
      assertUserError(e, /line 4: duplicate key "kubelet"/);
      return true;
    });
    // Equal keys in different objects are fine.
    await Deno.writeTextFile(
      path,
      `{"artifacts": {"a": {"hash": "sha256:${hex}", "urls": []}, "b": {"hash": "sha256:${hex}"}}}`,
    );
    assert.equal(Object.keys((await readLock(path))!.artifacts).length, 2);
  });
});

// --- store add -------------------------------------------------------------------------------

Deno.test("store add hashes while copying: right object, and a wrong --hash keeps nothing", async () => {
  await withEnv(async ({ store, dir }) => {
    const body = fixture(5 << 20, 15);
    const file = join(dir, "file.bin");
    await Deno.writeFile(file, body);
    await assert.rejects(
      () => addFile(store, file, { expected: "c".repeat(64) }),
      /does not match/,
    );
    assert.deepEqual(await store.list(), []);
    assert.deepEqual([...Deno.readDirSync(join(store.dir, "tmp"))], [], "no temp file left");
    const added = await addFile(store, file);
    assert.deepEqual([added.hex, added.size, added.status], [sha256(body), body.length, "added"]);
    assert.equal(sha256(await Deno.readFile(store.objectPath(added.hex))), added.hex);
    assert.equal((await addFile(store, file)).status, "present");
    // The exported copy reads the object through its own descriptor.
    const lock = lockOf({ file: { body } });
    const out = join(dir, "export");
    await exportLock(store, lock, out);
    assert.equal(sha256(await Deno.readFile(join(out, "sha256", added.hex))), added.hex);
  });
});

// --- the same classes in image and registry code -----------------------------------------------

Deno.test("gc stops when a locked image's manifest cannot be read; --force keeps the lock root", async () => {
  await withEnv(async ({ store, dir }) => {
    const { putImageObject } = await import("../../store/_image.ts");
    // Bytes that hash right but do not parse: the blobs they name are unknown.
    const manifest = new TextEncoder().encode('{"schemaVersion": 2, "layers": [');
    const hex = sha256(manifest);
    await putImageObject(store, manifest, {
      hex,
      name: "registry.example+app@1",
      mediaType: "application/vnd.oci.image.manifest.v1+json",
    });
    const layer = fixture(1000, 16);
    await store.init();
    await addFile(store, await tempFileOf(dir, layer));
    const lockFile = join(dir, "dtk.lock");
    await Deno.writeTextFile(
      lockFile,
      JSON.stringify({
        version: 1,
        artifacts: {
          "registry.example+app@1": {
            kind: "image",
            ref: "registry.example/app:1",
            hash: formatHash(hex),
            arch: "amd64",
          },
        },
      }),
    );
    await store.addRoot(lockFile);
    await assert.rejects(() => gcStore(store), /image "registry\.example\+app@1": /);
    assert.equal(await store.check(sha256(layer)), "present", "nothing removed");
    const forced = await gcStore(store, { force: true });
    assert.ok(forced.removed.some((r) => r.hex === sha256(layer)));
    assert.equal((await store.roots()).length, 1, "the lock itself is still registered");
  });
});

async function tempFileOf(dir: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, `f-${sha256(bytes).slice(0, 8)}`);
  await Deno.writeFile(path, bytes);
  return path;
}

Deno.test("image objects and registry blobs are not read through a link in objects/", async () => {
  await withEnv(async ({ store, dir }) => {
    const { readImageObject } = await import("../../store/_image.ts");
    const { fileStream } = await import("../../lib/registry/_http.ts");
    const bytes = new TextEncoder().encode('{"schemaVersion":2}');
    const hex = sha256(bytes);
    await store.init();
    const outside = await tempFileOf(dir, bytes);
    await Deno.chmod(outside, 0o444);
    await Deno.symlink(outside, store.objectPath(hex));
    assert.equal(await readImageObject(store, hex, "x"), undefined);
    const stream = fileStream(store.objectPath(hex), 0, { length: bytes.length });
    await assert.rejects(() => new Response(stream).arrayBuffer(), /not a regular file/);
  });
});

Deno.test("a FIFO as the lock of an import folder is refused unread", async () => {
  await withEnv(async ({ store, dir }) => {
    const usb = join(dir, "usb");
    await Deno.mkdir(usb);
    const fifo = join(usb, "dtk.lock");
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    try {
      await within(
        5000,
        "import of a FIFO lock",
        assert.rejects(() => importDir(store, usb), /not a regular file/),
      );
    } finally {
      const w = await Deno.open(fifo, { read: true, write: true }).catch(() => undefined);
      w?.close();
    }
  });
});

Deno.test("a URL with a token resumes, and the token is not in the partial's state file", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(8 << 20, 17);
    server.routes.set("/a.bin", {
      body,
      resetAfter: 5 << 20,
      resetTimes: 1,
      chunk: 64 * 1024,
      etag: '"e1"',
    });
    const url = `${server.url}/a.bin?token=t0psecret`;
    const t = target(body, [url]);
    const first = await ensureObject(store, t, fast).catch((e) => e);
    assert.ok(first instanceof DtkError, "the reset fails the single try");
    const state = await Deno.readTextFile(`${store.partialPath(t.hex)}.json`);
    assert.ok(!state.includes("t0psecret"), state);
    const second = await ensureObject(store, t, fast);
    assert.equal(second.status, "fetched");
    assert.ok(second.transferred < body.length, "resumed, not restarted");
    assert.match(server.log.at(-1)?.range ?? "", /^bytes=\d+-$/);
  });
});

Deno.test("export does not write through a link planted in the target folder", async () => {
  await withEnv(async ({ store, dir }) => {
    const body = fixture(4000, 18);
    const added = await addFile(store, await tempFileOf(dir, body));
    const out = join(dir, "export");
    await Deno.mkdir(join(out, "sha256"), { recursive: true });
    const victim = join(dir, "victim.txt");
    await Deno.writeFile(victim, new Uint8Array(body.length));
    await Deno.symlink(victim, join(out, "sha256", added.hex));
    await exportLock(store, lockOf({ thing: { body } }), out);
    assert.deepEqual(await Deno.readFile(victim), new Uint8Array(body.length), "victim untouched");
    const info = await Deno.lstat(join(out, "sha256", added.hex));
    assert.ok(info.isFile && !info.isSymlink);
    assert.equal(sha256(await Deno.readFile(join(out, "sha256", added.hex))), added.hex);
  });
});

Deno.test("dtk store gc: exit 1 naming the unreadable lock, --force goes on", async () => {
  await withEnv(async ({ server, store, dir }) => {
    const body = fixture(2000, 19);
    server.routes.set("/a.bin", { body });
    await ensureObject(store, target(body, [`${server.url}/a.bin`]), fast);
    const lockFile = join(dir, "broken.lock");
    await Deno.writeTextFile(lockFile, '{"artifacts": {"x": {"hash": "sha256:nope"}}}');
    await store.addRoot(lockFile);
    const gc = async (...extra: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", ENTRY, "store", "gc", ...extra],
        cwd: dir,
        env: { DTK_STORE: store.dir, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
    };
    const stopped = await gc();
    assert.equal(stopped.code, 1, stopped.stderr);
    assert.ok(stopped.stderr.includes(lockFile), stopped.stderr);
    assert.match(stopped.stderr, /hint: .*--force/);
    assert.ok(!stopped.stderr.includes("This is a bug"));
    assert.equal(await store.check(sha256(body)), "present");
    const forced = await gc("--force");
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /forgot root .*broken\.lock/);
    assert.equal(await store.check(sha256(body)), "missing");
  });
});

Deno.test("download limits come from the environment; a bad value is a usage error", async () => {
  const { tuningFromEnv } = await import("../../store/mod.ts");
  const env = (values: Record<string, string>) => (name: string) => values[name];
  assert.deepEqual(
    tuningFromEnv(env({
      DTK_MAX_DOWNLOAD_BYTES: "1048576",
      DTK_MIN_RATE: "0",
      DTK_RATE_WINDOW_MS: "5000",
      DTK_FETCH_DEADLINE_MS: "60000",
    })),
    {
      stallTimeoutMs: undefined,
      backoffMs: undefined,
      attempts: undefined,
      maxBytes: 1048576,
      minRate: 0,
      rateWindowMs: 5000,
      deadlineMs: 60000,
    },
  );
  assert.throws(() => tuningFromEnv(env({ DTK_MIN_RATE: "fast" })), (e: unknown) => {
    assert.ok(e instanceof DtkError && e.exitCode === ExitCode.usage);
    assert.match(e.message, /DTK_MIN_RATE must be a non-negative number, got "fast"/);
    return true;
  });
});

Deno.test("DTK_MAX_DOWNLOAD_BYTES bounds callers that pass no limits (as cluster create)", async () => {
  await withEnv(async ({ server, store }) => {
    const body = fixture(50_000, 20);
    server.routes.set("/a.bin", { body, truncateTo: body.length });
    Deno.env.set("DTK_MAX_DOWNLOAD_BYTES", "10000");
    try {
      await assert.rejects(
        () => ensureObject(store, target(body, [`${server.url}/a.bin`], { size: null })),
        /more than the 9\.8 KiB .*DTK_MAX_DOWNLOAD_BYTES/,
      );
    } finally {
      Deno.env.delete("DTK_MAX_DOWNLOAD_BYTES");
    }
  });
});

Deno.test("a computed-hash download (dtk lock, no checksum) is bounded too, and leaves no temp file", async () => {
  await withEnv(async ({ server, store }) => {
    const { fetchUnknown } = await import("../../store/mod.ts");
    const body = fixture(50_000, 21);
    server.routes.set("/nolength", { body, truncateTo: body.length });
    server.routes.set("/announced", { body });
    for (const path of ["/nolength", "/announced"]) {
      await assert.rejects(
        () =>
          fetchUnknown(store, "thing", [`${server.url}${path}`], {
            ...fast,
            kind: "manifest",
            maxBytes: 10_000,
          }),
        /more than the 9\.8 KiB a manifest of unknown size may take/,
      );
    }
    assert.deepEqual([...Deno.readDirSync(join(store.dir, "tmp"))], []);
  });
});

Deno.test("a local file source takes one copy path, pinned or not: size, bound, hash, no temp left", async () => {
  await withEnv(async ({ store, dir }) => {
    const { fetchUnknown } = await import("../../store/mod.ts");
    const body = fixture(30_000, 22);
    const file = join(dir, "local.bin");
    await Deno.writeFile(file, body);
    const tmpLeft = () => [...Deno.readDirSync(join(store.dir, "tmp"))].map((e) => e.name);
    // Unpinned (dtk lock): the hash is learned from the copy, which becomes the object.
    const learned = await fetchUnknown(store, "thing", [file], fast);
    assert.deepEqual(learned, { hex: sha256(body), size: body.length, from: file });
    assert.equal(await store.check(sha256(body), body.length), "present");
    // Over the bound: refused from the file's size, before a byte is copied, in both callers.
    await assert.rejects(
      () => fetchUnknown(store, "thing", [file], { ...fast, kind: "manifest", maxBytes: 10_000 }),
      /the file has 30000 bytes, more than the 9\.8 KiB a manifest of unknown size may take/,
    );
    const other = fixture(30_000, 23);
    const otherFile = join(dir, "other.bin");
    await Deno.writeFile(otherFile, other);
    await assert.rejects(
      () =>
        ensureObject(store, target(other, [otherFile], { size: null, kind: "chart" }), {
          ...fast,
          maxBytes: 10_000,
        }),
      /the file has 30000 bytes, more than the 9\.8 KiB a chart of unknown size may take/,
    );
    // Pinned: another size is the wrong bytes (not "too big", though the size is the bound too).
    await assert.rejects(
      () => ensureObject(store, target(other, [otherFile], { size: 20_000 }), fast),
      /wrong size: 30000 bytes, expected 20000/,
    );
    // Pinned, right size, other bytes: refused by hash, nothing kept.
    await assert.rejects(
      () => ensureObject(store, target(other, [file]), fast),
      new RegExp(
        `wrong bytes: got ${formatHash(sha256(body)).replace(/[:]/g, ".")} \\(30000 bytes\\)`,
      ),
    );
    assert.equal(await store.check(sha256(other), other.length), "missing");
    const ok = await ensureObject(store, target(other, [otherFile]), fast);
    assert.equal(ok.status, "fetched");
    assert.equal(await store.check(sha256(other), other.length), "present");
    assert.deepEqual(tmpLeft(), []);
  });
});
