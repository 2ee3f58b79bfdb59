import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  type ClosureBlob,
  handleRegistryRequest,
  ociArchive,
  parseImageReference,
  parseListen,
  parseRange,
  RegistryIndex,
  startRegistry,
} from "./mod.ts";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

function hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A store folder with the given objects, and an index of two images over part of them. */
async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "dtk-registry-test-" });
  const put = async (bytes: Uint8Array, mediaType: string, role: ClosureBlob["role"]) => {
    const h = hex(bytes);
    await Deno.writeFile(join(dir, h), bytes);
    return { digest: `sha256:${h}`, mediaType, size: bytes.length, role } as ClosureBlob;
  };
  const text = (s: string) => new TextEncoder().encode(s);
  const layer = await put(
    Uint8Array.from({ length: 3000 }, (_, i) => i % 251),
    "application/vnd.oci.image.layer.v1.tar",
    "layer",
  );
  const config = await put(
    text('{"architecture":"amd64"}'),
    "application/vnd.oci.image.config.v1+json",
    "config",
  );
  const manifest = await put(text(`{"layers":["${layer.digest}"]}`), OCI_MANIFEST, "manifest");
  const index = await put(text(`{"manifests":["${manifest.digest}"]}`), OCI_INDEX, "index");
  const other = await put(
    text("a blob of the store that no locked image references"),
    "x",
    "layer",
  );
  const lone = await put(text('{"lone":true}'), OCI_MANIFEST, "manifest");
  const closures: Record<string, ClosureBlob[]> = {
    cilium: [index, manifest, config, layer],
    pause: [lone],
    pauseMirror: [lone],
  };
  const registry = await RegistryIndex.build([
    { name: "cilium", ref: "quay.io/cilium/cilium:v1.18.5", hash: index.digest },
    { name: "pause", ref: "registry.k8s.io/pause:3.10", hash: lone.digest },
    { name: "pauseMirror", ref: "mirror.example/pause:3.10", hash: lone.digest },
  ], (e) => Promise.resolve(closures[e.name]!));
  const handle = (path: string, init: RequestInit = {}) =>
    handleRegistryRequest(new Request(`http://dtk.test${path}`, init), registry, {
      objectPath: (h) => join(dir, h),
    });
  return { dir, handle, layer, config, manifest, index, other, lone, registry };
}

async function errorCode(response: Response): Promise<string> {
  const body = await response.json() as { errors: { code: string; message: string }[] };
  return body.errors[0]!.code;
}

Deno.test("registry: /v2/ answers 200 with the API version header", async () => {
  const f = await fixture();
  try {
    const r = await f.handle("/v2/");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("docker-distribution-api-version"), "registry/2.0");
    assert.equal(await r.text(), "{}");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: a tag resolves only through the lock, with the stored media type", async () => {
  const f = await fixture();
  try {
    const r = await f.handle("/v2/cilium/cilium/manifests/v1.18.5");
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), OCI_INDEX);
    assert.equal(r.headers.get("docker-content-digest"), f.index.digest);
    assert.equal(r.headers.get("content-length"), String(f.index.size));
    assert.equal(hex(new Uint8Array(await r.arrayBuffer())), f.index.digest.slice(7));
    const byDigest = await f.handle(`/v2/cilium/cilium/manifests/${f.manifest.digest}`);
    assert.equal(byDigest.status, 200);
    assert.equal(byDigest.headers.get("content-type"), OCI_MANIFEST);
    await byDigest.body?.cancel();
    const unknown = await f.handle("/v2/cilium/cilium/manifests/latest");
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), "MANIFEST_UNKNOWN");
    // A layer's digest is not a manifest.
    const layer = await f.handle(`/v2/cilium/cilium/manifests/${f.layer.digest}`);
    assert.equal(layer.status, 404);
    assert.equal(await errorCode(layer), "MANIFEST_UNKNOWN");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: HEAD gives the headers of GET and no body", async () => {
  const f = await fixture();
  try {
    const r = await f.handle("/v2/cilium/cilium/manifests/v1.18.5", { method: "HEAD" });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-length"), String(f.index.size));
    assert.equal(r.headers.get("docker-content-digest"), f.index.digest);
    assert.equal(r.body, null);
    const blob = await f.handle(`/v2/cilium/cilium/blobs/${f.layer.digest}`, { method: "HEAD" });
    assert.equal(blob.status, 200);
    assert.equal(blob.headers.get("content-length"), "3000");
    assert.equal(blob.body, null);
    const missing = await f.handle(`/v2/cilium/cilium/blobs/${f.other.digest}`, { method: "HEAD" });
    assert.equal(missing.status, 404);
    assert.equal(missing.body, null);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: blobs stream whole, by Range (206), and 416 past the end", async () => {
  const f = await fixture();
  try {
    const whole = await f.handle(`/v2/cilium/cilium/blobs/${f.layer.digest}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    assert.equal(hex(new Uint8Array(await whole.arrayBuffer())), f.layer.digest.slice(7));
    const part = await f.handle(`/v2/cilium/cilium/blobs/${f.layer.digest}`, {
      headers: { Range: "bytes=1000-1999" },
    });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), "bytes 1000-1999/3000");
    assert.equal(part.headers.get("content-length"), "1000");
    const bytes = new Uint8Array(await part.arrayBuffer());
    assert.equal(bytes.length, 1000);
    assert.equal(bytes[0], 1000 % 251);
    const open = await f.handle(`/v2/cilium/cilium/blobs/${f.layer.digest}`, {
      headers: { Range: "bytes=2990-" },
    });
    assert.equal(open.headers.get("content-range"), "bytes 2990-2999/3000");
    assert.equal((await open.arrayBuffer()).byteLength, 10);
    const bad = await f.handle(`/v2/cilium/cilium/blobs/${f.layer.digest}`, {
      headers: { Range: "bytes=3000-" },
    });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get("content-range"), "bytes */3000");
    await bad.body?.cancel();
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: a blob of the store outside the lock's closure is 404 BLOB_UNKNOWN", async () => {
  const f = await fixture();
  try {
    const r = await f.handle(`/v2/cilium/cilium/blobs/${f.other.digest}`);
    assert.equal(r.status, 404);
    assert.equal(await errorCode(r), "BLOB_UNKNOWN");
    // Another image's blob is not served under this name either.
    const cross = await f.handle(`/v2/cilium/cilium/blobs/${f.lone.digest}`);
    assert.equal(cross.status, 404);
    await cross.body?.cancel();
    const invalid = await f.handle("/v2/cilium/cilium/blobs/sha256:zz");
    assert.equal(invalid.status, 400);
    assert.equal(await errorCode(invalid), "DIGEST_INVALID");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: ?ns= picks the registry; a name in two registries without it is refused", async () => {
  const f = await fixture();
  try {
    const ambiguous = await f.handle("/v2/pause/manifests/3.10");
    assert.equal(ambiguous.status, 404);
    const body = await ambiguous.json() as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, "NAME_UNKNOWN");
    assert.match(
      body.errors[0]!.message,
      /2 registries.*mirror\.example, registry\.k8s\.io.*\?ns=/,
    );
    const picked = await f.handle("/v2/pause/manifests/3.10?ns=registry.k8s.io");
    assert.equal(picked.status, 200);
    assert.equal(picked.headers.get("docker-content-digest"), f.lone.digest);
    await picked.body?.cancel();
    const one = await f.handle("/v2/cilium/cilium/manifests/v1.18.5");
    assert.equal(one.status, 200, "a name in exactly one registry needs no ns");
    await one.body?.cancel();
    const wrongNs = await f.handle("/v2/cilium/cilium/manifests/v1.18.5?ns=docker.io");
    assert.equal(wrongNs.status, 404);
    assert.equal(await errorCode(wrongNs), "NAME_UNKNOWN");
    const unknown = await f.handle("/v2/library/nginx/manifests/1");
    assert.equal(await errorCode(unknown), "NAME_UNKNOWN");
    const invalid = await f.handle("/v2/Bad..Name/manifests/1");
    assert.equal(invalid.status, 400);
    assert.equal(await errorCode(invalid), "NAME_INVALID");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: never a push: other methods are 405 UNSUPPORTED", async () => {
  const f = await fixture();
  try {
    for (const method of ["PUT", "POST", "PATCH", "DELETE"]) {
      const r = await f.handle("/v2/cilium/cilium/manifests/v1.18.5", { method });
      assert.equal(r.status, 405, method);
      assert.equal(r.headers.get("allow"), "GET, HEAD");
      assert.equal(await errorCode(r), "UNSUPPORTED");
    }
    const uploads = await f.handle("/v2/cilium/cilium/blobs/uploads/", { method: "POST" });
    assert.equal(uploads.status, 405);
    await uploads.body?.cancel();
    assert.equal(f.registry.registries().join(","), "mirror.example,quay.io,registry.k8s.io");
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: image references split as Docker and containerd do", () => {
  assert.deepEqual(parseImageReference("nginx"), {
    registry: "docker.io",
    repository: "library/nginx",
    tag: "latest",
  });
  assert.deepEqual(parseImageReference("quay.io/cilium/cilium:v1.18.5"), {
    registry: "quay.io",
    repository: "cilium/cilium",
    tag: "v1.18.5",
  });
  assert.deepEqual(parseImageReference("127.0.0.1:5000/box:1"), {
    registry: "127.0.0.1:5000",
    repository: "box",
    tag: "1",
  });
  assert.deepEqual(parseImageReference("localhost/a/b"), {
    registry: "localhost",
    repository: "a/b",
    tag: "latest",
  });
  const digest = `sha256:${"a".repeat(64)}`;
  assert.deepEqual(parseImageReference(`bitnami/redis:7@${digest}`), {
    registry: "docker.io",
    repository: "bitnami/redis",
    tag: "7",
    digest,
  });
  assert.throws(() => parseImageReference("Upper/Case"), /Invalid image reference/);
  assert.throws(() => parseImageReference("a@sha256:short"), /Invalid image reference/);
});

Deno.test("registry: Range and --listen parsing", () => {
  assert.deepEqual(parseRange("bytes=0-9", 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange("bytes=90-200", 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange("bytes=-10", 100), { start: 90, end: 99 });
  assert.equal(parseRange("bytes=100-", 100), "invalid");
  assert.equal(parseRange("bytes=5-4", 100), "invalid");
  assert.equal(parseRange("bytes=0-1,5-6", 100), undefined);
  assert.equal(parseRange(null, 100), undefined);
  assert.deepEqual(parseListen("127.0.0.1:5380"), { hostname: "127.0.0.1", port: 5380 });
  assert.deepEqual(parseListen("[::1]:80"), { hostname: "::1", port: 80 });
  assert.deepEqual(parseListen(":5000"), { hostname: "0.0.0.0", port: 5000 });
  assert.equal(parseListen("host"), undefined);
  assert.equal(parseListen("h:99999"), undefined);
});

Deno.test("registry: the server streams over HTTP and a shutdown cuts a stalled client in time", async () => {
  const f = await fixture();
  const big = new Uint8Array(64 << 20);
  const bigHex = hex(big);
  await Deno.writeFile(join(f.dir, bigHex), big);
  const registry = await RegistryIndex.build(
    [{ name: "big", ref: "dtk.test/big:1", hash: f.lone.digest }],
    () =>
      Promise.resolve([f.lone, {
        digest: `sha256:${bigHex}`,
        mediaType: "application/octet-stream",
        size: big.length,
        role: "layer",
      }]),
  );
  const server = startRegistry(registry, {
    hostname: "127.0.0.1",
    port: 0,
    objectPath: (h) => join(f.dir, h),
  });
  try {
    const base = `http://${server.address}`;
    const r = await fetch(`${base}/v2/big/blobs/sha256:${bigHex}`);
    assert.equal(r.headers.get("content-length"), String(big.length));
    assert.equal((await r.arrayBuffer()).byteLength, big.length);
    assert.throws(
      () =>
        startRegistry(registry, { hostname: "127.0.0.1", port: server.port, objectPath: (h) => h }),
      /the port is in use/,
    );
    // A client that reads one chunk and then stalls.
    const stalled = await fetch(`${base}/v2/big/blobs/sha256:${bigHex}`);
    const reader = stalled.body!.getReader();
    await reader.read();
    const started = performance.now();
    assert.deepEqual(await server.shutdown(300), { graceful: false });
    assert.ok(performance.now() - started < 1500, "shutdown is bounded");
    await reader.cancel().catch(() => {});
    await server.finished;
  } finally {
    await server.shutdown();
    await Deno.remove(f.dir, { recursive: true });
  }
});

/**
 * Runs `fn` with `Deno.lstat` counting its calls on paths under `dir`; `onLstat` may change the
 * file after the lstat saw it (as someone racing dtk would).
 */
async function countingLstat<T>(
  dir: string,
  fn: () => Promise<T>,
  onLstat?: (path: string) => Promise<void>,
): Promise<{ result: T; calls: string[] }> {
  const real = Deno.lstat;
  const calls: string[] = [];
  Deno.lstat = async (path: string | URL) => {
    const info = await real(path);
    if (String(path).startsWith(dir)) {
      calls.push(String(path));
      await onLstat?.(String(path));
    }
    return info;
  };
  try {
    return { result: await fn(), calls };
  } finally {
    Deno.lstat = real;
  }
}

Deno.test("registry: a Range read and the OCI archive lstat each blob once", async () => {
  const f = await fixture();
  try {
    const part = await countingLstat(f.dir, async () => {
      const r = await f.handle(`/v2/cilium/cilium/blobs/${f.layer.digest}`, {
        headers: { Range: "bytes=10-19" },
      });
      assert.equal(r.status, 206);
      return (await r.arrayBuffer()).byteLength;
    });
    assert.equal(part.result, 10);
    assert.deepEqual(part.calls, [join(f.dir, f.layer.digest.slice(7))]);
    const images = f.registry.repository("cilium/cilium", undefined);
    assert.ok(Array.isArray(images));
    const tar = await countingLstat(f.dir, async () => {
      const stream = ociArchive(images, { objectPath: (h) => join(f.dir, h) });
      return (await new Response(stream).arrayBuffer()).byteLength;
    });
    assert.ok(tar.result > 3000);
    const blobs = [f.index, f.manifest, f.config, f.layer].map((b) =>
      join(f.dir, b.digest.slice(7))
    );
    assert.deepEqual(tar.calls.sort(), blobs.sort());
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("registry: a blob swapped for a link after its lstat is refused, whole, by Range, in the archive", async () => {
  const f = await fixture();
  try {
    const path = join(f.dir, f.layer.digest.slice(7));
    const bytes = await Deno.readFile(path);
    const outside = join(f.dir, "outside");
    await Deno.writeFile(outside, bytes);
    const swap = async (p: string) => {
      if (p !== path) return;
      await Deno.remove(path);
      await Deno.symlink(outside, path);
    };
    const restore = async () => {
      await Deno.remove(path);
      await Deno.writeFile(path, bytes);
    };
    const url = `http://dtk.test/v2/cilium/cilium/blobs/${f.layer.digest}`;
    // The whole blob takes the native file path, which needs the request's completion promise.
    const whole = () =>
      handleRegistryRequest(new Request(url), f.registry, {
        objectPath: (h) => join(f.dir, h),
        completed: new Promise(() => {}),
      });
    await countingLstat(
      f.dir,
      () => assert.rejects(whole, /was replaced while being opened/),
      swap,
    );
    await restore();
    await countingLstat(f.dir, async () => {
      const r = await f.handle(`/v2/cilium/cilium/blobs/${f.layer.digest}`, {
        headers: { Range: "bytes=0-9" },
      });
      await assert.rejects(() => r.arrayBuffer(), /was replaced while being opened/);
    }, swap);
    await restore();
    const images = f.registry.repository("cilium/cilium", undefined);
    assert.ok(Array.isArray(images));
    await countingLstat(f.dir, async () => {
      const stream = ociArchive(images, { objectPath: (h) => join(f.dir, h) });
      await assert.rejects(() => new Response(stream).arrayBuffer(), /was replaced/);
    }, swap);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});
