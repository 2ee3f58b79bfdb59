/**
 * The local files behind a step's binaries: a store object itself, or a member of a tarball
 * from the store, unpacked once into the cluster's cache (keyed by the tarball's hash, so a
 * changed lock never reuses stale members). Every file comes with the sha256 it must have on the
 * node.
 *
 * @module
 */
import { join } from "node:path";
import { DtkError, IntegrityError, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import { exists } from "../fs/mod.ts";
import type { BinaryInstall } from "../render/mod.ts";
import {
  artifactPath,
  hashFile,
  type LockArtifact,
  type Lockfile,
  requireHash,
} from "../../store/mod.ts";

/** One file to copy: local path, destination, mode and the sha256 it has. */
export interface BinaryCopy {
  local: string;
  dest: string;
  mode: number;
  sha256: string;
  artifact: string;
}

export interface BinarySource {
  lock: Lockfile;
  storeDir: string;
  /** Cache of unpacked tarballs: `generated/<cluster>/cache/unpacked`. */
  cacheDir: string;
  runner: Runner;
}

function entryOf(lock: Lockfile, name: string): LockArtifact {
  const entry = lock.artifacts[name];
  if (!entry) {
    throw new DtkError(`Artifact ${q(name)} is not in the lock`, {
      hint: "Run dtk lock, then dtk fetch",
    });
  }
  return entry;
}

const hashCache = new Map<string, Promise<string>>();

function hashOnce(path: string): Promise<string> {
  let p = hashCache.get(path);
  if (!p) {
    p = hashFile(path).then((h) => h.hash);
    hashCache.set(path, p);
  }
  return p;
}

const unpacking = new Map<string, Promise<string>>();

/** Unpacks a tarball of the store once; returns the folder. Concurrent callers share the work. */
export function unpacked(name: string, source: BinarySource): Promise<string> {
  const entry = entryOf(source.lock, name);
  const hex = requireHash(entry.hash, name);
  const dir = join(source.cacheDir, hex);
  let p = unpacking.get(dir);
  if (!p) {
    p = (async () => {
      if (await exists(join(dir, ".complete"))) return dir;
      const tarball = artifactPath(source.storeDir, entry);
      const temp = `${dir}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 6)}`;
      await Deno.mkdir(temp, { recursive: true });
      try {
        await source.runner.run(["tar", "-xf", tarball, "-C", temp, "--no-same-owner"], {
          what: `Unpack ${q(name)}`,
          timeoutMs: 5 * 60_000,
        });
        await Deno.writeTextFile(join(temp, ".complete"), entry.hash);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        await Deno.rename(temp, dir);
      } catch (error) {
        await Deno.remove(temp, { recursive: true }).catch(() => {});
        throw error;
      }
      return dir;
    })();
    unpacking.set(dir, p);
    p.catch(() => unpacking.delete(dir));
  }
  return p;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name !== ".complete") out.push(e.name);
  }
  return out.sort();
}

/** The local files (with hashes) of a step's binaries. */
export async function binaryCopies(
  installs: readonly BinaryInstall[],
  source: BinarySource,
): Promise<BinaryCopy[]> {
  const copies: BinaryCopy[] = [];
  for (const install of installs) {
    const entry = entryOf(source.lock, install.artifact);
    if (install.kind === "file" && install.member === undefined) {
      const local = artifactPath(source.storeDir, entry);
      copies.push({
        local,
        dest: install.dest,
        mode: install.mode,
        sha256: requireHash(entry.hash, install.artifact),
        artifact: install.artifact,
      });
      continue;
    }
    const root = await unpacked(install.artifact, source);
    if (install.kind === "file") {
      const local = join(root, install.member!);
      if (!(await exists(local))) {
        throw new IntegrityError(
          `Artifact ${q(install.artifact)} has no member ${q(install.member)}`,
          { hint: "The lock points at a tarball of another layout; check its URL and version" },
        );
      }
      copies.push({
        local,
        dest: install.dest,
        mode: install.mode,
        sha256: await hashOnce(local),
        artifact: install.artifact,
      });
    } else {
      const dir = join(root, install.dir);
      if (!(await exists(dir))) {
        throw new IntegrityError(
          `Artifact ${q(install.artifact)} has no folder ${q(install.dir)}`,
          { hint: "The lock points at a tarball of another layout; check its URL and version" },
        );
      }
      for (const name of await listFiles(dir)) {
        const local = join(dir, name);
        copies.push({
          local,
          dest: `${install.destDir}/${name}`,
          mode: install.mode,
          sha256: await hashOnce(local),
          artifact: install.artifact,
        });
      }
    }
  }
  return copies;
}
