/**
 * Store upkeep: verify (full rehash), gc (keep what roots need), add, export and import.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { DtkError, q } from "../lib/errors/mod.ts";
import { exists, writeFileAtomic } from "../lib/fs/mod.ts";
import { addLocalFile, ensureObject } from "./_download.ts";
import type { DownloadOptions } from "./_download.ts";
import { hashFrom } from "./_hash.ts";
import { lstatRegular } from "./_nofollow.ts";
import type { ObjectStore } from "./_objects.ts";
import { imageClosure, registryBlobHeaders, walkImage } from "./_image.ts";
import { pullImageManifests } from "./_image_pull.ts";
import type { ClosureBlob } from "../lib/registry/_index.ts";
import {
  artifactFileName,
  artifactHex,
  type ImageArtifact,
  isImageArtifact,
  readLock,
  writeLock,
} from "./lockfile.ts";
import type { Lockfile } from "./lockfile.ts";

export interface VerifyEntry {
  hex: string;
  names: string[];
  status: "ok" | "corrupt" | "missing" | "repaired";
  actual?: string;
  size?: number;
}

/**
 * Rehashes objects. A corrupt object is removed when `repair` is set, then fetched again from the
 * URLs its metadata records and the mirrors. An object whose bytes hash right is never removed:
 * repair makes it read-only again and corrects its metadata. Links are never followed.
 */
export async function verifyObjects(
  store: ObjectStore,
  hexes: readonly string[],
  options: { repair?: boolean; download?: DownloadOptions; onBytes?: (n: number) => void } = {},
): Promise<VerifyEntry[]> {
  const out: VerifyEntry[] = [];
  for (const hex of hexes) {
    const meta = await store.readMeta(hex);
    const names = meta?.names ?? [];
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(store.objectPath(hex));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        out.push({ hex, names, status: "missing" });
        continue;
      }
      throw error;
    }
    let actual: { hash: string; size: number } | undefined;
    if (info.isFile) {
      const file = await store.openObject(hex);
      try {
        const hash = createHash("sha256");
        const size = await hashFrom(file, hash, { onBytes: options.onBytes });
        actual = { hash: hash.digest("hex"), size };
      } finally {
        file.close();
      }
    }
    const readOnly = ((info.mode ?? 0) & 0o222) === 0;
    const rightBytes = actual?.hash === hex;
    if (rightBytes && readOnly && (meta === undefined || meta.size === actual?.size)) {
      out.push({ hex, names, status: "ok", size: actual?.size });
      continue;
    }
    if (!options.repair) {
      out.push({ hex, names, status: "corrupt", actual: actual?.hash, size: actual?.size });
      continue;
    }
    if (rightBytes && actual !== undefined) {
      await store.withLock(hex, async () => {
        await lstatRegular(store.objectPath(hex)); // chmod follows links: check first
        await Deno.chmod(store.objectPath(hex), 0o444);
        await store.recordMeta(hex, actual.size, {});
      });
      out.push({ hex, names, status: "repaired", actual: actual.hash, size: actual.size });
      continue;
    }
    const urls = meta?.urls ?? [];
    await store.remove(hex);
    // An image blob comes back from its registry, which may want a token for it.
    const headers = urls.map((u) => registryBlobHeaders(u)).find((h) => h !== undefined);
    await ensureObject(store, {
      name: names[0] ?? hex.slice(0, 12),
      hex,
      size: null,
      file: names[0] ?? hex,
      urls,
      ...(meta?.mediaType ? { mediaType: meta.mediaType } : {}),
      ...(headers ? { headers } : {}),
    }, options.download);
    out.push({ hex, names, status: "repaired", actual: actual?.hash });
  }
  return out;
}

export interface GcReport {
  kept: string[];
  removed: { hex: string; names: string[]; size: number }[];
  /** Roots whose file no longer exists (unregistered unless dry-run). */
  staleRoots: string[];
  /** Roots that could not be read, dropped because of `force` (unregistered unless dry-run). */
  droppedRoots: { path: string; reason: string }[];
  /** Abandoned partial downloads removed. */
  partials: number;
  bytes: number;
}

/** A registered root whose lock exists but cannot be read or parsed. */
export interface UnreadableRoot {
  path: string;
  /** The root record under `roots/`. */
  file: string;
  reason: string;
  /** The lock itself reads, one of its images does not: `--force` goes on but keeps the root. */
  keepRoot?: boolean;
}

/**
 * Hashes every live root needs. A root whose lock cannot be read is listed in `unreadable`, never
 * taken as empty: what it needs is unknown, so only the caller may decide to go on without it.
 */
export async function liveHashes(store: ObjectStore): Promise<{
  live: Map<string, string[]>;
  stale: { path: string; file: string }[];
  unreadable: UnreadableRoot[];
}> {
  const live = new Map<string, Set<string>>();
  const stale: { path: string; file: string }[] = [];
  const unreadable: UnreadableRoot[] = [];
  for (
    const { record, file } of await store.roots({
      onTorn: (f, reason) => {
        unreadable.push({ path: f, file: f, reason });
      },
    })
  ) {
    if (record.kind === "cluster") {
      // A cluster's folder (for `dtk cluster list`) pins nothing; it is stale once gone.
      if (!(await exists(record.path))) stale.push({ path: record.path, file });
      continue;
    }
    let lock: Lockfile | undefined;
    try {
      lock = await readLock(record.path);
    } catch (error) {
      unreadable.push({ path: record.path, file, reason: firstLine(error) });
      continue;
    }
    if (lock === undefined) {
      stale.push({ path: record.path, file });
      continue;
    }
    for (const [name, artifact] of Object.entries(lock.artifacts)) {
      const hexes = new Set([artifactHex(artifact)]);
      // An image keeps every blob its manifests name that the store holds.
      if (isImageArtifact(artifact)) {
        try {
          const blobs = await walkImage(store, imageEntry(name, artifact), { partial: true });
          for (const b of blobs) hexes.add(b.digest.slice(7));
        } catch (error) {
          // A manifest that cannot be read names blobs nobody can know: not "none".
          unreadable.push({
            path: record.path,
            file,
            reason: `image ${q(name)}: ${firstLine(error)}`,
            keepRoot: true,
          });
        }
      }
      for (const hex of hexes) {
        let users = live.get(hex);
        if (users === undefined) live.set(hex, users = new Set());
        // A set: 10,000 names of one hash in one lock are one user, not 10,000.
        users.add(record.path);
      }
    }
  }
  return {
    live: new Map([...live].map(([hex, users]) => [hex, [...users]])),
    stale,
    unreadable,
  };
}

function imageEntry(name: string, a: ImageArtifact) {
  return { name, ref: a.ref, hash: a.hash, ...(a.manifest ? { manifest: a.manifest } : {}) };
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}

/**
 * Removes objects no root needs, stale roots, and partial downloads no process holds. A root
 * that cannot be read stops it (nothing removed) unless `force`, which unregisters that root.
 */
export async function gcStore(
  store: ObjectStore,
  options: { dryRun?: boolean; force?: boolean } = {},
): Promise<GcReport> {
  await store.init();
  const { live, stale, unreadable } = await liveHashes(store);
  if (unreadable.length > 0 && !options.force) {
    const lines = unreadable.map((u) => `  ${u.path}: ${u.reason}`).join("\n");
    throw new DtkError(
      `Cannot collect garbage: ${unreadable.length} registered lock(s) cannot be read, so what ` +
        `they need is unknown\n${lines}`,
      {
        hint:
          "Fix or restore the file(s) and run dtk store gc again; dtk store gc --force forgets those locks and removes what only they needed",
      },
    );
  }
  const report: GcReport = {
    kept: [],
    removed: [],
    staleRoots: [],
    droppedRoots: [],
    partials: 0,
    bytes: 0,
  };
  for (const root of unreadable) {
    report.droppedRoots.push({ path: root.path, reason: root.reason });
    if (!options.dryRun && !root.keepRoot) await Deno.remove(root.file).catch(() => {});
  }
  for (const hex of await store.list()) {
    if (live.has(hex)) {
      report.kept.push(hex);
      continue;
    }
    const size = await store.size(hex).catch(() => 0);
    const names = (await store.readMeta(hex))?.names ?? [];
    report.removed.push({ hex, names, size });
    report.bytes += size;
    if (!options.dryRun) {
      await store.withLock(hex, () => store.remove(hex), { stallMs: 60_000 });
    }
  }
  for (const root of stale) {
    report.staleRoots.push(root.path);
    if (!options.dryRun) await Deno.remove(root.file).catch(() => {});
  }
  report.partials = await store.removeIdlePartials({ dryRun: options.dryRun });
  return report;
}

/** Puts a local file into the store (hashed while copied); returns its hash and size. */
export async function addFile(
  store: ObjectStore,
  path: string,
  options: { name?: string; expected?: string } = {},
): Promise<{ hex: string; size: number; status: "added" | "present" }> {
  return await addLocalFile(store, path, {
    name: options.name ?? basename(path),
    expected: options.expected,
  });
}

/**
 * Copies the objects a lock needs (every blob of each image), and the lock, to `dir/sha256/<hex>`
 * and `dir/dtk.lock`. With `oci`, the folder is also an OCI image layout of the lock's images
 * (`oci-layout`, `index.json` naming each by its ref, `blobs/sha256/` linked to the objects).
 */
export async function exportLock(
  store: ObjectStore,
  lock: Lockfile,
  dir: string,
  options: { oci?: boolean } = {},
): Promise<{ objects: number; bytes: number; missing: string[]; images: number }> {
  const missing: string[] = [];
  const hexes = new Set<string>();
  const images: { ref: string; top: ClosureBlob }[] = [];
  for (const [name, artifact] of Object.entries(lock.artifacts)) {
    if (isImageArtifact(artifact)) {
      try {
        const blobs = await imageClosure(store, imageEntry(name, artifact));
        for (const b of blobs) hexes.add(b.digest.slice(7));
        images.push({ ref: artifact.ref, top: blobs[0]! });
      } catch (error) {
        if (!(error instanceof DtkError)) throw error;
        missing.push(name);
      }
      continue;
    }
    if (await store.check(artifactHex(artifact), artifact.size) !== "present") missing.push(name);
    hexes.add(artifactHex(artifact));
  }
  if (missing.length > 0) {
    throw new DtkError(
      `Cannot export: ${missing.length} artifact(s) are not in the store: ${missing.join(", ")}`,
      {
        hint: "Fetch them first with: dtk fetch",
      },
    );
  }
  await Deno.mkdir(join(dir, "sha256"), { recursive: true });
  let objects = 0;
  let bytes = 0;
  for (const hex of [...hexes].sort()) {
    const target = join(dir, "sha256", hex);
    // Only a regular file of the right size counts as done; a link is replaced by the rename.
    const have = await Deno.lstat(target).then((s) => s.isFile ? s.size : -1, () => -1);
    const size = await store.size(hex);
    if (have === size) continue;
    // A fresh, unguessable name made with O_EXCL: a link planted in the folder is not followed.
    const temp = `${target}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    // Through the descriptor of the object itself: a link in objects/ is refused, not copied.
    const input = await store.openObject(hex);
    try {
      const output = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
      try {
        await input.readable.pipeTo(output.writable, { preventClose: true });
        await output.sync();
      } finally {
        output.close();
      }
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
    await Deno.chmod(temp, 0o644);
    await Deno.rename(temp, target);
    objects++;
    bytes += size;
  }
  await writeLock(join(dir, "dtk.lock"), lock);
  await writeFileAtomic(
    join(dir, "README.txt"),
    "dtk export: objects by sha256 and the lock that names them.\n" +
      "On the other machine: dtk store import <this folder>, or use it as a mirror: dtk fetch --mirror <this folder>\n" +
      (options.oci
        ? "It is also an OCI image layout of the lock's images (skopeo oci:<this folder>:<ref>, ctr import).\n"
        : ""),
  );
  if (options.oci) await writeOciLayout(dir, images);
  return { objects, bytes, missing, images: images.length };
}

/**
 * The OCI image layout over `dir/sha256/`: blobs are hard links to the exported objects (a copy
 * where links are refused), and `index.json` names each image by its full ref, both as the OCI
 * annotation (skopeo, crane) and as containerd's (`ctr import`).
 */
async function writeOciLayout(
  dir: string,
  images: readonly { ref: string; top: ClosureBlob }[],
): Promise<void> {
  const blobs = join(dir, "blobs", "sha256");
  await Deno.mkdir(blobs, { recursive: true });
  for await (const entry of Deno.readDir(join(dir, "sha256"))) {
    if (!/^[0-9a-f]{64}$/.test(entry.name)) continue;
    const target = join(blobs, entry.name);
    if (await Deno.lstat(target).then(() => true, () => false)) continue;
    try {
      await Deno.link(join(dir, "sha256", entry.name), target);
    } catch {
      const temp = `${target}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
      await Deno.copyFile(join(dir, "sha256", entry.name), temp);
      await Deno.rename(temp, target);
    }
  }
  const manifests = images.map(({ ref, top }) => ({
    mediaType: top.mediaType,
    digest: top.digest,
    size: top.size,
    annotations: {
      "io.containerd.image.name": ref,
      "org.opencontainers.image.ref.name": ref,
    },
  })).sort((a, b) =>
    a.annotations["org.opencontainers.image.ref.name"].localeCompare(
      b.annotations["org.opencontainers.image.ref.name"],
    )
  );
  await writeFileAtomic(
    join(dir, "oci-layout"),
    JSON.stringify({ imageLayoutVersion: "1.0.0" }) + "\n",
  );
  await writeFileAtomic(
    join(dir, "index.json"),
    JSON.stringify(
      { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests },
      null,
      2,
    ) + "\n",
  );
}

/**
 * Imports the objects of `dir/dtk.lock` from `dir` (verified on the way in) and returns the lock.
 */
export async function importDir(
  store: ObjectStore,
  dir: string,
  options: { onProgress?: DownloadOptions["onProgress"] } = {},
): Promise<{ lock: Lockfile; imported: number; present: number }> {
  const lock = await readLock(join(dir, "dtk.lock"));
  if (lock === undefined) {
    throw new DtkError(`${q(dir)} has no dtk.lock`, {
      hint: "Create the folder with: dtk store export DIR",
    });
  }
  let imported = 0;
  let present = 0;
  for (const [name, artifact] of Object.entries(lock.artifacts)) {
    if (isImageArtifact(artifact)) {
      const targets = await pullImageManifests(store, name, artifact, {
        mirrors: [dir],
        registry: false,
      });
      for (const target of targets) {
        const result = await ensureObject(store, target, {
          mirrors: [dir],
          attempts: 1,
          onProgress: options.onProgress,
        });
        if (result.status === "fetched") imported++;
        else present++;
      }
      continue;
    }
    const result = await ensureObject(store, {
      name,
      hex: artifactHex(artifact),
      size: artifact.size,
      file: artifactFileName(name, artifact),
      urls: [],
      version: artifact.version,
    }, { mirrors: [dir], attempts: 1, onProgress: options.onProgress });
    if (result.status === "fetched") imported++;
    else present++;
  }
  return { lock, imported, present };
}
