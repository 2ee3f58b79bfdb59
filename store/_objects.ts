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
import { DtkError, ExitCode, formatDuration, q, TimeoutError } from "../lib/errors/mod.ts";
import { syncDir, writeFileAtomic } from "../lib/fs/mod.ts";
import { formatHash } from "./_hash.ts";
import {
  lstatRegular,
  NotRegularError,
  openRegular,
  readRegularText,
  sameFile,
} from "./_nofollow.ts";
import { hasCredentials, redactUrl } from "./_url.ts";

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

export interface StoreOptions {
  /** Told once when the store folder can be read by other users. */
  warn?: (message: string) => void;
}

/** The store folder and the operations on its files. */
export class ObjectStore {
  readonly dir: string;
  #ready = false;
  #warn: ((message: string) => void) | undefined;

  constructor(dir: string, options: StoreOptions = {}) {
    this.dir = dir;
    this.#warn = options.warn;
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

  /**
   * Creates the store's folders. The store folder is made 0700: objects are 0444, so in a folder
   * others can enter, a `file://` source such as `/etc/shadow` would become readable by anyone.
   * An existing folder others can enter is reported (it may be shared on purpose).
   */
  async init(): Promise<void> {
    if (this.#ready) return;
    try {
      await Deno.mkdir(this.dir, { recursive: true, mode: 0o700 });
      for (const sub of ["objects/sha256", "meta/sha256", "tmp", "locks", "roots"]) {
        await Deno.mkdir(join(this.dir, sub), { recursive: true, mode: 0o700 });
      }
    } catch (error) {
      throw storeUnwritable(this.dir, error);
    }
    const info = await Deno.stat(this.dir);
    if (((info.mode ?? 0) & 0o077) !== 0) {
      this.#warn?.(
        `The store ${q(this.dir)} can be read by other users (mode ${
          ((info.mode ?? 0) & 0o777).toString(8)
        }); its objects may include private files. Make it private with: chmod 700 ${this.dir}`,
      );
    }
    this.#ready = true;
  }

  async readMeta(hex: string): Promise<ObjectMeta | undefined> {
    try {
      const text = await readRegularText(this.metaPath(hex));
      return text === undefined ? undefined : JSON.parse(text) as ObjectMeta;
    } catch {
      return undefined;
    }
  }

  /**
   * Merges names, versions and urls into the object's metadata (call under the object lock), in
   * one write however many names are added, and none when nothing is new. URLs are recorded
   * without credentials: one that carried any is left out (the lock still has it).
   */
  async recordMeta(
    hex: string,
    size: number,
    info: {
      name?: string;
      names?: readonly string[];
      version?: string;
      versions?: readonly (string | undefined)[];
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
      names: union(old?.names, [info.name, ...(info.names ?? [])]),
      versions: union(old?.versions, [info.version, ...(info.versions ?? [])]),
      urls: union(
        old?.urls.filter((u) => !hasCredentials(u)),
        (info.urls ?? []).filter((u) => !hasCredentials(u)),
      ),
      fetchedAt: old?.fetchedAt ?? new Date().toISOString(),
    };
    const from = info.from ?? old?.from;
    if (from !== undefined) meta.from = redactUrl(from);
    const mediaType = info.mediaType ?? old?.mediaType;
    if (mediaType !== undefined) meta.mediaType = mediaType;
    const text = JSON.stringify(meta, null, 2) + "\n";
    if (old !== undefined && JSON.stringify(old, null, 2) + "\n" === text) return meta;
    try {
      await writeFileAtomic(this.metaPath(hex), text);
    } catch (error) {
      throw storeUnwritable(this.dir, error);
    }
    return meta;
  }

  /**
   * The cheap check done on every use: the object is a read-only regular file whose size matches
   * the metadata and `expectedSize`. The full rehash is `verify`.
   */
  async check(hex: string, expectedSize?: number | null): Promise<ObjectState> {
    return (await this.inspect(hex, expectedSize)).state;
  }

  /**
   * `check`, saying why an object failed: `wrongLockSize` when the object itself is sound (regular,
   * read-only, its metadata agrees) and only the size the caller expected differs. That size is a
   * claim of a lock, and is no reason to delete an object.
   */
  async inspect(
    hex: string,
    expectedSize?: number | null,
  ): Promise<{ state: ObjectState; size?: number; wrongLockSize?: boolean }> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(this.objectPath(hex));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { state: "missing" };
      throw error;
    }
    if (!info.isFile || ((info.mode ?? 0) & 0o222) !== 0) return { state: "corrupt" };
    const meta = await this.readMeta(hex);
    if (meta !== undefined && meta.size !== info.size) return { state: "corrupt", size: info.size };
    if (expectedSize != null && info.size !== expectedSize) {
      return { state: "corrupt", size: info.size, wrongLockSize: true };
    }
    return { state: "present", size: info.size };
  }

  /** Size of a present object (the object itself, never what a link points to). */
  async size(hex: string): Promise<number> {
    return (await lstatRegular(this.objectPath(hex))).size;
  }

  /** Opens an object for reading, refusing a link or anything but a regular file. */
  openObject(hex: string): Promise<Deno.FsFile> {
    return openRegular(this.objectPath(hex));
  }

  /**
   * Moves a verified temp file into place: read-only, renamed, folder synced. The caller has
   * fsynced the file and checked its size and hash. `written` is the caller's `fstat` of the
   * descriptor it wrote: the path must still be that very file, not a link put in its place, so
   * neither the chmod nor the rename can reach anything outside the store.
   */
  async commit(tempPath: string, hex: string, written?: Deno.FileInfo): Promise<void> {
    const info = await lstatRegular(tempPath);
    if (written !== undefined && !sameFile(info, written)) {
      throw new NotRegularError(tempPath, "not the file that was written");
    }
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
    const file = await this.#openLockFile(hex);
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

  /** The lock file of an object: opened without following a link, created when missing. */
  async #openLockFile(hex: string): Promise<Deno.FsFile> {
    assertHex(hex);
    const path = join(this.dir, "locks", `${hex}.lock`);
    for (let tries = 0;; tries++) {
      try {
        return await openRegular(path, { read: true, write: true });
      } catch (error) {
        if (tries > 3) throw error;
        if (error instanceof NotRegularError) {
          // Only a planted link or worse: remove it and make a real one.
          await Deno.remove(path).catch(() => {});
        } else if (!(error instanceof Deno.errors.NotFound)) {
          throw storeUnwritable(this.dir, error);
        }
      }
      try {
        return await Deno.open(path, { read: true, write: true, createNew: true, mode: 0o600 });
      } catch (error) {
        // Another process created it first: open that one.
        if (!(error instanceof Deno.errors.AlreadyExists)) throw storeUnwritable(this.dir, error);
      }
    }
  }

  /**
   * Removes partial downloads and temp files no process holds: a `<hex>.partial` whose object
   * lock is free, a `new-<pid>-….partial` whose process is gone. Returns how many were removed
   * (or would be, with `dryRun`).
   */
  async removeIdlePartials(options: { dryRun?: boolean } = {}): Promise<number> {
    const tmp = join(this.dir, "tmp");
    const entries: string[] = [];
    try {
      for await (const entry of Deno.readDir(tmp)) entries.push(entry.name);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return 0;
      throw error;
    }
    let removed = 0;
    for (const name of entries) {
      const path = join(tmp, name);
      const hex = /^([0-9a-f]{64})\.partial(\.json)?$/.exec(name)?.[1];
      const pid = /^new-(\d+)-/.exec(name)?.[1];
      let idle: boolean;
      if (hex !== undefined) idle = !(await this.#lockHeld(hex));
      else if (pid !== undefined) {
        idle = Number(pid) !== Deno.pid &&
          !(await Deno.lstat(`/proc/${pid}`).then(() => true, () => false));
      } else idle = false;
      if (!idle) continue;
      removed++;
      if (!options.dryRun) await Deno.remove(path).catch(() => {});
    }
    return removed;
  }

  /** True when some process holds the object's lock now. */
  async #lockHeld(hex: string): Promise<boolean> {
    let file: Deno.FsFile;
    try {
      file = await openRegular(join(this.dir, "locks", `${hex}.lock`), {
        read: true,
        write: true,
      });
    } catch {
      return false; // no lock file: no holder
    }
    try {
      const got = await file.tryLock(true);
      if (got) await file.unlock();
      return !got;
    } finally {
      file.close();
    }
  }

  /** Registers a lock file as a root for `gc`, or a cluster's folder for `dtk cluster list`. */
  async addRoot(path: string, kind: RootRecord["kind"] = "lock"): Promise<void> {
    await this.init();
    const id = createHash("sha256").update(path).digest("hex").slice(0, 32);
    const file = join(this.dir, "roots", `${id}.json`);
    const record: RootRecord = { path, kind, registeredAt: new Date().toISOString() };
    const old = await readRegularText(file).then(
      (t) => t === undefined ? null : JSON.parse(t) as RootRecord,
      () => null,
    );
    if (old?.path === path && old.kind === kind) return;
    try {
      await writeFileAtomic(file, JSON.stringify(record, null, 2) + "\n");
    } catch (error) {
      throw storeUnwritable(this.dir, error);
    }
  }

  /**
   * Every registered root with the file that records it. A root record that cannot be read is
   * passed to `onTorn`: it names a lock nobody can know, which `gc` must not take as nothing.
   */
  async roots(
    options: { onTorn?: (file: string, reason: string) => void } = {},
  ): Promise<{ record: RootRecord; file: string }[]> {
    const out: { record: RootRecord; file: string }[] = [];
    try {
      for await (const entry of Deno.readDir(join(this.dir, "roots"))) {
        if (!entry.name.endsWith(".json")) continue;
        const file = join(this.dir, "roots", entry.name);
        try {
          const record = JSON.parse(await readRegularText(file) ?? "null") as RootRecord | null;
          if (typeof record?.path !== "string") throw new Error("no lock path in the root record");
          out.push({ record, file });
        } catch (error) {
          options.onTorn?.(file, `unreadable root record: ${(error as Error).message}`);
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return out.sort((a, b) => a.record.path.localeCompare(b.record.path));
  }
}

/**
 * The store folder cannot be written (read-only filesystem or mount, permissions): the user's to
 * fix, so a user error with a hint, not a crash.
 */
export function storeUnwritable(dir: string, error: unknown): DtkError {
  if (error instanceof DtkError) return error;
  const text = ((error as Error)?.message ?? String(error)).split("\n")[0] ?? "";
  const readOnly = /EROFS|read-only/i.test(text);
  const denied = error instanceof Deno.errors.PermissionDenied || /EACCES|EPERM/.test(text);
  const full = /ENOSPC|no space/i.test(text);
  const hint = full
    ? "Free disk space (dtk store gc removes objects no lock uses), or point DTK_STORE at a larger disk"
    : readOnly || denied
    ? `The store must be writable to add or record anything; set DTK_STORE to a writable folder${
      readOnly ? " (this one is on a read-only filesystem)" : ", or fix the folder's owner"
    }`
    : "Check the store folder and its disk, or set DTK_STORE to another folder";
  return new DtkError(`Cannot write to the store ${q(dir)}: ${text}`, {
    exitCode: ExitCode.failure,
    hint,
    cause: error,
  });
}

function ignoreNotFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
