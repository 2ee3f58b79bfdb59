/**
 * The content-addressed artifact store and `dtk.lock`. Identity is the sha256 of the bytes;
 * URLs are hints. Everything a cluster needs is fetched once, verified, and kept read-only under
 * `objects/sha256/<hex>`, so later runs work offline.
 *
 * ```ts
 * const lock = await requireLock(lockPath(config));
 * await ensureLock(lock, { store: openStore(storeDir(config)), mirrors });
 * const kubelet = artifactPath(storeDir(config), lock.artifacts["kubelet"]!);
 * ```
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "../lib/config/types.ts";
import { resolveArtifacts } from "../lib/catalog/mod.ts";
import { DtkError, ExitCode, q } from "../lib/errors/mod.ts";
import { ensureObject } from "./_download.ts";
import type { DownloadOptions, EnsureResult, FetchTarget } from "./_download.ts";
import { ObjectStore } from "./_objects.ts";
import { resolveLock } from "./_resolve.ts";
import type { ResolveResult } from "./_resolve.ts";
import {
  artifactFileName,
  artifactHex,
  type LockArtifact,
  type Lockfile,
  type LockRequest,
  readLock,
  serializeLock,
  writeLock,
} from "./lockfile.ts";

export { ObjectStore } from "./_objects.ts";
export type { ObjectMeta, ObjectState, RootRecord } from "./_objects.ts";
export { ensureObject, fetchUnknown, sourcesFor } from "./_download.ts";
export type { DownloadOptions, EnsureResult, FetchTarget, ProgressEvent } from "./_download.ts";
export { formatHash, hashFile, parseHash, requireHash, shortHash } from "./_hash.ts";
export { fetchSmallText, findChecksum, findInHelmIndex, resolveLock } from "./_resolve.ts";
export type { ResolveOptions, ResolveResult } from "./_resolve.ts";
export { addFile, exportLock, gcStore, importDir, liveHashes, verifyObjects } from "./_maintain.ts";
export type { GcReport, VerifyEntry } from "./_maintain.ts";
export { parseOciUrl, resolveOciChart } from "./_oci.ts";
export {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  imageClosure,
  OCI_INDEX,
  OCI_MANIFEST,
  parseImageJson,
  pickPlatform,
  walkImage,
} from "./_image.ts";
export type { Descriptor, ImageEntry, ParsedImage } from "./_image.ts";
export * from "./lockfile.ts";

/** Opens (without creating) the store in `dir`. */
export function openStore(dir: string): ObjectStore {
  return new ObjectStore(dir);
}

/** Where an artifact of a lock lives in the store (whether or not it is there yet). */
export function artifactPath(storeDir: string, entry: Pick<LockArtifact, "hash">): string {
  return join(storeDir, "objects", "sha256", artifactHex(entry));
}

/** What a config asks for, as recorded in the lock's `requested` section. */
export function lockRequest(
  config: Pick<Config, "arch" | "virt" | "vm" | "versions" | "addons">,
): LockRequest {
  const addons: Record<string, string> = {};
  for (const addon of config.addons) {
    if (addon.enabled) addons[addon.name] = addon.chartVersion ?? "default";
  }
  return {
    arch: config.arch,
    virt: config.virt,
    linux: config.vm.linux,
    createTemplate: config.vm.createTemplate,
    templateSource: config.vm.templateSource,
    versions: { ...config.versions } as unknown as Record<string, string>,
    addons,
  };
}

/**
 * Mirrors in the order they are tried: command-line flags, then the config's `store.mirrors`,
 * then `DTK_MIRRORS` (separated by spaces or commas).
 */
export function mirrorList(
  flags: readonly string[] = [],
  config: Pick<Config, "store"> | undefined,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string[] {
  const fromEnv = (env("DTK_MIRRORS") ?? "").split(/[\s,]+/).filter((m) => m !== "");
  return [...new Set([...flags, ...(config?.store.mirrors ?? []), ...fromEnv])];
}

export interface LockOptions {
  store: ObjectStore;
  path: string;
  update?: boolean;
  frozen?: boolean;
  download?: DownloadOptions;
  warn?: (message: string) => void;
  info?: (message: string) => void;
  fetchText?: (url: string) => Promise<string>;
}

export interface LockOutcome extends ResolveResult {
  /** True when the file was (re)written. */
  written: boolean;
}

/**
 * `dtk lock`: resolves the config's artifacts into the lock at `path`. Entries whose spec did not
 * change are kept unless `update`; with `frozen`, any change is an error and nothing is written.
 */
export async function lockConfig(
  config: Pick<Config, "arch" | "virt" | "vm" | "versions" | "addons">,
  options: LockOptions,
): Promise<LockOutcome> {
  const previousText = await Deno.readTextFile(options.path).catch(() => undefined);
  const previous = await readLock(options.path);
  const result = await resolveLock(resolveArtifacts(config), lockRequest(config), {
    store: options.store,
    previous,
    update: options.update,
    download: options.download,
    warn: options.warn,
    info: options.info,
    fetchText: options.fetchText,
  });
  const text = serializeLock(result.lock);
  if (text === previousText) return { ...result, written: false };
  if (options.frozen) {
    const what = previous === undefined
      ? "does not exist"
      : result.changed.length > 0
      ? `would change: ${result.changed.join(", ")}`
      : "is not in canonical form";
    throw new DtkError(`Lock file ${q(options.path)} ${what}`, {
      exitCode: ExitCode.failure,
      hint: "Run dtk lock (without --frozen) and commit the result",
    });
  }
  await writeLock(options.path, result.lock);
  await options.store.addRoot(options.path);
  return { ...result, written: true };
}

/** The store targets of a lock. */
export function lockTargets(lock: Lockfile): FetchTarget[] {
  return Object.entries(lock.artifacts).map(([name, a]) => ({
    name,
    hex: artifactHex(a),
    size: a.size,
    file: artifactFileName(name, a),
    urls: a.urls,
    version: a.version,
  }));
}

export interface EnsureOptions extends DownloadOptions {
  store: ObjectStore;
  /** Downloads at once. Default 4. */
  jobs?: number;
  /** The lock's path: registered as a `gc` root. */
  lockPath?: string;
  /** Called as each artifact is done. */
  onResult?: (result: EnsureResult) => void;
}

export interface EnsureSummary {
  results: EnsureResult[];
  fetched: number;
  present: number;
  /** Bytes transferred by this process. */
  bytes: number;
  elapsedMs: number;
}

/** Artifacts of a lock that are not present (cheap check only). */
export async function missingArtifacts(store: ObjectStore, lock: Lockfile): Promise<string[]> {
  const missing: string[] = [];
  for (const t of lockTargets(lock)) {
    if (await store.check(t.hex, t.size) !== "present") missing.push(t.name);
  }
  return missing;
}

/**
 * Makes every artifact of a lock present and verified, `jobs` at a time. Artifacts sharing a hash
 * are fetched once. Throws the first failure after the other downloads have finished.
 */
export async function ensureLock(lock: Lockfile, options: EnsureOptions): Promise<EnsureSummary> {
  const started = performance.now();
  const store = options.store;
  await store.init();
  if (options.lockPath !== undefined) await store.addRoot(options.lockPath);
  const targets = lockTargets(lock);
  const byHash = new Map<string, FetchTarget[]>();
  for (const t of targets) byHash.set(t.hex, [...(byHash.get(t.hex) ?? []), t]);
  const queue = [...byHash.values()];
  const results: EnsureResult[] = [];
  const errors: unknown[] = [];
  const worker = async () => {
    for (let group = queue.shift(); group !== undefined; group = queue.shift()) {
      for (const target of group) {
        try {
          const result = await ensureObject(store, target, options);
          results.push(result);
          options.onResult?.(result);
        } catch (error) {
          errors.push(error);
          break;
        }
      }
    }
  };
  const jobs = Math.max(1, Math.min(options.jobs ?? 4, queue.length || 1));
  await Promise.all(Array.from({ length: jobs }, worker));
  if (errors.length > 0) {
    const first = errors[0];
    if (errors.length === 1) throw first;
    const rest = errors.length - 1;
    if (first instanceof DtkError) {
      throw new DtkError(`${first.message}\n(and ${rest} more artifact(s) failed)`, {
        exitCode: first.exitCode,
        hint: first.hint,
        cause: first,
      });
    }
    throw first;
  }
  return {
    results,
    fetched: results.filter((r) => r.status === "fetched").length,
    present: results.filter((r) => r.status !== "fetched").length,
    bytes: results.reduce((n, r) => n + r.transferred, 0),
    elapsedMs: performance.now() - started,
  };
}
