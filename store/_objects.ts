/**
 * The on-disk object store. Layout under the store folder:
 *
 * ```
 * objects/sha256/<hex>        the bytes, read-only (0444), only ever created by rename
 * meta/sha256/<hex>.json      size, names, versions, urls, fetched-at
 * tmp/<hex>.partial(.json)    an interrupted download and what resumes it
 * locks/<hex>.lock            flock: one process downloads an object, the others wait
 * roots/<id>.json             locks and clusters whose artifacts `gc` keeps
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DtkError, formatDuration, q, TimeoutError } from "../lib/errors/mod.ts";
import { syncDir, writeFileAtomic } from "../lib/fs/mod.ts";
import { formatHash } from "./_hash.ts";

/** What the store records beside each object. */
export interface ObjectMeta {
  hash: string;
  size: number;
  /** Lock names the object was fetched or added under. */
  names: string[];
  versions: string[];
  urls: string[];
  fetchedAt: string;
  /** The source the bytes finally came from. */
  from?: string;
  /** Image blobs: the media type their descriptor or registry gave (manifests must keep it). */
  mediaType?: string;
}

/** A root: a lock file whose artifacts `gc` must keep, or a cluster's folder (`cluster list`). */
export interface RootRecord {
  path: string;
  kind: "lock" | "cluster";
  registeredAt: string;
}

export type ObjectState = "present" | "missing" | "corrupt";

const HEX = /^[0-9a-f]{64}$/;

function assertHex(hex: string): void {
  // Every path below is built from a hash: refusing anything else keeps names inside the store.
  if (!HEX.test(hex)) throw new DtkError(`Invalid object hash ${q(hex)}`);
}

/** The store folder and the operations on its files. */
export class ObjectStore {
  readonly dir: string;
  #ready = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  objectPath(hex: string): string {
    assertHex(hex);
    return join(this.dir, "objects", "sha256", hex);
  }

  metaPath(hex: string): string {
    assertHex(hex);
    return join(this.dir, "meta", "sha256", `${hex}.json`);
  }

  partialPath(hex: string): string {
    assertHex(hex);
    return join(this.dir, "tmp", `${hex}.partial`);
  }

  /** A fresh temp path on the store's filesystem, for content whose hash is not known yet. */
  tempPath(): string {
    return join(this.dir, "tmp", `new-${Deno.pid}-${crypto.randomUUID()}.partial`);
  }

  async init(): Promise<void> {
    if (this.#ready) return;
    for (const sub of ["objects/sha256", "meta/sha256", "tmp", "locks", "roots"]) {
      await Deno.mkdir(join(this.dir, sub), { recursive: true });
    }
    this.#ready = true;
  }

  async readMeta(hex: string): Promise<ObjectMeta | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(this.metaPath(hex))) as ObjectMeta;
    } catch {
      return undefined;
    }
  }

  /** Merges names, versions and urls into the object's metadata (call under the object lock). */
  async recordMeta(
    hex: string,
    size: number,
    info: {
      name?: string;
      version?: string;
      urls?: readonly string[];
      from?: string;
      mediaType?: string;
    },
  ): Promise<ObjectMeta> {
    const old = await this.readMeta(hex);
    const union = (
      a: readonly string[] = [],
      b: readonly (string | undefined)[] = [],
    ) => [...new Set([...a, ...b.filter((x): x is string => x !== undefined && x !== "")])];
    const meta: ObjectMeta = {
      hash: formatHash(hex),
      size,
      names: union(old?.names, [info.name]),
      versions: union(old?.versions, [info.version]),
      urls: union(old?.urls, info.urls ?? []),
      fetchedAt: old?.fetchedAt ?? new Date().toISOString(),
    };
    const from = info.from ?? old?.from;
    if (from !== undefined) meta.from = from;
    const mediaType = info.mediaType ?? old?.mediaType;
    if (mediaType !== undefined) meta.mediaType = mediaType;
    await writeFileAtomic(this.metaPath(hex), JSON.stringify(meta, null, 2) + "\n");
    return meta;
  }

  /**
   * The cheap check done on every use: the object is a read-only regular file whose size matches
   * the metadata and `expectedSize`. The full rehash is `verify`.
   */
  async check(hex: string, expectedSize?: number | null): Promise<ObjectState> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(this.objectPath(hex));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return "missing";
      throw error;
    }
    if (!info.isFile || ((info.mode ?? 0) & 0o222) !== 0) return "corrupt";
    if (expectedSize != null && info.size !== expectedSize) return "corrupt";
    const meta = await this.readMeta(hex);
    if (meta !== undefined && meta.size !== info.size) return "corrupt";
    return "present";
  }

  /** Size of a present object. */
  async size(hex: string): Promise<number> {
    return (await Deno.stat(this.objectPath(hex))).size;
  }

  /**
   * Moves a verified temp file into place: read-only, renamed, folder synced. The caller has
   * fsynced the file and checked its size and hash.
   */
  async commit(tempPath: string, hex: string): Promise<void> {
    await Deno.chmod(tempPath, 0o444);
    const target = this.objectPath(hex);
    await Deno.rename(tempPath, target);
    await syncDir(join(this.dir, "objects", "sha256"));
  }

  /** Deletes an object and its metadata (objects are read-only; the folder is not). */
  async remove(hex: string): Promise<void> {
    await Deno.remove(this.objectPath(hex)).catch(ignoreNotFound);
    await Deno.remove(this.metaPath(hex)).catch(ignoreNotFound);
  }

  /** Every object hash in the store. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const entry of Deno.readDir(join(this.dir, "objects", "sha256"))) {
        if (HEX.test(entry.name)) out.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return out.sort();
  }

  /**
   * Runs `fn` holding the object's lock, so that concurrent dtk processes download an object
   * once. The lock is an flock: the kernel drops it when its holder dies, even by SIGKILL.
   * Waiting gives up only when the holder shows no progress for `stallMs`.
   */
  async withLock<T>(
    hex: string,
    fn: () => Promise<T>,
    options: { stallMs?: number; onWait?: () => void } = {},
  ): Promise<T> {
    await this.init();
    const stallMs = options.stallMs ?? 10 * 60_000;
    const file = await Deno.open(join(this.dir, "locks", `${hex}.lock`), {
      read: true,
      write: true,
      create: true,
    });
    let acquired = false;
    const locking = file.lock(true).then(() => {
      acquired = true;
    });
    try {
      let waited = false;
      let lastSize = -1;
      let lastChange = Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const watchdog = new Promise<void>((_, reject) => {
        const tick = async () => {
          if (acquired) return;
          if (!waited) {
            waited = true;
            options.onWait?.();
          }
          const size = await Deno.stat(this.partialPath(hex)).then((s) => s.size, () => -1);
          if (size !== lastSize) {
            lastSize = size;
            lastChange = Date.now();
          } else if (Date.now() - lastChange > stallMs) {
            reject(
              new TimeoutError(
                `another dtk process to finish downloading ${formatHash(hex)}`,
                {
                  timeoutMs: stallMs,
                  hint: `It made no progress for ${
                    formatDuration(stallMs)
                  }; stop it, then run the command again`,
                },
              ),
            );
            return;
          }
          timer = setTimeout(tick, 250);
        };
        timer = setTimeout(tick, 50);
      });
      try {
        await Promise.race([locking, watchdog]);
      } finally {
        clearTimeout(timer);
      }
      return await fn();
    } finally {
      if (acquired) {
        await file.unlock().catch(() => {});
        file.close();
      } else {
        // The pending lock call still owns the descriptor; close it once that settles.
        void locking.catch(() => {}).finally(() => file.close());
      }
    }
  }

  /** Registers a lock file as a root for `gc`, or a cluster's folder for `dtk cluster list`. */
  async addRoot(path: string, kind: RootRecord["kind"] = "lock"): Promise<void> {
    await this.init();
    const id = createHash("sha256").update(path).digest("hex").slice(0, 32);
    const file = join(this.dir, "roots", `${id}.json`);
    const record: RootRecord = { path, kind, registeredAt: new Date().toISOString() };
    const old = await Deno.readTextFile(file).then((t) => JSON.parse(t) as RootRecord, () => null);
    if (old?.path === path && old.kind === kind) return;
    await writeFileAtomic(file, JSON.stringify(record, null, 2) + "\n");
  }

  /** Every registered root with the file that records it. */
  async roots(): Promise<{ record: RootRecord; file: string }[]> {
    const out: { record: RootRecord; file: string }[] = [];
    try {
      for await (const entry of Deno.readDir(join(this.dir, "roots"))) {
        if (!entry.name.endsWith(".json")) continue;
        const file = join(this.dir, "roots", entry.name);
        try {
          out.push({ record: JSON.parse(await Deno.readTextFile(file)) as RootRecord, file });
        } catch { /* a torn root file names nothing */ }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return out.sort((a, b) => a.record.path.localeCompare(b.record.path));
  }
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
