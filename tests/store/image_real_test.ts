/**
 * Images with real components: Debian's `docker-registry` as the upstream, seeded with images the
 * test builds (tests/harness/images.ts) and pushes with `skopeo copy`; `dtk lock` + `dtk fetch`
 * into a store; the upstream stopped; then served by lib/registry over `imageClosure` and read back
 * with `skopeo inspect` and `skopeo copy`, and from `dtk store export --oci` with skopeo's `oci:`
 * transport and containerd's `ctr images import`. Every digest must equal the upstream's.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { lockedImages, RegistryIndex, startRegistry } from "../../lib/registry/mod.ts";
import {
  ensureLock,
  exportLock,
  imageArtifactName,
  imageClosure,
  type Lockfile,
  ObjectStore,
  OCI_INDEX,
  OCI_MANIFEST,
  resolveImages,
} from "../../store/mod.ts";
import { writeTestImages } from "../harness/images.ts";
import { startContainerd } from "../registry/_containerd.ts";
import { missingTools, push, skopeo, startUpstream } from "./_upstream.ts";

const missing = await missingTools(["docker-registry", "skopeo", "tar"]);
if (!(await Deno.stat("/bin/busybox").then(() => true, () => false))) missing.push("busybox");
const skip = missing.length ? ` (skipped: ${missing.join(", ")} not installed)` : "";
const ctrMissing = await missingTools(["containerd", "ctr"]);
if (ctrMissing.length > 0) {
  console.error(`image_real_test: no ctr import check (${ctrMissing.join(", ")} not installed)`);
}

/**
 * `ctr images import` of the export as a tar, into a containerd of the test's own (temp root,
 * state and sockets, no CRI), stopped by its PID: every ref is there with the upstream digest.
 */
async function ctrImport(
  dir: string,
  exported: string,
  refs: readonly string[],
  digests: readonly string[],
): Promise<void> {
  const containerd = await startContainerd(dir);
  try {
    const ctr = async (args: string[]) => {
      const out = await new Deno.Command("ctr", {
        args: ["-a", containerd.socket, "-n", "dtk-test", ...args],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    };
    const tar = join(dir, "export.tar");
    const packed = await new Deno.Command("tar", { args: ["-C", exported, "-cf", tar, "."] })
      .output();
    assert.equal(packed.code, 0);
    const imported = await ctr([
      "images",
      "import",
      "--no-unpack",
      "--platform",
      "linux/amd64",
      tar,
    ]);
    assert.equal(imported.code, 0, imported.stderr);
    const listed = (await ctr(["images", "ls"])).stdout.split("\n").map((l) => l.split(/\s+/));
    for (const [i, ref] of refs.entries()) {
      const row = listed.find((cols) => cols[0] === ref);
      assert.ok(row, `ctr import named ${ref}:\n${listed.map((c) => c.join(" ")).join("\n")}`);
      assert.equal(row[2], digests[i]);
    }
  } finally {
    await containerd.stop();
  }
}

/**
 * Adds `multi` to the layout: an index of the box image (linux/amd64) and an arm64 variant of it
 * (its own config), as a multi-arch image is. Returns the amd64 manifest's digest.
 */
async function addMultiArch(layout: string): Promise<string> {
  const indexPath = join(layout, "index.json");
  const index = JSON.parse(await Deno.readTextFile(indexPath));
  const box = index.manifests.find((m: { annotations?: Record<string, string> }) =>
    m.annotations?.["org.opencontainers.image.ref.name"] === "1"
  );
  const blob = (digest: string) => join(layout, "blobs", "sha256", digest.slice(7));
  const put = async (value: unknown) => {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    const hex = createHash("sha256").update(bytes).digest("hex");
    await Deno.writeFile(join(layout, "blobs", "sha256", hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const manifest = JSON.parse(await Deno.readTextFile(blob(box.digest)));
  const config = JSON.parse(await Deno.readTextFile(blob(manifest.config.digest)));
  const armConfig = await put({ ...config, architecture: "arm64" });
  const armManifest = await put({ ...manifest, config: { ...manifest.config, ...armConfig } });
  const list = await put({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, ...armManifest, platform: { os: "linux", architecture: "arm64" } },
      {
        mediaType: OCI_MANIFEST,
        digest: box.digest,
        size: box.size,
        platform: { os: "linux", architecture: "amd64" },
      },
    ],
  });
  index.manifests.push({
    mediaType: OCI_INDEX,
    ...list,
    annotations: { "org.opencontainers.image.ref.name": "multi" },
  });
  await Deno.writeTextFile(indexPath, JSON.stringify(index));
  return box.digest;
}

async function inspect(target: string, tls = true): Promise<{ Digest: string }> {
  // --no-tags: dtk's registry serves manifests and blobs, not the tag list skopeo would add.
  const flags = [...(tls ? [] : ["--tls-verify=false"]), "--no-tags"];
  const r = await skopeo(["inspect", ...flags, target]);
  assert.equal(r.code, 0, `skopeo inspect ${target}:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

Deno.test({
  name:
    `images: docker-registry → dtk lock + fetch → upstream stopped → dtk's registry and an OCI export serve the same digests to skopeo and ctr import${skip}`,
  ignore: missing.length > 0,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-image-real-" });
    const up = await startUpstream(join(dir, "upstream"));
    try {
      const tar = join(dir, "images.tar");
      await writeTestImages(tar);
      const layout = join(dir, "layout");
      await Deno.mkdir(layout);
      const untar = await new Deno.Command("tar", { args: ["-xf", tar, "-C", layout] }).output();
      assert.equal(untar.code, 0);
      const amd64 = await addMultiArch(layout);
      const refs = [`${up.host}/pause:3.10`, `${up.host}/team/box:1`, `${up.host}/multi:2`];
      await push(layout, "3.10", refs[0]!);
      await push(layout, "1", refs[1]!);
      await push(layout, "multi", refs[2]!, { all: true });
      const upstream = await Promise.all(
        refs.map((r) => inspect(`docker://${r}`, false).then((i) => i.Digest)),
      );

      const resolved = await resolveImages(refs, "amd64", {});
      assert.deepEqual(resolved.failures, []);
      const lock: Lockfile = { version: 1, artifacts: resolved.artifacts };
      for (const [i, ref] of refs.entries()) {
        const entry = lock.artifacts[imageArtifactName(ref)]!;
        assert.equal(entry.hash, upstream[i], `the lock pins what the upstream serves for ${ref}`);
        assert.equal(entry.source, "registry");
        assert.ok((entry.size ?? 0) > 100_000, "manifest + config + the busybox layer");
      }
      // The index's entry is what the lock pins; its amd64 manifest is the one fetched.
      const multi = lock.artifacts[imageArtifactName(refs[2]!)]!;
      assert.equal(multi.manifest, amd64);
      assert.notEqual(multi.hash, amd64);
      const store = new ObjectStore(join(dir, "store"));
      const summary = await ensureLock(lock, { store, jobs: 4 });
      assert.ok(summary.fetched >= 3, `fetched ${summary.fetched}`);

      await up.stop();
      // With the upstream gone, a second fetch finds everything present.
      assert.equal((await ensureLock(lock, { store })).fetched, 0);

      const index = await RegistryIndex.build(lockedImages(lock), (e) => imageClosure(store, e));
      const server = startRegistry(index, {
        hostname: "127.0.0.1",
        port: 0,
        objectPath: (hex) => store.objectPath(hex),
      });
      try {
        const served = await inspect(`docker://${server.address}/pause:3.10`, false);
        assert.equal(served.Digest, upstream[0]);
        const out = join(dir, "copied");
        const copy = await skopeo([
          "copy",
          "--src-tls-verify=false",
          // The test image's layer is uncompressed: without this skopeo would gzip it.
          "--preserve-digests",
          `docker://${server.address}/team/box:1`,
          `oci:${out}:box`,
        ]);
        assert.equal(copy.code, 0, copy.stderr);
        const copied = JSON.parse(await Deno.readTextFile(join(out, "index.json")));
        assert.equal(copied.manifests[0].digest, upstream[1]);
        // From the index: skopeo picks linux/amd64, which is the locked manifest.
        const picked = await skopeo([
          "copy",
          "--src-tls-verify=false",
          "--preserve-digests",
          `docker://${server.address}/multi:2`,
          `oci:${out}:multi`,
        ]);
        assert.equal(picked.code, 0, picked.stderr);
        const both = JSON.parse(await Deno.readTextFile(join(out, "index.json")));
        assert.ok(
          both.manifests.some((m: { digest: string }) => m.digest === amd64),
          JSON.stringify(both),
        );
      } finally {
        await server.shutdown();
      }

      const exported = join(dir, "export");
      await exportLock(store, lock, exported, { oci: true });
      for (const [i, ref] of refs.entries()) {
        assert.equal((await inspect(`oci:${exported}:${ref}`)).Digest, upstream[i]);
      }
      if (ctrMissing.length === 0) {
        await ctrImport(join(dir, "containerd"), exported, refs, upstream);
      }
    } finally {
      await up.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
