/**
 * `dtk verify files`: every artifact of the lock is in the store and its bytes still hash to
 * what the lock pins (a full rehash, as `dtk store verify`).
 *
 * @module
 */
import {
  artifactHex,
  imageClosure,
  isImageArtifact,
  type Lockfile,
  type ObjectStore,
  verifyObjects,
  walkImage,
} from "../../store/mod.ts";

export interface FileResult {
  artifact: string;
  /** sha256 hex the lock pins. */
  expected: string;
  /** `corrupt`: the object's bytes, size or read-only mode are wrong. */
  status: "ok" | "missing" | "corrupt";
  path: string;
  /** sha256 hex of the bytes found, when corrupt. */
  actual?: string;
  size?: number;
}

export interface FilesReport {
  results: FileResult[];
  problems: number;
  elapsedMs: number;
}

/**
 * Rehashes every object the lock names (each shared object once); an image's are all the blobs
 * of its closure, and one missing or corrupt blob makes the image so.
 */
export async function verifyFiles(
  lock: Lockfile,
  options: { store: ObjectStore; onBytes?: (n: number) => void },
): Promise<FilesReport> {
  const started = performance.now();
  const names = Object.keys(lock.artifacts).sort();
  const blobsOf = new Map<string, { hexes: string[]; complete: boolean }>();
  for (const name of names) {
    const artifact = lock.artifacts[name]!;
    const top = artifactHex(artifact);
    if (!isImageArtifact(artifact)) {
      blobsOf.set(name, { hexes: [top], complete: true });
      continue;
    }
    const entry = { name, ref: artifact.ref, hash: artifact.hash, manifest: artifact.manifest };
    // One walk when the image is whole; only an incomplete one is walked again for what is there.
    const { present, complete } = await imageClosure(options.store, entry).then(
      (blobs) => ({ present: blobs, complete: true }),
      async () => ({
        present: await walkImage(options.store, entry, { partial: true }).catch(() => []),
        complete: false,
      }),
    );
    const hexes = [top, ...present.map((b) => b.digest.slice(7)).filter((h) => h !== top)];
    blobsOf.set(name, { hexes, complete });
  }
  const hexes = [...new Set([...blobsOf.values()].flatMap((b) => b.hexes))];
  const byHex = new Map(
    (await verifyObjects(options.store, hexes, { onBytes: options.onBytes })).map((
      e,
    ) => [e.hex, e]),
  );
  const results = names.map((artifact): FileResult => {
    const expected = artifactHex(lock.artifacts[artifact]!);
    const { hexes: own, complete } = blobsOf.get(artifact)!;
    const entries = own.map((h) => byHex.get(h));
    const bad = entries.find((e) => e?.status === "corrupt");
    const status = bad !== undefined
      ? "corrupt"
      : complete && entries.every((e) => e?.status === "ok")
      ? "ok"
      : "missing";
    const entry = bad ?? byHex.get(expected);
    return {
      artifact,
      expected: bad?.hex ?? expected,
      status,
      path: options.store.objectPath(bad?.hex ?? expected),
      ...(entry?.actual && status === "corrupt" ? { actual: entry.actual } : {}),
      ...(entry?.size !== undefined ? { size: entry.size } : {}),
    };
  });
  return {
    results,
    problems: results.filter((r) => r.status !== "ok").length,
    elapsedMs: performance.now() - started,
  };
}
