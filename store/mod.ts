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
import { IMAGE_PINS, resolveArtifacts } from "../lib/catalog/mod.ts";
import { DtkError, ExitCode, q } from "../lib/errors/mod.ts";
import type { ImageConfig } from "../lib/addons/_images.ts";
import { ensureObject, wrongLockSize } from "./_download.ts";
import { imageClosure } from "./_image.ts";
import { pullImageManifests, resolveImages } from "./_image_pull.ts";
import type { DownloadOptions, EnsureResult, FetchTarget, ProgressEvent } from "./_download.ts";
import { ObjectStore, type StoreOptions } from "./_objects.ts";
import { resolveLock } from "./_resolve.ts";
import type { ResolveResult } from "./_resolve.ts";
import {
  artifactFileName,
  artifactHex,
  isImageArtifact,
  type LockArtifact,
  type Lockfile,
  type LockRequest,
  readLock,
  serializeLock,
  writeLock,
} from "./lockfile.ts";

export { ObjectStore, storeUnwritable } from "./_objects.ts";
export type { ObjectMeta, ObjectState, RootRecord, StoreOptions } from "./_objects.ts";
export {
  ensureObject,
  fetchUnknown,
  MAX_BYTES_BY_KIND,
  sourcesFor,
  tuningFromEnv,
} from "./_download.ts";
export type { DownloadOptions, EnsureResult, FetchTarget, ProgressEvent } from "./_download.ts";
export { formatHash, hashFile, parseHash, requireHash, shortHash } from "./_hash.ts";
export { fetchSmallText, findChecksum, findInHelmIndex, resolveLock } from "./_resolve.ts";
export type { ResolveOptions, ResolveResult } from "./_resolve.ts";
export { addFile, exportLock, gcStore, importDir, liveHashes, verifyObjects } from "./_maintain.ts";
export type { GcReport, UnreadableRoot, VerifyEntry } from "./_maintain.ts";
export { redactUrl } from "./_url.ts";
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
export { pullImageManifests, resolveImage, resolveImages } from "./_image_pull.ts";
export type { PullOptions, ResolveImagesOptions } from "./_image_pull.ts";

/** An image a config needs, with the digest its add-on list pins, if any. */
export interface ConfigImage {
  ref: string;
  digest?: string;
}

/**
 * The container images a config needs, by the reference the cluster uses (`requiredImages` of
 * the add-on registry: the sandbox image, the control plane's, every enabled add-on's). Loaded
 * only when a lock is made: the add-on registry is not needed for anything else here.
 */
export async function configImages(config: ImageConfig): Promise<ConfigImage[]> {
  const { requiredImages } = await import("../lib/addons/mod.ts");
  return requiredImages(config).map((i) => ({
    ref: i.ref,
    ...(i.digest === undefined ? {} : { digest: i.digest }),
  }));
}
export * from "./lockfile.ts";

/** Opens (without creating) the store in `dir`. */
export function openStore(dir: string, options: StoreOptions = {}): ObjectStore {
  return new ObjectStore(dir, options);
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
  /** The images to lock; default `configImages(config)`. */
  images?: readonly ConfigImage[];
  /** Built-in image digests; default `IMAGE_PINS`. */
  imagePins?: Readonly<Record<string, string>>;
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
  config: Pick<Config, "arch" | "virt" | "vm" | "versions" | "addons" | "k8s" | "cluster">,
  options: LockOptions,
): Promise<LockOutcome> {
  // readLock first: it refuses a FIFO or an oversized file before anything reads it.
  const previous = await readLock(options.path);
  const previousText = previous === undefined
    ? undefined
    : await Deno.readTextFile(options.path).catch(() => undefined);
  if (options.frozen && previous === undefined) throw frozenError(options.path, "does not exist");
  const result = await resolveLock(resolveArtifacts(config), lockRequest(config), {
    store: options.store,
    previous,
    update: options.update,
    download: options.download,
    warn: options.warn,
    info: options.info,
    fetchText: options.fetchText,
  });
  const wanted = options.images ?? await configImages(config);
  const pins: Record<string, string> = { ...(options.imagePins ?? IMAGE_PINS) };
  for (const image of wanted) if (image.digest !== undefined) pins[image.ref] = image.digest;
  const images = await resolveImages(wanted.map((i) => i.ref), config.arch, {
    previous: previous?.artifacts,
    update: options.update,
    warn: options.warn,
    pins,
    timeoutMs: options.download?.stallTimeoutMs,
    attempts: options.download?.attempts,
    backoffMs: options.download?.backoffMs,
    signal: options.download?.signal,
  });
  if (images.failures.length > 0) {
    const lines = images.failures.sort((a, b) => a.name.localeCompare(b.name)).map((f) =>
      f.message.split("\n").map((l, i) => `  ${i === 0 ? `${f.name}: ` : ""}${l}`).join("\n")
    );
    throw new DtkError(
      `Cannot resolve ${images.failures.length} image(s); the lock was not written\n${
        lines.join("\n")
      }`,
      {
        hint:
          "Check the network; or pin the digest by hand in dtk.lock (an image entry needs only ref and hash)",
      },
    );
  }
  result.lock.artifacts = { ...result.lock.artifacts, ...images.artifacts };
  const before = previous?.artifacts ?? {};
  const after = result.lock.artifacts;
  result.changed = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((n) => JSON.stringify(before[n]) !== JSON.stringify(after[n])).sort();
  const text = serializeLock(result.lock);
  if (text === previousText) return { ...result, written: false };
  if (options.frozen) {
    const what = previous === undefined
      ? "does not exist"
      : result.changed.length > 0
      ? `would change: ${result.changed.join(", ")}`
      : "is not in canonical form";
    throw frozenError(options.path, what);
  }
  await writeLock(options.path, result.lock);
  await options.store.addRoot(options.path);
  return { ...result, written: true };
}

function frozenError(path: string, what: string): DtkError {
  return new DtkError(`Lock file ${q(path)} ${what}`, {
    exitCode: ExitCode.failure,
    hint: "Run dtk lock (without --frozen) and commit the result",
  });
}

/** The store targets of a lock's files (images are walked from their manifests instead). */
export function lockTargets(lock: Lockfile): FetchTarget[] {
  return Object.entries(lock.artifacts).filter(([, a]) => !isImageArtifact(a)).map((
    [name, a],
  ) => ({
    name,
    hex: artifactHex(a),
    size: a.size,
    file: artifactFileName(name, a),
    urls: a.urls,
    version: a.version,
    kind: a.kind,
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
  for (const [name, a] of Object.entries(lock.artifacts)) {
    if (!isImageArtifact(a)) continue;
    try {
      await imageClosure(store, { name, ref: a.ref, hash: a.hash, manifest: a.manifest });
    } catch (error) {
      if (!(error instanceof DtkError)) throw error;
      missing.push(name);
    }
  }
  return missing.sort();
}

/**
 * The index and manifest of each image, checked and stored, `jobs` images at once; returns the
 * config and layer targets. Failures go to `errors`, so that the files still download.
 */
async function imageTargets(
  lock: Lockfile,
  options: EnsureOptions,
  errors: unknown[],
  results: EnsureResult[],
): Promise<FetchTarget[]> {
  const queue = Object.entries(lock.artifacts).filter(([, a]) => isImageArtifact(a));
  const out: FetchTarget[] = [];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      const [name, artifact] = item;
      if (!isImageArtifact(artifact)) continue;
      try {
        out.push(
          ...await pullImageManifests(options.store, name, artifact, {
            mirrors: options.mirrors,
            log: options.log,
            signal: options.signal,
            timeoutMs: options.stallTimeoutMs,
            attempts: options.attempts,
            backoffMs: options.backoffMs,
            onManifest: (m) => {
              const result: EnsureResult = {
                name,
                hex: m.hex,
                status: m.fetched ? "fetched" : "present",
                transferred: m.fetched ? m.size : 0,
                size: m.size,
              };
              results.push(result);
              options.onResult?.(result);
            },
          }),
        );
      } catch (error) {
        if (options.signal?.aborted) throw error;
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs ?? 4, queue.length) }, worker));
  return out;
}

/**
 * Makes every artifact of a lock present and verified, `jobs` at a time. Artifacts sharing a hash
 * are fetched once, and their names recorded in one metadata write. Throws the first failure
 * after the other downloads have finished.
 */
export async function ensureLock(lock: Lockfile, options: EnsureOptions): Promise<EnsureSummary> {
  const started = performance.now();
  const store = options.store;
  await store.init();
  if (options.lockPath !== undefined) await store.addRoot(options.lockPath);
  const errors: unknown[] = [];
  const results: EnsureResult[] = [];
  const targets = [...lockTargets(lock), ...await imageTargets(lock, options, errors, results)];
  const byHash = new Map<string, FetchTarget[]>();
  for (const t of targets) byHash.set(t.hex, [...(byHash.get(t.hex) ?? []), t]);
  const queue = [...byHash.values()];
  const worker = async () => {
    for (let group = queue.shift(); group !== undefined; group = queue.shift()) {
      const [first, ...others] = group;
      if (first === undefined) continue;
      try {
        // An image's blobs share its lock name: progress tells them apart by their label.
        const label = first.label;
        const onProgress = options.onProgress;
        const each = label === undefined || onProgress === undefined
          ? options
          : { ...options, onProgress: (e: ProgressEvent) => onProgress({ ...e, name: label }) };
        const result = await ensureObject(store, { ...first, also: others }, each);
        const wrong = others.find((t) => t.size !== null && t.size !== result.size);
        if (wrong !== undefined) throw wrongLockSize(wrong, result.size);
        for (const target of group) {
          const one: EnsureResult = target === first ? result : {
            name: target.name,
            hex: target.hex,
            status: "present",
            transferred: 0,
            size: result.size,
          };
          results.push(one);
          options.onResult?.(one);
        }
      } catch (error) {
        errors.push(error);
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
