import assert from "node:assert/strict";
import { join } from "node:path";
import type { ArtifactSpec } from "../lib/catalog/mod.ts";
import { ObjectStore } from "./_objects.ts";
import { findChecksum, findInHelmIndex, resolveLock } from "./_resolve.ts";
import type { LockRequest } from "./lockfile.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);
const request: LockRequest = {
  arch: "amd64",
  virt: "kvm",
  linux: "alma9",
  createTemplate: true,
  templateSource: "kickstart",
  versions: {},
  addons: {},
};

Deno.test("checksum files: bare sidecar, GNU lines, BSD lines, Helm index", async () => {
  assert.equal(findChecksum(`${A}\n`, "x"), A);
  assert.equal(findChecksum(`${B}  other.tgz\n${A}  ./dir/x.tgz\n`, "x.tgz"), A);
  assert.equal(findChecksum(`${A} *x.iso\n`, "x.iso"), A);
  assert.equal(
    findChecksum(
      `# c\nSHA256 (AlmaLinux-9.7-x86_64-dvd.iso) = ${A}\n`,
      "AlmaLinux-9.7-x86_64-dvd.iso",
    ),
    A,
  );
  assert.equal(findChecksum(`${B}  other.tgz\n`, "x.tgz"), undefined);
  const index =
    `apiVersion: v1\nentries:\n  cilium:\n  - version: 1.18.5\n    digest: ${A}\n  - version: 1.18.4\n    digest: ${B}\n`;
  assert.equal(await findInHelmIndex(index, "cilium", "1.18.5"), A);
  assert.equal(await findInHelmIndex(index, "cilium", "v1.18.4"), B);
  assert.equal(await findInHelmIndex(index, "cilium", "9.9.9"), undefined);
});

Deno.test("resolve: pinned first, then publisher, then computed with a warning; changes are flagged", async () => {
  const dir = await Deno.makeTempDir();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/sums") return new Response(`${B}  pub.tgz\n`);
    if (path === "/raw.yaml") return new Response("kind: CRD\n");
    return new Response("", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const specs: ArtifactSpec[] = [
      {
        name: "pinned",
        version: "1",
        kind: "binary",
        arch: "amd64",
        file: "p",
        urls: [`${base}/p`],
        pin: A,
      },
      {
        name: "pub",
        version: "1",
        kind: "tarball",
        arch: "amd64",
        file: "pub.tgz",
        urls: [`${base}/pub.tgz`],
        checksum: { type: "file", url: `${base}/sums` },
      },
      {
        name: "raw",
        version: "v1",
        kind: "manifest",
        arch: "noarch",
        file: "raw.yaml",
        urls: [`${base}/raw.yaml`],
      },
    ];
    const warnings: string[] = [];
    const store = new ObjectStore(join(dir, "store"));
    const opts = { store, warn: (m: string) => warnings.push(m), download: { backoffMs: 1 } };
    const { lock, changed } = await resolveLock(specs, request, opts);
    assert.equal(lock.artifacts.pinned?.source, "pinned");
    assert.equal(lock.artifacts.pub?.source, "publisher");
    assert.equal(lock.artifacts.pub?.hash, `sha256:${B}`);
    assert.equal(lock.artifacts.pub?.checksumUrl, `${base}/sums`);
    assert.equal(lock.artifacts.raw?.source, "computed");
    assert.equal(lock.artifacts.raw?.size, 10);
    assert.ok(
      warnings.some((w) => w.startsWith("raw: no pinned or published checksum")),
      warnings.join("\n"),
    );
    assert.deepEqual(changed, ["pinned", "pub", "raw"]);
    // Unchanged specs are kept without touching the network.
    warnings.length = 0;
    const again = await resolveLock(specs, request, { ...opts, previous: lock });
    assert.deepEqual(again.changed, []);
    // A new version whose hash did not change is suspicious.
    const bumped = specs.map((s) => s.name === "pinned" ? { ...s, version: "2" } : s);
    const third = await resolveLock(bumped, request, { ...opts, previous: lock });
    assert.deepEqual(third.changed, ["pinned"]);
    assert.ok(
      warnings.some((w) =>
        w.includes("pinned: the version or URL changed (1 → 2) but the hash did not")
      ),
    );
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolve: every artifact that cannot be resolved is named in one error", async () => {
  const dir = await Deno.makeTempDir();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/ok.yaml") return new Response("kind: CRD\n");
    return new Response("gone", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const spec = (name: string, extra: Partial<ArtifactSpec> = {}): ArtifactSpec => ({
    name,
    version: "1",
    kind: "manifest",
    arch: "noarch",
    file: `${name}.yaml`,
    urls: [`${base}/${name}.yaml`],
    ...extra,
  });
  try {
    const store = new ObjectStore(join(dir, "store"));
    const warnings: string[] = [];
    await assert.rejects(
      () =>
        resolveLock(
          [
            spec("ok"),
            spec("missing-a"),
            spec("missing-b", { checksum: { type: "file", url: `${base}/SUMS` } }),
          ],
          request,
          { store, warn: (m) => warnings.push(m), download: { backoffMs: 1, attempts: 1 } },
        ),
      (e: Error) => {
        assert.match(e.message, /^Cannot resolve 2 of 3 artifacts; the lock was not written\n/);
        assert.match(e.message, /\n {2}missing-a: Cannot download "missing-a"/);
        assert.match(e.message, /\n {2}missing-b: Cannot download "missing-b"/);
        assert.match(e.message, /missing-b\.yaml: HTTP 404/);
        assert.doesNotMatch(e.message, /\bok:/);
        return true;
      },
    );
    // The publisher's missing checksum file was warned about before the download was tried.
    assert.ok(warnings.some((w) => w.startsWith("missing-b: cannot read the publisher's")));
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
