/**
 * The registry of one lock, served from the store: what `dtk registry` and `cluster create`
 * start. Refuses up front (before listening) when the lock names no image or the store lacks
 * a blob, so that a node never meets a 404 for something the lock promised.
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";
import { imageClosure, type Lockfile, type ObjectStore } from "../../store/mod.ts";
import { RegistryIndex } from "./_index.ts";
import { lockedImages, type RegistryServer, startRegistry } from "./mod.ts";

export interface ServeLockOptions {
  store: ObjectStore;
  hostname: string;
  port: number;
  /** The lock's path, for messages. */
  lockPath?: string;
  onError?: (error: unknown) => void;
}

/** The index of the lock's images, every blob checked present in the store. */
export async function lockIndex(
  lock: Lockfile,
  options: { store: ObjectStore; lockPath?: string },
): Promise<RegistryIndex> {
  const images = lockedImages(lock);
  const where = options.lockPath === undefined ? "The lock" : `The lock ${q(options.lockPath)}`;
  if (images.length === 0) {
    throw new DtkError(`${where} names no container images`, {
      hint: "Lock the config's images with: dtk lock (then dtk fetch to store them)",
    });
  }
  const index = await RegistryIndex.build(images, (e) => {
    const image = images.find((i) => i.name === e.name)!;
    return imageClosure(options.store, { ...e, manifest: image.manifest });
  });
  const missing: string[] = [];
  for (const image of index.images) {
    for (const [hex, blob] of image.blobs) {
      const state = await options.store.check(hex, blob.role === "layer" ? blob.size : undefined);
      if (state !== "present") missing.push(`${blob.role} ${blob.digest} of ${q(image.name)}`);
    }
  }
  if (missing.length > 0) {
    throw new DtkError(
      `${missing.length} blob(s) of the lock's images are missing or damaged in the store ${
        q(options.store.dir)
      }: ${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", …" : ""}`,
      { hint: "Fetch them with: dtk fetch (dtk store verify --repair for damaged ones)" },
    );
  }
  return index;
}

/** Starts serving the lock's images from the store. */
export async function serveLock(
  lock: Lockfile,
  options: ServeLockOptions,
): Promise<{ server: RegistryServer; index: RegistryIndex }> {
  const index = await lockIndex(lock, options);
  const server = startRegistry(index, {
    hostname: options.hostname,
    port: options.port,
    objectPath: (hex) => options.store.objectPath(hex),
    onError: options.onError,
  });
  return { server, index };
}
