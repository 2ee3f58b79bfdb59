// dtk's registry and OCI archive over a store seeded with real test images, read by real
// skopeo (Debian's): digests equal end to end.
import assert from "node:assert/strict";
import { join } from "node:path";
import { lockIndex, ociArchive, serveLock } from "../../lib/registry/mod.ts";
import { type Lockfile, openStore } from "../../store/mod.ts";
import { imageArtifacts, type SeededImage, seedStore, testLayout } from "./_images.ts";
import { skopeo } from "../store/_upstream.ts";

async function withSeededStore(
  fn: (f: { dir: string; storeDir: string; images: SeededImage[]; lock: Lockfile }) => Promise<
    void
  >,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-registry-serve-" });
  try {
    const storeDir = join(dir, "store");
    const images = await seedStore(storeDir, await testLayout(dir));
    const lock = { version: 1, artifacts: imageArtifacts(images) } as unknown as Lockfile;
    await fn({ dir, storeDir, images, lock });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("registry serve: skopeo inspects and copies every locked image, digests equal", async () => {
  await withSeededStore(async ({ dir, storeDir, images, lock }) => {
    const { server } = await serveLock(lock, {
      store: openStore(storeDir),
      hostname: "127.0.0.1",
      port: 0,
    });
    try {
      assert.equal(images.length, 2);
      for (const image of images) {
        const path = image.ref.slice(image.ref.indexOf("/") + 1);
        const registryOf = image.ref.slice(0, image.ref.indexOf("/"));
        // By tag, picking the registry with containerd's ?ns= is not something skopeo speaks:
        // each repository here is in one registry of the lock, so the bare name serves it.
        const inspect = await skopeo([
          "inspect",
          "--tls-verify=false",
          "--raw",
          `docker://${server.address}/${path}`,
        ]);
        assert.equal(inspect.code, 0, inspect.stderr);
        const manifest = JSON.parse(inspect.stdout);
        assert.equal(manifest.mediaType, image.mediaType);
        const info = await skopeo([
          "inspect",
          "--tls-verify=false",
          `docker://${server.address}/${path}`,
        ]);
        assert.equal(info.code, 0, info.stderr);
        assert.equal(JSON.parse(info.stdout).Digest, image.hash, registryOf);
        const target = join(dir, `copy-${image.name}`);
        const copy = await skopeo([
          "copy",
          "--preserve-digests",
          "--src-tls-verify=false",
          `docker://${server.address}/${path.split(":")[0]}@${image.hash}`,
          `oci:${target}:x`,
        ]);
        assert.equal(copy.code, 0, copy.stderr);
        const index = JSON.parse(await Deno.readTextFile(join(target, "index.json")));
        assert.equal(index.manifests[0].digest, image.hash);
      }
      // A tag that is not the lock's is not served.
      const other = await skopeo([
        "inspect",
        "--tls-verify=false",
        `docker://${server.address}/pause:3.9`,
      ]);
      assert.notEqual(other.code, 0);
      assert.match(other.stderr, /manifest unknown|not in the lock/i);
    } finally {
      await server.shutdown(1000);
    }
  });
});

Deno.test("registry serve: a lock without images, and blobs missing from the store, are refused", async () => {
  await withSeededStore(async ({ storeDir, images, lock }) => {
    const store = openStore(storeDir);
    await assert.rejects(
      lockIndex({ version: 1, artifacts: {} }, { store, lockPath: "/x/dtk.lock" }),
      (e: Error & { hint?: string }) =>
        /"\/x\/dtk\.lock" names no container images/.test(e.message) &&
        /dtk lock/.test(e.hint ?? ""),
    );
    // The shared layer goes: both images lack it.
    const manifest = JSON.parse(
      await Deno.readTextFile(store.objectPath(images[0]!.hash.slice(7))),
    );
    const layer = (manifest.layers[0].digest as string).slice(7);
    await Deno.remove(store.objectPath(layer));
    await assert.rejects(
      lockIndex(lock, { store }),
      (e: Error & { hint?: string }) =>
        /is missing|are missing/.test(e.message) && e.message.includes(layer) &&
        /dtk fetch/.test(e.hint ?? ""),
    );
  });
});

Deno.test("registry archive: the OCI archive streamed from the store is read by skopeo", async () => {
  await withSeededStore(async ({ dir, storeDir, images, lock }) => {
    const store = openStore(storeDir);
    const index = await lockIndex(lock, { store });
    const path = join(dir, "images.oci.tar");
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    await ociArchive(index.images, { objectPath: (h) => store.objectPath(h) }).pipeTo(
      file.writable,
    );
    const list = await new Deno.Command("tar", { args: ["-tf", path], stdout: "piped" }).output();
    const names = new TextDecoder().decode(list.stdout).trim().split("\n");
    assert.deepEqual(names.slice(0, 2), ["oci-layout", "index.json"]);
    // pause and box share their layer: 2 manifests + 2 configs + 1 layer, each once.
    assert.equal(names.filter((n) => n.startsWith("blobs/sha256/")).length, 5);
    for (const image of images) {
      const tag = image.ref.split(":").pop();
      const r = await skopeo(["inspect", `oci-archive:${path}:${tag}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).Digest, image.hash);
      const copy = await skopeo([
        "copy",
        "--preserve-digests",
        `oci-archive:${path}:${tag}`,
        `oci:${join(dir, `from-archive-${tag}`)}:x`,
      ]);
      assert.equal(copy.code, 0, copy.stderr);
    }
  });
});
