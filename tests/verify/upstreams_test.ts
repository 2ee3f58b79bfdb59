// `dtk verify upstreams` and `dtk verify files` against a loopback HTTP server and a temp store.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { ArtifactSpec } from "../../lib/catalog/mod.ts";
import { defaultConfig } from "../../lib/config/mod.ts";
import { writeFileAtomic } from "../../lib/fs/mod.ts";
import { checkUrl, verifyFiles, verifyUpstreams } from "../../lib/verify/mod.ts";
import { addFile, type Lockfile, openStore, serializeLock } from "../../store/mod.ts";
import { dtkVerify } from "./_cli.ts";

const hex = (text: string) => createHash("sha256").update(text).digest("hex");

interface Hit {
  method: string;
  path: string;
  range: string | null;
}

/** A loopback server whose routes behave like the upstreams dtk meets. */
function startServer() {
  const hits: Hit[] = [];
  const release = Promise.withResolvers<void>();
  const files: Record<string, string> = {
    "/head-ok/a.bin": "artifact a",
    "/head-405/b.bin": "artifact b",
    "/head-403/c.bin": "artifact c",
    "/sums/e.tgz": "artifact e",
    "/sums/f.tgz": "artifact f",
    "/sums/g.tgz": "artifact g",
    "/charts/h-1.0.0.tgz": "chart h",
  };
  const sums = [
    `${hex("artifact e changed upstream")}  e.tgz`,
    `${hex("artifact f")} *f.tgz`,
  ].join("\n") + "\n";
  const index = [
    "apiVersion: v1",
    "entries:",
    "  h:",
    "    - version: 1.0.0",
    `      digest: ${hex("chart h")}`,
    "      urls: [charts/h-1.0.0.tgz]",
    "",
  ].join("\n");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    hits.push({ method: req.method, path, range: req.headers.get("range") });
    if (path === "/hang") {
      await release.promise;
      return new Response("late");
    }
    if (path === "/sums/SHA256SUMS") return new Response(sums);
    if (path === "/charts/index.yaml") return new Response(index);
    const body = files[path];
    if (body === undefined) return new Response("not found", { status: 404 });
    if (req.method === "HEAD") {
      if (path.startsWith("/head-405/")) return new Response(null, { status: 405 });
      if (path.startsWith("/head-403/")) return new Response(null, { status: 403 });
      return new Response(null, { headers: { "content-length": String(body.length) } });
    }
    // /head-403/ ignores Range (as python's http.server does): the whole body with 200.
    if (req.headers.get("range") === "bytes=0-0" && !path.startsWith("/head-403/")) {
      return new Response(body.slice(0, 1), {
        status: 206,
        headers: { "content-range": `bytes 0-0/${body.length}` },
      });
    }
    return new Response(body);
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    hits,
    async [Symbol.asyncDispose]() {
      release.resolve();
      await server.shutdown();
    },
  };
}

function entry(urls: string[], body: string, extra: Record<string, unknown> = {}) {
  return {
    version: "1.0.0",
    kind: "binary" as const,
    arch: "amd64" as const,
    urls,
    hash: `sha256:${hex(body)}`,
    size: body.length,
    source: "pinned" as const,
    ...extra,
  };
}

function lockFor(url: string): Lockfile {
  return {
    version: 1,
    artifacts: {
      a: entry([`${url}/head-ok/a.bin`], "artifact a"),
      b: entry([`${url}/head-405/b.bin`], "artifact b"),
      c: entry([`${url}/head-403/c.bin`], "artifact c"),
      d: entry([`${url}/gone/d.bin`], "artifact d"),
      e: entry([`${url}/sums/e.tgz`], "artifact e", {
        source: "publisher",
        checksumUrl: `${url}/sums/SHA256SUMS`,
      }),
      f: entry([`${url}/sums/f.tgz`], "artifact f", {
        source: "publisher",
        checksumUrl: `${url}/sums/SHA256SUMS`,
      }),
      g: entry([`${url}/sums/g.tgz`], "artifact g", {
        source: "publisher",
        checksumUrl: `${url}/sums/SHA256SUMS`,
      }),
      // Pinned: its publisher checksum is known only from the catalogue spec.
      "chart-h": entry([`${url}/charts/h-1.0.0.tgz`], "chart h"),
    },
  };
}

Deno.test("verify upstreams: HEAD, refused HEAD → ranged GET, 404, changed and missing checksums", async () => {
  await using server = startServer();
  const lock = lockFor(server.url);
  const specs: ArtifactSpec[] = [{
    name: "chart-h",
    version: "1.0.0",
    kind: "chart",
    arch: "noarch",
    file: "h-1.0.0.tgz",
    urls: [`${server.url}/charts/h-1.0.0.tgz`],
    checksum: { type: "helm-index", url: `${server.url}/charts/index.yaml`, chart: "h" },
  }];
  const report = await verifyUpstreams(lock, { specs, timeoutMs: 5000 });
  const by = (artifact: string, check: string) =>
    report.results.find((r) => r.artifact === artifact && r.check === check);

  assert.equal(by("a", "url")?.status, "ok");
  assert.equal(by("a", "url")?.via, "HEAD 200");

  assert.equal(by("b", "url")?.status, "ok");
  assert.equal(by("b", "url")?.via, "GET 206 (after HEAD 405)");
  assert.deepEqual(
    server.hits.filter((h) => h.path === "/head-405/b.bin").map((h) => [h.method, h.range]),
    [["HEAD", null], ["GET", "bytes=0-0"]],
  );
  // A server that ignores Range still proves the file is there; its body is never read.
  assert.equal(by("c", "url")?.status, "ok");
  assert.equal(by("c", "url")?.via, "GET 200 (after HEAD 403)");

  assert.equal(by("d", "url")?.status, "unreachable");
  assert.equal(by("d", "url")?.detail, "HTTP 404");

  const e = by("e", "checksum");
  assert.equal(e?.status, "checksum-changed");
  assert.equal(e?.expected, hex("artifact e"));
  assert.equal(e?.actual, hex("artifact e changed upstream"));
  assert.equal(by("f", "checksum")?.status, "ok");
  assert.equal(by("g", "checksum")?.status, "checksum-missing");
  assert.match(by("g", "checksum")?.detail ?? "", /no longer lists g\.tgz/);
  assert.equal(by("chart-h", "checksum")?.status, "ok");
  assert.equal(by("chart-h", "checksum")?.url, `${server.url}/charts/index.yaml`);
  // SHA256SUMS is shared by three artifacts and read once.
  assert.equal(server.hits.filter((h) => h.path === "/sums/SHA256SUMS").length, 1);
  assert.equal(report.problems, 3);
  assert.equal(report.results.length, 8 + 4);
});

Deno.test("verify upstreams: a URL that never answers fails within the bound; file:// URLs", async () => {
  await using server = startServer();
  const started = performance.now();
  const r = await checkUrl(`${server.url}/hang`, { timeoutMs: 300 });
  const elapsed = performance.now() - started;
  assert.equal(r.ok, false);
  assert.match(r.detail ?? "", /no answer within 300ms|no answer within 0\.3 ?s/);
  assert.ok(elapsed < 3000, `took ${elapsed} ms`);

  const dir = await Deno.makeTempDir({ prefix: "dtk-verify-file-" });
  try {
    await Deno.writeTextFile(join(dir, "x"), "x");
    assert.deepEqual(await checkUrl(pathToFileURL(join(dir, "x")).href), { ok: true, via: "file" });
    assert.equal((await checkUrl(pathToFileURL(join(dir, "nope")).href)).ok, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: dtk verify upstreams prints every check, exits 1 on problems and 0 when clean", async () => {
  await using server = startServer();
  const dir = await Deno.makeTempDir({ prefix: "dtk-verify-up-" });
  try {
    const config = defaultConfig({ dir });
    const lock = lockFor(server.url);
    await writeFileAtomic(join(dir, "dtk.lock"), serializeLock(lock));
    const bad = await dtkVerify(config, ["verify", "upstreams", "--timeout", "5"]);
    assert.equal(bad.code, 1, bad.error?.message);
    assert.match(bad.stdout, /^ARTIFACT\s+CHECK\s+STATUS/);
    assert.match(bad.stdout, /^b\s+url\s+ok\s+GET 206 \(after HEAD 405\)/m);
    assert.match(bad.stdout, /^d\s+url\s+unreachable\s+HEAD 404/m);
    assert.match(bad.stdout, /^e\s+checksum\s+checksum-changed/m);
    assert.match(bad.stdout, /8 of 11 checks ok, 3 problem\(s\)/);
    assert.match(bad.error?.message ?? "", /^3 upstream check\(s\) of the lock failed$/);
    assert.match(bad.error?.hint ?? "", /publisher now states another hash/);

    const json = await dtkVerify(config, ["verify", "upstreams", "--json"]);
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.problems, 3);
    assert.equal(parsed.results.length, 11);

    const good: Lockfile = {
      version: 1,
      artifacts: { a: lock.artifacts.a!, b: lock.artifacts.b!, f: lock.artifacts.f! },
    };
    await writeFileAtomic(join(dir, "dtk.lock"), serializeLock(good));
    const clean = await dtkVerify(config, ["verify", "upstreams"]);
    assert.equal(clean.code, 0, clean.error?.message);
    assert.match(clean.stdout, /4 of 4 checks ok, 0 problem\(s\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verify files: ok, missing and corrupt artifacts of a temp store; CLI exit codes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-verify-files-" });
  try {
    const storePath = join(dir, "store");
    const store = openStore(storePath);
    const add = async (name: string, body: string) => {
      await Deno.writeTextFile(join(dir, name), body);
      await addFile(store, join(dir, name), { name });
    };
    await add("one.bin", "one");
    await add("two.bin", "two");
    const lock: Lockfile = {
      version: 1,
      artifacts: {
        one: entry(["https://example.invalid/one.bin"], "one"),
        two: entry(["https://example.invalid/two.bin"], "two"),
        // The same bytes under a second name are checked once and reported under both.
        "one-again": entry(["https://example.invalid/one-again.bin"], "one"),
        three: entry(["https://example.invalid/three.bin"], "three"),
      },
    };
    const report = await verifyFiles(lock, { store });
    assert.deepEqual(
      report.results.map((r) => [r.artifact, r.status]),
      [["one", "ok"], ["one-again", "ok"], ["three", "missing"], ["two", "ok"]],
    );
    assert.equal(report.problems, 1);

    const config = { ...defaultConfig({ dir }), store: { path: storePath, mirrors: [] } };
    await writeFileAtomic(join(dir, "dtk.lock"), serializeLock(lock));
    const missing = await dtkVerify(config, ["verify", "files"]);
    assert.equal(missing.code, 1, missing.error?.message);
    assert.match(missing.stdout, /^three\s+missing\s/m);
    assert.match(missing.stdout, /3 of 4 artifacts ok in /);
    assert.match(missing.error?.hint ?? "", /dtk fetch/);

    // Flip a byte of an object (objects are read-only: make it writable first, as a bad disk would not ask).
    const twoPath = store.objectPath(hex("two"));
    await Deno.chmod(twoPath, 0o644);
    await Deno.writeTextFile(twoPath, "twO");
    await Deno.chmod(twoPath, 0o444);
    delete lock.artifacts.three;
    await writeFileAtomic(join(dir, "dtk.lock"), serializeLock(lock));
    const corrupt = await dtkVerify(config, ["verify", "files", "--json"]);
    assert.equal(corrupt.code, 4, corrupt.error?.message);
    const parsed = JSON.parse(corrupt.stdout);
    const two = parsed.results.find((r: { artifact: string }) => r.artifact === "two");
    assert.equal(two.status, "corrupt");
    assert.equal(two.actual, hex("twO"));

    await Deno.chmod(twoPath, 0o644);
    await Deno.writeTextFile(twoPath, "two");
    await Deno.chmod(twoPath, 0o444);
    const clean = await dtkVerify(config, ["verify", "files"]);
    assert.equal(clean.code, 0, clean.error?.message);
    assert.match(clean.stdout, /3 of 3 artifacts ok/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
