/**
 * What `dtk registry` may serve: the images of one lock, each with the closure of its blobs as
 * the store holds them. Everything else (other blobs of the store, other tags) does not exist
 * for the server.
 *
 * @module
 */
import { type ImageReference, parseImageReference } from "./_reference.ts";

/** One blob of a locked image (index, manifest, config or layer). */
export interface ClosureBlob {
  /** `sha256:<hex>`. */
  digest: string;
  mediaType: string;
  size: number;
  role: "index" | "manifest" | "config" | "layer";
}

/** A locked image with its blobs, keyed by hex. */
export interface IndexedImage {
  /** The lock's artifact name. */
  name: string;
  ref: ImageReference;
  /** Hex of the digest the ref resolves to (index or lone manifest). */
  hex: string;
  blobs: ReadonlyMap<string, ClosureBlob>;
}

/** Why a repository name does not pick images. */
export interface NameProblem {
  problem: "unknown" | "ambiguous";
  message: string;
}

/** Hex digits of `sha256:<hex>`, or undefined. */
export function digestHex(digest: string): string | undefined {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  return m?.[1];
}

/** The locked images by repository, and the lookups the HTTP layer needs. */
export class RegistryIndex {
  readonly images: readonly IndexedImage[];
  #byRepository = new Map<string, IndexedImage[]>();

  constructor(images: readonly IndexedImage[]) {
    this.images = images;
    for (const image of images) {
      const list = this.#byRepository.get(image.ref.repository) ?? [];
      list.push(image);
      this.#byRepository.set(image.ref.repository, list);
    }
  }

  /** Builds the index from lock entries (`ref`, `hash`) and a closure reader. */
  static async build(
    entries: readonly { name: string; ref: string; hash: string }[],
    closure: (entry: { name: string; ref: string; hash: string }) => Promise<ClosureBlob[]>,
  ): Promise<RegistryIndex> {
    const images: IndexedImage[] = [];
    for (const entry of entries) {
      const blobs = new Map<string, ClosureBlob>();
      for (const blob of await closure(entry)) {
        const hex = digestHex(blob.digest);
        if (hex !== undefined) blobs.set(hex, blob);
      }
      images.push({
        name: entry.name,
        ref: parseImageReference(entry.ref),
        hex: digestHex(entry.hash) ?? entry.hash.replace(/^sha256:/, ""),
        blobs,
      });
    }
    return new RegistryIndex(images);
  }

  /** The upstream registries of the lock's images, sorted. */
  registries(): string[] {
    return [...new Set(this.images.map((i) => i.ref.registry))].sort();
  }

  /**
   * The images of repository `name` in registry `ns`; without `ns`, of the one registry that
   * holds `name` (two registries holding it is ambiguous).
   */
  repository(name: string, ns: string | undefined): IndexedImage[] | NameProblem {
    const all = this.#byRepository.get(name) ?? [];
    if (ns !== undefined) {
      const wanted = ns === "index.docker.io" || ns === "registry-1.docker.io" ? "docker.io" : ns;
      const found = all.filter((i) => i.ref.registry === wanted);
      if (found.length > 0) return found;
      return { problem: "unknown", message: `repository ${name} of ${ns} is not in the lock` };
    }
    const registries = [...new Set(all.map((i) => i.ref.registry))].sort();
    if (registries.length === 0) {
      return { problem: "unknown", message: `repository ${name} is not in the lock` };
    }
    if (registries.length > 1) {
      return {
        problem: "ambiguous",
        message: `repository ${name} is in ${registries.length} registries of the lock (${
          registries.join(", ")
        }): pick one with ?ns=<registry>`,
      };
    }
    return all;
  }
}

/** The manifest `reference` (tag or digest) names in `images`, or undefined. */
export function findManifest(
  images: readonly IndexedImage[],
  reference: string,
): ClosureBlob | undefined {
  const hex = digestHex(reference);
  for (const image of images) {
    const top = image.ref.tag === reference ? image.hex : hex;
    if (top === undefined) continue;
    const blob = image.blobs.get(top);
    if (blob !== undefined && (blob.role === "index" || blob.role === "manifest")) return blob;
  }
  return undefined;
}

/** The blob `digest` of `images`, or undefined. */
export function findBlob(
  images: readonly IndexedImage[],
  digest: string,
): ClosureBlob | undefined {
  const hex = digestHex(digest);
  if (hex === undefined) return undefined;
  for (const image of images) {
    const blob = image.blobs.get(hex);
    if (blob !== undefined) return blob;
  }
  return undefined;
}
