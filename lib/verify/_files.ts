/**
 * `dtk verify files`: every artifact of the lock is in the store and its bytes still hash to
 * what the lock pins (a full rehash, as `dtk store verify`).
 *
 * @module
 */
import { artifactHex, type Lockfile, type ObjectStore, verifyObjects } from "../../store/mod.ts";

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

/** Rehashes every object the lock names (each shared object once). */
export async function verifyFiles(
  lock: Lockfile,
  options: { store: ObjectStore; onBytes?: (n: number) => void },
): Promise<FilesReport> {
  const started = performance.now();
  const names = Object.keys(lock.artifacts).sort();
  const hexes = [...new Set(names.map((n) => artifactHex(lock.artifacts[n]!)))];
  const byHex = new Map(
    (await verifyObjects(options.store, hexes, { onBytes: options.onBytes })).map((
      e,
    ) => [e.hex, e]),
  );
  const results = names.map((artifact): FileResult => {
    const expected = artifactHex(lock.artifacts[artifact]!);
    const entry = byHex.get(expected);
    const status = entry?.status === "ok"
      ? "ok"
      : entry?.status === "corrupt"
      ? "corrupt"
      : "missing";
    return {
      artifact,
      expected,
      status,
      path: options.store.objectPath(expected),
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
