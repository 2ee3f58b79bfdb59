/**
 * An OCI image layout as one tar stream (an "OCI archive"), read straight from the store's
 * files: for nodes that have no route to the host's registry, it goes over ssh into
 * `ctr images import`. Nothing is staged on disk or held in memory beyond one read buffer.
 *
 * @module
 */
import { tarHeader } from "../remote/mod.ts";
import type { IndexedImage } from "./_index.ts";
import { fileStream } from "./_http.ts";

const encoder = new TextEncoder();

/** The name containerd gives an image: Docker's normal form, `docker.io/library/…` included. */
export function normalName(image: Pick<IndexedImage, "ref">): string {
  return `${image.ref.registry}/${image.ref.repository}`;
}

/**
 * `index.json` of the layout: per image its top descriptor twice, named by tag and by digest,
 * so that both the tag and the digest reference resolve on the node after the import.
 */
export function layoutIndex(images: readonly IndexedImage[]): Uint8Array {
  const manifests = [];
  for (const image of images) {
    const top = image.blobs.get(image.hex);
    if (top === undefined) throw new Error(`image ${image.name} has no top manifest blob`);
    const descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.size };
    // The tag name carries the layout's `ref.name` (what skopeo and umoci look up); the digest
    // name only containerd's, so that a tag names one entry.
    if (image.ref.tag !== undefined) {
      manifests.push({
        ...descriptor,
        annotations: {
          "io.containerd.image.name": `${normalName(image)}:${image.ref.tag}`,
          "org.opencontainers.image.ref.name": image.ref.tag,
        },
      });
    }
    manifests.push({
      ...descriptor,
      annotations: { "io.containerd.image.name": `${normalName(image)}@${top.digest}` },
    });
  }
  return encoder.encode(JSON.stringify({ schemaVersion: 2, manifests }));
}

function padding(size: number): Uint8Array {
  return new Uint8Array((512 - (size % 512)) % 512);
}

/**
 * The tar of an OCI layout holding `images` (each blob once): `oci-layout`, `index.json`, then
 * `blobs/sha256/<hex>` from `objectPath`.
 */
export function ociArchive(
  images: readonly IndexedImage[],
  options: { objectPath: (hex: string) => string; mtime?: number },
): ReadableStream<Uint8Array> {
  const mtime = options.mtime ?? 0;
  const blobs = new Map<string, number>();
  for (const image of images) {
    for (const [hex, blob] of image.blobs) blobs.set(hex, blob.size);
  }
  async function* chunks(): AsyncGenerator<Uint8Array> {
    const small = (name: string, data: Uint8Array) => [
      tarHeader({ name, size: data.length, mode: 0o644 }, mtime),
      data,
      padding(data.length),
    ];
    yield* small("oci-layout", encoder.encode('{"imageLayoutVersion":"1.0.0"}'));
    yield* small("index.json", layoutIndex(images));
    for (const hex of [...blobs.keys()].sort()) {
      const path = options.objectPath(hex);
      // The file's own size, not the descriptor's: a lie in a manifest must not break the tar.
      const info = await Deno.lstat(path);
      if (!info.isFile) throw new Error(`${path} is not a regular file`);
      const size = info.size;
      yield tarHeader({ name: `blobs/sha256/${hex}`, size, mode: 0o444 }, mtime);
      yield* fileStream(path, 0, { length: size, checked: info });
      yield padding(size);
    }
    yield new Uint8Array(1024);
  }
  const it = chunks();
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      for (;;) {
        const { done, value } = await it.next();
        if (done) {
          c.close();
          return;
        }
        if (value.length === 0) continue;
        c.enqueue(value);
        return;
      }
    },
    async cancel() {
      await it.return(undefined);
    },
  });
}
