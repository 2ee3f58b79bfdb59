/**
 * Test images in a store as `dtk fetch` leaves them: every blob of an OCI layout an object
 * under its sha256 (read-only), manifests with their media type in the metadata; and the lock
 * entries (`kind: image`) that name them.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { writeTestImages } from "../harness/images.ts";

export interface SeededImage {
  name: string;
  ref: string;
  /** `sha256:<hex>` of the top manifest. */
  hash: string;
  mediaType: string;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

function hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Lock name of an image, as the lock names it: `<host>+<repo path, / as +>@<tag>`. */
export function lockName(ref: string): string {
  const colon = ref.lastIndexOf(":");
  const [path, tag] = [ref.slice(0, colon), ref.slice(colon + 1)];
  return `${path.replaceAll("/", "+")}@${tag}`;
}

/** Extracts `tests/harness/images.ts`'s archive (pause and box images) into `dir`. */
export async function testLayout(dir: string): Promise<string> {
  const tar = join(dir, "images.tar");
  await writeTestImages(tar);
  const layout = join(dir, "layout");
  await Deno.mkdir(layout, { recursive: true });
  const out = await new Deno.Command("tar", { args: ["-xf", tar, "-C", layout] }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return layout;
}

/**
 * A layout with one image of `layers` random layers of `layerBytes` each (the bench's), the
 * bytes generated here so that nothing is downloaded.
 */
export async function syntheticLayout(
  dir: string,
  options: { ref: string; layers: number; layerBytes: number },
): Promise<string> {
  const layout = join(dir, "layout");
  const blobs = join(layout, "blobs", "sha256");
  await Deno.mkdir(blobs, { recursive: true });
  const put = async (bytes: Uint8Array) => {
    const h = hex(bytes);
    await Deno.writeFile(join(blobs, h), bytes);
    return { digest: `sha256:${h}`, size: bytes.length };
  };
  const layers = [];
  const chunk = new Uint8Array(1 << 16);
  for (let l = 0; l < options.layers; l++) {
    const bytes = new Uint8Array(options.layerBytes);
    for (let at = 0; at < bytes.length; at += chunk.length) {
      crypto.getRandomValues(chunk);
      bytes.set(chunk.subarray(0, Math.min(chunk.length, bytes.length - at)), at);
    }
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...await put(bytes) });
  }
  const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const config = await put(text({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
  }));
  const manifest = await put(text({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers,
  }));
  await Deno.writeTextFile(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: OCI_MANIFEST,
        ...manifest,
        annotations: {
          "io.containerd.image.name": options.ref,
          "org.opencontainers.image.ref.name": options.ref.split(":").pop(),
        },
      }],
    }),
  );
  await Deno.writeTextFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  return layout;
}

/** Puts every blob of the OCI layout `layout` into the store at `storeDir`. */
export async function seedStore(storeDir: string, layout: string): Promise<SeededImage[]> {
  for (const sub of ["objects/sha256", "meta/sha256", "tmp", "locks", "roots"]) {
    await Deno.mkdir(join(storeDir, sub), { recursive: true });
  }
  const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json"))) as {
    manifests: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
  };
  const types = new Map<string, string>();
  for (const m of index.manifests) types.set(m.digest.slice(7), m.mediaType);
  for await (const e of Deno.readDir(join(layout, "blobs", "sha256"))) {
    const from = join(layout, "blobs", "sha256", e.name);
    const to = join(storeDir, "objects", "sha256", e.name);
    await Deno.copyFile(from, to);
    await Deno.chmod(to, 0o444);
    const size = (await Deno.stat(to)).size;
    const meta: Record<string, unknown> = {
      hash: `sha256:${e.name}`,
      size,
      names: [],
      versions: [],
      urls: [],
      fetchedAt: new Date(0).toISOString(),
    };
    const mediaType = types.get(e.name);
    if (mediaType !== undefined) meta.mediaType = mediaType;
    await Deno.writeTextFile(
      join(storeDir, "meta", "sha256", `${e.name}.json`),
      JSON.stringify(meta, null, 2) + "\n",
    );
  }
  return index.manifests.map((m) => {
    const ref = m.annotations?.["io.containerd.image.name"] ?? "";
    return { name: lockName(ref), ref, hash: m.digest, mediaType: m.mediaType };
  });
}

/** The lock artifacts of `images`, as `dtk lock` writes them. */
export function imageArtifacts(images: readonly SeededImage[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const image of images) {
    out[image.name] = {
      kind: "image",
      ref: image.ref,
      hash: image.hash,
      manifest: image.hash,
      arch: "amd64",
      version: image.ref.split(":").pop(),
      size: null,
      source: "registry",
      urls: [],
    };
  }
  return out;
}

/**
 * Adds `dtk.test/multi:1` to the layout: an OCI index whose linux/amd64 manifest is the box
 * image's and whose linux/arm64 manifest is absent, as a multi-arch image is after `dtk fetch`
 * took only the cluster's arch. Returns its lock entry (hash: the index, manifest: amd64's).
 */
export async function addMultiArchIndex(
  layout: string,
): Promise<{ name: string; ref: string; hash: string; manifest: string }> {
  const indexPath = join(layout, "index.json");
  const index = JSON.parse(await Deno.readTextFile(indexPath)) as {
    manifests: {
      mediaType: string;
      digest: string;
      size: number;
      annotations?: Record<string, string>;
    }[];
  };
  const box = index.manifests.find((m) =>
    m.annotations?.["io.containerd.image.name"] === "dtk.test/box:1"
  )!;
  const absent = `sha256:${hex(new TextEncoder().encode("an arm64 manifest nobody fetched"))}`;
  const body = new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        mediaType: OCI_MANIFEST,
        digest: box.digest,
        size: box.size,
        platform: { os: "linux", architecture: "amd64" },
      },
      {
        mediaType: OCI_MANIFEST,
        digest: absent,
        size: 500,
        platform: { os: "linux", architecture: "arm64" },
      },
    ],
  }));
  const h = hex(body);
  await Deno.writeFile(join(layout, "blobs", "sha256", h), body);
  index.manifests.push({
    mediaType: "application/vnd.oci.image.index.v1+json",
    digest: `sha256:${h}`,
    size: body.length,
    annotations: { "io.containerd.image.name": "dtk.test/multi:1" },
  });
  await Deno.writeTextFile(indexPath, JSON.stringify(index));
  return {
    name: lockName("dtk.test/multi:1"),
    ref: "dtk.test/multi:1",
    hash: `sha256:${h}`,
    manifest: box.digest,
  };
}
