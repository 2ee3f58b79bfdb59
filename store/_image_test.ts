import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DtkError } from "../lib/errors/mod.ts";
import {
  imageClosure,
  OCI_INDEX,
  OCI_MANIFEST,
  parseImageJson,
  pickPlatform,
  putImageObject,
  registryBase,
  RegistryClient,
  walkImage,
} from "./_image.ts";
import { ObjectStore } from "./_objects.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const hexOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const desc = (mediaType: string, b: Uint8Array, extra: Record<string, unknown> = {}) => ({
  mediaType,
  digest: `sha256:${hexOf(b)}`,
  size: b.length,
  ...extra,
});

/** A store holding an index whose amd64 manifest, config and two layers are present. */
async function fixture() {
  const store = new ObjectStore(await Deno.makeTempDir({ prefix: "dtk-image-test-" }));
  const layers = [new Uint8Array(5000).fill(1), new Uint8Array(7000).fill(2)];
  const config = enc({ architecture: "amd64", os: "linux" });
  const manifest = enc({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: desc("application/vnd.oci.image.config.v1+json", config),
    layers: layers.map((l) => desc("application/vnd.oci.image.layer.v1.tar+gzip", l)),
  });
  const armManifest = enc({ schemaVersion: 2, mediaType: OCI_MANIFEST, other: true });
  const index = enc({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      desc(OCI_MANIFEST, armManifest, { platform: { os: "linux", architecture: "arm64" } }),
      desc(OCI_MANIFEST, manifest, { platform: { os: "linux", architecture: "amd64" } }),
    ],
  });
  const put = (b: Uint8Array, mediaType: string) =>
    putImageObject(store, b, { hex: hexOf(b), name: "x", mediaType });
  await put(index, OCI_INDEX);
  await put(manifest, OCI_MANIFEST);
  for (const b of [config, ...layers]) await put(b, "blob");
  const entry = {
    name: "registry.k8s.io+pause@3.10",
    ref: "registry.k8s.io/pause:3.10",
    hash: `sha256:${hexOf(index)}`,
    manifest: `sha256:${hexOf(manifest)}`,
  };
  return { store, entry, index, manifest, config, layers };
}

Deno.test("imageClosure: index, the arch manifest, config and layers with media types", async () => {
  const f = await fixture();
  try {
    const blobs = await imageClosure(f.store, f.entry);
    assert.deepEqual(blobs.map((b) => b.role), ["index", "manifest", "config", "layer", "layer"]);
    assert.equal(blobs[0]!.digest, f.entry.hash);
    assert.equal(blobs[0]!.mediaType, OCI_INDEX);
    assert.equal(blobs[1]!.digest, f.entry.manifest);
    assert.equal(blobs[1]!.size, f.manifest.length);
    assert.equal(blobs[3]!.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
    assert.equal(blobs[4]!.size, 7000);
    // A lone manifest is its own top.
    const lone = await imageClosure(f.store, { ...f.entry, hash: f.entry.manifest });
    assert.deepEqual(lone.map((b) => b.role), ["manifest", "config", "layer", "layer"]);
  } finally {
    await Deno.remove(f.store.dir, { recursive: true });
  }
});

Deno.test("imageClosure: a missing layer or manifest is an error naming it; walkImage skips it", async () => {
  const f = await fixture();
  try {
    await f.store.remove(hexOf(f.layers[1]!));
    await assert.rejects(
      () => imageClosure(f.store, f.entry),
      (e: Error) =>
        e instanceof DtkError && e.message.includes(`layer sha256:${hexOf(f.layers[1]!)}`) &&
        e.message.includes("registry.k8s.io/pause:3.10"),
    );
    const partial = await walkImage(f.store, f.entry, { partial: true });
    assert.equal(partial.length, 4);
    await f.store.remove(hexOf(f.manifest));
    await assert.rejects(() => imageClosure(f.store, f.entry), /manifest sha256:/);
    assert.equal((await walkImage(f.store, f.entry, { partial: true })).length, 1);
    await f.store.remove(hexOf(f.index));
    await assert.rejects(() => imageClosure(f.store, f.entry), /is not complete in the store/);
    assert.deepEqual(await walkImage(f.store, f.entry, { partial: true }), []);
  } finally {
    await Deno.remove(f.store.dir, { recursive: true });
  }
});

Deno.test("parseImageJson: refuses wrong media types, charts, schema 1, junk", () => {
  const cfg = desc("application/vnd.oci.image.config.v1+json", enc({}));
  const layer = desc("application/vnd.oci.image.layer.v1.tar", enc("l"));
  const ok = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: cfg, layers: [layer] };
  assert.equal(parseImageJson(enc(ok), "x").kind, "manifest");
  assert.throws(() => parseImageJson(enc(ok), "x", OCI_INDEX), /served as .* body says/);
  assert.equal(parseImageJson(enc(ok), "x", "application/json; charset=utf-8").kind, "manifest");
  assert.throws(
    () => parseImageJson(enc({ ...ok, mediaType: undefined }), "x", "text/html"),
    /wrong media type "text\/html"/,
  );
  assert.throws(
    () => parseImageJson(enc({ ...ok, mediaType: "text/html" }), "x"),
    /wrong media type/,
  );
  assert.throws(
    () =>
      parseImageJson(
        enc({ ...ok, config: { ...cfg, mediaType: "application/vnd.cncf.helm.config.v1+json" } }),
        "x",
      ),
    /not a container image's/,
  );
  assert.throws(() => parseImageJson(enc({ ...ok, schemaVersion: 1 }), "x"), /schemaVersion/);
  assert.throws(() => parseImageJson(new TextEncoder().encode("<html>"), "x"), /not JSON/);
  assert.throws(
    () => parseImageJson(enc({ ...ok, layers: [{ ...layer, digest: "md5:x" }] }), "x"),
    /no sha256 digest/,
  );
});

Deno.test("pickPlatform: linux/arch, arm64 prefers no variant or v8; absent arch is undefined", () => {
  const m = (architecture: string, variant?: string) => ({
    mediaType: OCI_MANIFEST,
    digest: `sha256:${"a".repeat(64)}`,
    hex: "a".repeat(64),
    size: 1,
    platform: { os: "linux", architecture, ...(variant ? { variant } : {}) },
  });
  const index = {
    kind: "index" as const,
    mediaType: OCI_INDEX,
    manifests: [m("arm", "v7"), m("arm64", "v8"), m("amd64")],
  };
  assert.equal(pickPlatform(index, "arm64")?.platform?.variant, "v8");
  assert.equal(pickPlatform(index, "amd64")?.platform?.architecture, "amd64");
  assert.equal(pickPlatform(index, "s390x"), undefined);
});

Deno.test("registryBase: docker.io is registry-1.docker.io; loopback registries speak plain HTTP", () => {
  assert.equal(registryBase("docker.io"), "https://registry-1.docker.io");
  assert.equal(registryBase("quay.io"), "https://quay.io");
  assert.equal(registryBase("registry.k8s.io"), "https://registry.k8s.io");
  assert.equal(registryBase("localhost:5000"), "http://localhost:5000");
  assert.equal(registryBase("localhost"), "http://localhost");
  assert.equal(registryBase("127.0.0.1:5000"), "http://127.0.0.1:5000");
  assert.equal(registryBase("127.8.9.10"), "http://127.8.9.10");
  assert.equal(registryBase("[::1]:5000"), "http://[::1]:5000");
  assert.equal(registryBase("128.0.0.1:5000"), "https://128.0.0.1:5000");
  assert.equal(registryBase("localhost.example:5000"), "https://localhost.example:5000");
  // One-segment Docker Hub names live under library/.
  const client = new RegistryClient("nginx:1.27");
  assert.equal(client.base, "https://registry-1.docker.io");
  assert.equal(
    client.blobUrl("a".repeat(64)),
    `https://registry-1.docker.io/v2/library/nginx/blobs/sha256:${"a".repeat(64)}`,
  );
});
