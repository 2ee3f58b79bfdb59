/**
 * Getting verified bytes into the store. Per object: a cheap presence check, then, holding the
 * object's lock, each source in turn (mirrors by hash, mirrors by file name, upstream URLs):
 * stream through sha256 into `tmp/<hex>.partial`, fsync, check size and hash, rename into
 * `objects/`. Interrupted downloads resume with `Range` + `If-Range`.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { statfs } from "node:fs/promises";
import { resolve as resolvePath, sep } from "node:path";
import { fileURLToPath as fromFileUrl, pathToFileURL } from "node:url";
import {
  DtkError,
  ExitCode,
  type ExitCodeValue,
  formatDuration,
  IntegrityError,
  q,
} from "../lib/errors/mod.ts";
import { writeFileAtomic } from "../lib/fs/mod.ts";
import { formatBytes } from "../lib/ui/mod.ts";
import { formatHash, hashFrom } from "./_hash.ts";
import { HashingWriter, pumpBody, pumpFile } from "./_sink.ts";
import { type ObjectStore, storeUnwritable } from "./_objects.ts";
import { OciHttpError, resolveOciChart } from "./_oci.ts";
import {
  createFresh,
  fileKind,
  lstatRegular,
  openRegular,
  readRegularText,
  sameFile,
} from "./_nofollow.ts";
import { redactUrl } from "./_url.ts";
import { fileUrlProblem } from "./lockfile.ts";

/** What to put in the store: a hash and where its bytes may be found. */
export interface FetchTarget {
  name: string;
  hex: string;
  size: number | null;
  /** File name, for `<mirror>/<file>`. */
  file: string;
  urls: readonly string[];
  version?: string;
  /** Image blobs: the descriptor's media type, kept in the object's metadata. */
  mediaType?: string;
  /** What progress calls it when `name` is shared (an image's blobs): `<name> layer <hex12>`. */
  label?: string;
  /** Headers for requests to `urls` (not mirrors), asked for at each try: a registry token. */
  headers?: () => Promise<Record<string, string>>;
  /** The lock's kind: bounds a download whose size is not known (`size: null`). */
  kind?: string;
  /** Other lock names of the same hash, recorded with this one in one metadata write. */
  also?: readonly { name: string; version?: string; urls: readonly string[] }[];
}

/**
 * The most a download of unknown size (`size: null`) may take, by kind: a hostile or broken
 * server must not fill the disk. `DTK_MAX_DOWNLOAD_BYTES` (or `maxBytes`) replaces these.
 */
export const MAX_BYTES_BY_KIND: Readonly<Record<string, number>> = {
  binary: 1 << 30,
  tarball: 4 * 2 ** 30,
  iso: 16 * 2 ** 30,
  "disk-image": 32 * 2 ** 30,
  chart: 64 << 20,
  manifest: 64 << 20,
  image: 8 * 2 ** 30,
};
const MAX_BYTES_DEFAULT = 4 * 2 ** 30;
/** Below this rate, averaged over `rateWindowMs`, a source is given up: a drip is not progress. */
const MIN_RATE_DEFAULT = 4096;
const RATE_WINDOW_DEFAULT = 60_000;

/** Download limits from the environment: every command that downloads honours them. */
export function tuningFromEnv(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Pick<
  DownloadOptions,
  | "stallTimeoutMs"
  | "backoffMs"
  | "attempts"
  | "maxBytes"
  | "minRate"
  | "rateWindowMs"
  | "deadlineMs"
> {
  const num = (name: string) => {
    const v = env(name);
    if (v === undefined || v === "") return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) {
      throw new DtkError(`${name} must be a non-negative number, got ${q(v)}`, {
        exitCode: ExitCode.usage,
        hint: `Unset ${name}, or set it to a number`,
      });
    }
    return n;
  };
  return {
    stallTimeoutMs: num("DTK_STALL_TIMEOUT_MS"),
    backoffMs: num("DTK_BACKOFF_MS"),
    attempts: num("DTK_FETCH_ATTEMPTS"),
    maxBytes: num("DTK_MAX_DOWNLOAD_BYTES"),
    minRate: num("DTK_MIN_RATE"),
    rateWindowMs: num("DTK_RATE_WINDOW_MS"),
    deadlineMs: num("DTK_FETCH_DEADLINE_MS"),
  };
}

/**
 * `options` with the environment's limits where it sets none: `dtk cluster create` and every
 * other caller honour `DTK_MAX_DOWNLOAD_BYTES`, `DTK_MIN_RATE`, … as `dtk fetch` does.
 */
function withEnvLimits<T extends DownloadOptions>(options: T): T {
  let env: ReturnType<typeof tuningFromEnv>;
  try {
    env = tuningFromEnv();
  } catch (error) {
    if (error instanceof DtkError) throw error;
    return options; // no access to the environment: the defaults apply
  }
  const out = { ...options };
  for (const [key, value] of Object.entries(env) as [keyof typeof env, number | undefined][]) {
    if (out[key] === undefined && value !== undefined) out[key] = value as T[typeof key];
  }
  return out;
}

export interface DownloadOptions {
  /** Mirror URLs (`http(s)://`, `file://`) or folders, tried before the upstream URLs. */
  mirrors?: readonly string[];
  /** Give up on a source that sends no byte for this long. Default 30 s. */
  stallTimeoutMs?: number;
  /** Tries per source for retryable failures (HTTP errors, resets, stalls). Default 3. */
  attempts?: number;
  /** First backoff; doubles on each retry. Default 500 ms. */
  backoffMs?: number;
  /** Bound of a download whose size is not known; default by kind (`MAX_BYTES_BY_KIND`). */
  maxBytes?: number;
  /**
   * Give up on a source slower than this (bytes/s) over `rateWindowMs`. Default 4096; 0: never.
   * (`DTK_MIN_RATE`, `DTK_RATE_WINDOW_MS`)
   */
  minRate?: number;
  /** The window `minRate` is averaged over. Default 60 s. */
  rateWindowMs?: number;
  /** Give up on one source after this long in all, however fast. Default none. */
  deadlineMs?: number;
  /** Called with the bytes added to the object (resumed bytes count at the start). */
  onProgress?: (event: ProgressEvent) => void;
  /** Warnings and retry notes. */
  log?: (message: string) => void;
  signal?: AbortSignal;
}

export interface ProgressEvent {
  name: string;
  /** Bytes of the object on disk so far. */
  bytes: number;
  total: number | null;
  /** `restart` when bytes went back to 0 (a source ignored Range, or sent wrong bytes). */
  phase: "start" | "data" | "restart" | "done";
}

export interface EnsureResult {
  name: string;
  hex: string;
  /** `present`: there already; `fetched`: downloaded now; `shared`: another process got it. */
  status: "present" | "fetched" | "shared";
  /** Bytes received over the wire (or copied from a local mirror) by this process. */
  transferred: number;
  size: number;
  from?: string;
}

/** The sources of a target, in the order they are tried. */
export function sourcesFor(
  target: Pick<FetchTarget, "hex" | "file" | "urls">,
  mirrors: readonly string[] = [],
): string[] {
  const out: string[] = [];
  for (const raw of mirrors) {
    const mirror = raw.replace(/\/+$/, "");
    if (mirror === "") continue;
    out.push(`${mirror}/sha256/${target.hex}`);
    out.push(`${mirror}/${target.file}`);
  }
  out.push(...target.urls);
  return [...new Set(out)];
}

/** Why one source failed. */
interface Failure {
  source: string;
  reason: string;
  /** The bytes were wrong (hash or size): an integrity failure, not a network one. */
  wrongBytes?: boolean;
}

class SourceError extends Error {
  readonly retryable: boolean;
  readonly wrongBytes: boolean;
  /** What was received is no use for a resume: remove the partial file. */
  readonly discard: boolean;
  constructor(
    message: string,
    options: { retryable?: boolean; wrongBytes?: boolean; discard?: boolean } = {},
  ) {
    super(message);
    this.retryable = options.retryable ?? false;
    this.wrongBytes = options.wrongBytes ?? false;
    this.discard = options.discard ?? this.wrongBytes;
  }
}

/** Download options plus the folder a local source must stay inside. */
type SourceOptions = DownloadOptions & { confine?: string };

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * Makes one object present and verified. Safe to call from several processes at once: one
 * downloads, the others wait on the object lock and find it present. The names in `target.also`
 * are recorded with the target's in the same metadata write.
 *
 * An object whose bytes hash right is never deleted because a lock claims another size: the
 * lock's size is wrong, and the error says so.
 */
export async function ensureObject(
  store: ObjectStore,
  target: FetchTarget,
  options: DownloadOptions = {},
): Promise<EnsureResult> {
  await store.init();
  const cheap = await store.inspect(target.hex, target.size);
  if (cheap.state === "present") {
    const size = cheap.size ?? await store.size(target.hex);
    await recordIfNew(store, target, size);
    return { name: target.name, hex: target.hex, status: "present", transferred: 0, size };
  }
  return await store.withLock(target.hex, async () => {
    const found = await store.inspect(target.hex, target.size);
    let state = found.state;
    if (state === "corrupt") state = await salvage(store, target, found.size, options);
    if (state === "present") {
      const size = await store.size(target.hex);
      await store.recordMeta(target.hex, size, metaInfo(target));
      return {
        name: target.name,
        hex: target.hex,
        status: cheap.state === "missing" ? "shared" : "present",
        transferred: 0,
        size,
      } satisfies EnsureResult;
    }
    return await download(store, target, options);
  }, { stallMs: Math.max(10 * 60_000, (options.stallTimeoutMs ?? 30_000) * 4) });
}

/**
 * An object failed the cheap check. Rehash it before deciding: right bytes are kept (mode and
 * metadata repaired), and a size the lock got wrong is reported, not acted on; only wrong bytes
 * (or a link, a folder) are removed so the object can be fetched again.
 */
async function salvage(
  store: ObjectStore,
  target: FetchTarget,
  size: number | undefined,
  options: DownloadOptions,
): Promise<"present" | "missing"> {
  let actual: string | undefined;
  if (size !== undefined) {
    const file = await store.openObject(target.hex).catch(() => undefined);
    if (file !== undefined) {
      try {
        const hash = createHash("sha256");
        const read = await hashFrom(file, hash);
        if (read === size) actual = hash.digest("hex");
      } finally {
        file.close();
      }
    }
  }
  if (actual === target.hex && size !== undefined) {
    if (target.size !== null && target.size !== size) throw wrongLockSize(target, size);
    await lstatRegular(store.objectPath(target.hex)); // chmod follows links: check first
    await Deno.chmod(store.objectPath(target.hex), 0o444);
    await store.recordMeta(target.hex, size, metaInfo(target));
    options.log?.(`Object ${formatHash(target.hex)} (${target.name}) hashes right; kept it`);
    return "present";
  }
  options.log?.(
    `Object ${formatHash(target.hex)} (${target.name}) failed the size check; fetching it again`,
  );
  await store.remove(target.hex);
  return "missing";
}

/** A lock claims a size the verified object does not have: the lock is wrong, not the object. */
export function wrongLockSize(target: Pick<FetchTarget, "name" | "hex" | "size">, size: number) {
  return new IntegrityError(
    `The lock's size for ${q(target.name)} is wrong: it says ${target.size} bytes, but ` +
      `${formatHash(target.hex)} is ${size} bytes (the object in the store hashes right)`,
    {
      hint: `Correct "size" of ${
        q(target.name)
      } in the lock to ${size} (or null), or re-resolve it with: dtk lock --update`,
    },
  );
}

/** What the metadata records for a target and every other name of its hash. */
function metaInfo(target: FetchTarget) {
  const also = target.also ?? [];
  return {
    names: [target.name, ...also.map((a) => a.name)],
    versions: [target.version, ...also.map((a) => a.version)],
    urls: [...target.urls, ...also.flatMap((a) => a.urls)],
    mediaType: target.mediaType,
  };
}

async function recordIfNew(store: ObjectStore, target: FetchTarget, size: number): Promise<void> {
  const meta = await store.readMeta(target.hex);
  const info = metaInfo(target);
  if (meta !== undefined) {
    // Sets: a lock of 10,000 names over one hash must not compare 10,000 × 10,000.
    const names = new Set(meta.names);
    const urls = new Set(meta.urls);
    if (
      info.names.every((n) => names.has(n)) &&
      info.urls.every((u) => urls.has(u) || u !== redactUrl(u))
    ) return;
  }
  await store.withLock(target.hex, () => store.recordMeta(target.hex, size, info));
}

async function download(
  store: ObjectStore,
  target: FetchTarget,
  given: DownloadOptions,
): Promise<EnsureResult> {
  const options = withEnvLimits(given);
  const sources = sourcesFor(target, options.mirrors);
  const failures: Failure[] = [];
  const attempts = options.attempts ?? 3;
  const backoff = options.backoffMs ?? 500;
  refuseRemoteFileUrls(sources, `Cannot fetch ${q(target.name)}`);
  await checkFreeSpace(store, target);
  for (const source of sources) {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (options.signal?.aborted) throw options.signal.reason;
      try {
        const transferred = await fetchSource(store, target, source, {
          ...options,
          confine: localMirrorOf(source, options.mirrors ?? []),
        });
        const size = await store.size(target.hex);
        await store.recordMeta(target.hex, size, { ...metaInfo(target), from: source });
        options.onProgress?.({ name: target.name, bytes: size, total: size, phase: "done" });
        return {
          name: target.name,
          hex: target.hex,
          status: "fetched",
          transferred,
          size,
          from: source,
        };
      } catch (error) {
        if (!(error instanceof SourceError)) throw error;
        const last = !error.retryable || attempt === attempts;
        if (last) {
          failures.push({
            source,
            reason: error.retryable && attempts > 1
              ? `${error.message} (${attempts} tries)`
              : error.message,
            wrongBytes: error.wrongBytes,
          });
          if (error.retryable || error.wrongBytes) {
            options.log?.(
              `${target.name}: ${redact(source)}: ${error.message}; trying the next source`,
            );
          }
          break;
        }
        const wait = backoff * 2 ** (attempt - 1);
        options.log?.(
          `${target.name}: ${redact(source)}: ${error.message}; retrying in ${
            formatDuration(wait)
          }`,
        );
        await sleep(wait, options.signal);
      }
    }
  }
  throw fetchFailed(target, failures);
}

const redact = redactUrl;

/** A `file://host/…` source names another machine: the user's mistake, refused before any try. */
function refuseRemoteFileUrls(sources: readonly string[], what: string): void {
  for (const source of sources) {
    const problem = fileUrlProblem(source);
    if (problem !== undefined) {
      throw new DtkError(`${what}: ${problem}`, {
        exitCode: ExitCode.usage,
        hint: "Write a local file as file:///path/to/file (three slashes), or use a plain path",
      });
    }
  }
}

function pathToFileUrl(path: string): string {
  return pathToFileURL(resolvePath(path)).href;
}

/** The most bytes a download of `target` may take. */
function byteLimit(target: Pick<FetchTarget, "size" | "kind">, options: DownloadOptions): number {
  if (target.size !== null) return target.size;
  if (options.maxBytes !== undefined && options.maxBytes > 0) return options.maxBytes;
  return MAX_BYTES_BY_KIND[target.kind ?? ""] ?? MAX_BYTES_DEFAULT;
}

function tooBig(kind: string | undefined, limit: number, what: string): SourceError {
  return new SourceError(
    `${what} more than the ${formatBytes(limit)} a ${kind ?? "download"} of unknown size ` +
      `may take (set DTK_MAX_DOWNLOAD_BYTES to allow more, or put "size" in the lock)`,
    { discard: true },
  );
}

/** Bytes free for an unprivileged writer on the filesystem of `path`. */
async function freeBytes(path: string): Promise<number | undefined> {
  try {
    const s = await statfs(path);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined; // not knowable here: the write itself will tell
  }
}

/** Refuses to start a download the store's disk cannot hold, before a byte is written. */
async function checkFreeSpace(store: ObjectStore, target: FetchTarget, need = target.size) {
  if (need === null || need <= 0) return;
  const partial = target.hex === ""
    ? 0
    : await Deno.lstat(store.partialPath(target.hex)).then((s) => s.size, () => 0);
  const free = await freeBytes(`${store.dir}/tmp`);
  if (free !== undefined && free < need - partial) {
    throw new DtkError(
      `Not enough space in the store for ${q(target.name)}: it needs ${
        formatBytes(need - partial)
      }, ${formatBytes(free)} is free on ${q(store.dir)}`,
      {
        hint:
          "Free disk space (dtk store gc removes objects no lock uses), or point DTK_STORE at a larger disk",
      },
    );
  }
}

/**
 * The folder a local source must stay in: a source under a local mirror (an export being
 * imported, a `--mirror DIR`) may not lead out of it through a link.
 */
function localMirrorOf(source: string, mirrors: readonly string[]): string | undefined {
  if (/^(https?|oci):\/\//.test(source)) return undefined;
  for (const raw of mirrors) {
    const mirror = raw.replace(/\/+$/, "");
    if (mirror === "" || /^(https?|oci):\/\//.test(mirror)) continue;
    if (source.startsWith(`${mirror}/`)) {
      return mirror.startsWith("file:") ? fromFileUrl(mirror) : mirror;
    }
  }
  return undefined;
}

function fetchFailed(target: FetchTarget, failures: Failure[]): DtkError {
  const lines = failures.map((f) => `  ${redact(f.source)}: ${f.reason}`).join("\n");
  const wrong = failures.some((f) => f.wrongBytes);
  const message = failures.length === 0
    ? `Cannot fetch ${q(target.name)} (${formatHash(target.hex)}): it has no URL and no mirror`
    : `Cannot fetch ${q(target.name)}: no source had the expected bytes\n` +
      `  expected ${formatHash(target.hex)}${
        target.size === null ? "" : `, ${target.size} bytes`
      }\n` +
      lines;
  const hint = wrong
    ? "A source served different bytes. If upstream republished the file on purpose, review it and re-lock with: dtk lock --update; otherwise try another --mirror"
    : "Check the network or add a source: --mirror URL|DIR, or put the file in with: dtk store add FILE";
  const options = { hint };
  return wrong ? new IntegrityError(message, options) : new DtkError(message, options);
}

/** Fetches one source into place; returns the bytes transferred. Throws `SourceError`. */
async function fetchSource(
  store: ObjectStore,
  target: FetchTarget,
  source: string,
  options: SourceOptions,
): Promise<number> {
  if (source.startsWith("http://") || source.startsWith("https://")) {
    const headers = target.headers !== undefined && target.urls.includes(source)
      ? await target.headers()
      : {};
    return await fetchHttp(store, target, source, headers, options);
  }
  if (source.startsWith("oci://")) {
    let chart;
    try {
      chart = await resolveOciChart(source, { signal: options.signal });
    } catch (error) {
      if (error instanceof OciHttpError) {
        throw new SourceError(error.message, { retryable: true });
      }
      if (error instanceof DtkError) throw new SourceError(error.message);
      throw new SourceError(`network error: ${(error as Error).message}`, { retryable: true });
    }
    if (chart.hex !== target.hex) {
      throw new SourceError(`the registry serves a different chart: ${formatHash(chart.hex)}`, {
        wrongBytes: true,
      });
    }
    return await fetchHttp(store, target, chart.blobUrl, chart.headers, options);
  }
  return await copyLocal(store, target, source, options);
}

/**
 * What resumes a partial download: the URL as shown (credentials redacted), the sha256 of the
 * URL as used (so a URL with a token still resumes, without the token on disk), the validator.
 */
interface PartialState {
  url: string;
  key?: string;
  validator: string;
}

function urlKey(url: string): string {
  return createHash("sha256").update(url).digest("hex");
}

async function readState(path: string): Promise<PartialState | undefined> {
  try {
    // Never through a link or from a FIFO planted beside the partial.
    const text = await readRegularText(path);
    return text === undefined ? undefined : JSON.parse(text) as PartialState;
  } catch {
    return undefined;
  }
}

function sameSource(state: PartialState | undefined, url: string): boolean {
  return state?.key !== undefined ? state.key === urlKey(url) : state?.url === url;
}

async function discardPartial(partial: string): Promise<void> {
  await Deno.remove(partial).catch(() => {});
  await Deno.remove(`${partial}.json`).catch(() => {});
}

async function fetchHttp(
  store: ObjectStore,
  target: FetchTarget,
  url: string,
  extraHeaders: Record<string, string>,
  options: DownloadOptions,
): Promise<number> {
  const partial = store.partialPath(target.hex);
  const statePath = `${partial}.json`;
  const limit = byteLimit(target, options);
  const existing = await Deno.lstat(partial).catch(() => undefined);
  let offset = existing?.isFile ? existing.size : 0;
  // A link or anything else planted as the partial is never written through: remove it.
  if (existing !== undefined && !existing.isFile) await discardPartial(partial);
  const state = offset > 0 ? await readState(statePath) : undefined;
  // Resume only what the same URL started, and only when it names the version it served.
  if (offset > 0 && (!sameSource(state, url) || !state?.validator)) {
    await discardPartial(partial);
    offset = 0;
  }
  if (offset > limit) {
    await discardPartial(partial);
    offset = 0;
  }
  const headers: Record<string, string> = { ...extraHeaders, "Accept-Encoding": "identity" };
  if (offset > 0 && state) {
    headers.Range = `bytes=${offset}-`;
    headers["If-Range"] = state.validator;
  }
  const controller = new AbortController();
  const watch = progressWatch(options, () => controller.abort());
  const onAbort = () => controller.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let file: Deno.FsFile | undefined;
  let received = 0;
  try {
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: controller.signal, redirect: "follow" });
    } catch (error) {
      throw new SourceError(
        watch.reason !== undefined
          ? `no response: ${watch.reason}`
          : `network error: ${errText(error)}`,
        { retryable: true },
      );
    }
    let hash: Hash = createHash("sha256");
    if (res.status === 206 && offset > 0) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
      if (!range || Number(range[1]) !== offset) {
        await res.body?.cancel();
        await discardPartial(partial);
        throw new SourceError(`bad Content-Range ${q(res.headers.get("content-range"))}`, {
          retryable: true,
        });
      }
      try {
        file = await openRegular(partial, { read: true, write: true });
      } catch (error) {
        await res.body?.cancel();
        await discardPartial(partial);
        throw new SourceError(`the partial download changed under dtk: ${errText(error)}`, {
          retryable: true,
        });
      }
      // The hash covers the whole object: feed it the bytes already on disk first.
      await hashFrom(file, hash, { length: offset });
      await file.seek(offset, Deno.SeekMode.Start);
      options.log?.(`${target.name}: resuming at byte ${offset} from ${redact(url)}`);
    } else if (res.status === 200) {
      if (offset > 0) {
        // The server ignored Range, or the file changed (If-Range): start over.
        options.onProgress?.({ name: target.name, bytes: 0, total: target.size, phase: "restart" });
      }
      offset = 0;
      hash = createHash("sha256");
      try {
        file = await createFresh(partial);
      } catch (error) {
        await res.body?.cancel();
        throw storeUnwritable(store.dir, error);
      }
    } else if (res.status === 416) {
      await res.body?.cancel();
      await discardPartial(partial);
      throw new SourceError("HTTP 416 for a resumed range; starting over", { retryable: true });
    } else {
      await res.body?.cancel();
      throw new SourceError(`HTTP ${res.status}`, { retryable: true });
    }
    const length = res.headers.get("content-length");
    if (length !== null && target.size !== null && offset + Number(length) !== target.size) {
      await res.body?.cancel();
      if (offset > 0) await discardPartial(partial);
      throw new SourceError(
        `wrong size: the server announces ${
          offset + Number(length)
        } bytes, expected ${target.size}`,
        { wrongBytes: true },
      );
    }
    if (length !== null && target.size === null) {
      if (offset + Number(length) > limit) {
        await res.body?.cancel();
        await discardPartial(partial);
        throw tooBig(target.kind, limit, `the server announces ${offset + Number(length)} bytes,`);
      }
      await checkFreeSpace(store, target, offset + Number(length)).catch(async (error) => {
        await res.body?.cancel();
        throw error;
      });
    }
    const validator = res.headers.get("etag") ?? res.headers.get("last-modified");
    if (validator && !/^W\//.test(validator)) {
      const saved: PartialState = { url: redact(url), key: urlKey(url), validator };
      await writeFileAtomic(statePath, JSON.stringify(saved));
    } else {
      await Deno.remove(statePath).catch(() => {});
    }
    options.onProgress?.({ name: target.name, bytes: offset, total: target.size, phase: "start" });
    let total = offset;
    try {
      await drain(new HashingWriter(file, hash), partial, {
        pump: (sink) =>
          pumpBody(res.body!, sink, {
            onRead: (n) => {
              watch.touch(n);
              received += n;
              total += n;
              if (target.size !== null && total > target.size) {
                throw new SourceError(`wrong size: more than the expected ${target.size} bytes`, {
                  wrongBytes: true,
                });
              }
              if (total > limit) throw tooBig(target.kind, limit, "the body is");
              options.onProgress?.({
                name: target.name,
                bytes: total,
                total: target.size,
                phase: "data",
              });
            },
          }),
        lost: (error) =>
          watch.reason !== undefined
            ? `${watch.reason} after ${total} bytes`
            : `connection lost after ${total} bytes: ${errText(error)}`,
        retryable: true,
      });
    } catch (error) {
      if (error instanceof SourceError && error.discard) await discardPartial(partial);
      throw error;
    }
    if (target.size !== null && total !== target.size) {
      await discardPartial(partial);
      throw new SourceError(`wrong size: got ${total} bytes, expected ${target.size}`, {
        wrongBytes: true,
      });
    }
    const actual = hash.digest("hex");
    if (actual !== target.hex) {
      await discardPartial(partial);
      throw new SourceError(`wrong bytes: got ${formatHash(actual)} (${total} bytes)`, {
        wrongBytes: true,
      });
    }
    await file.sync();
    const written = await file.stat();
    file.close();
    file = undefined;
    await store.commit(partial, target.hex, written);
    await Deno.remove(statePath).catch(() => {});
    return received;
  } finally {
    watch.stop();
    options.signal?.removeEventListener("abort", onAbort);
    file?.close();
  }
}

/**
 * Gives up on a transfer (calls `onGiveUp` once, and says why in `reason`) when no byte came for
 * `stallTimeoutMs`, when fewer than `minRate` bytes/s came over the last `rateWindowMs`, or past
 * `deadlineMs`. One timer ticks; re-arming a timer on every network read costs more than that.
 */
function progressWatch(
  options: Pick<DownloadOptions, "stallTimeoutMs" | "minRate" | "rateWindowMs" | "deadlineMs">,
  onGiveUp: () => void,
): { touch(n?: number): void; stop(): void; readonly reason: string | undefined } {
  const stallMs = options.stallTimeoutMs ?? 30_000;
  const minRate = options.minRate ?? MIN_RATE_DEFAULT;
  const windowMs = options.rateWindowMs ?? RATE_WINDOW_DEFAULT;
  const deadlineMs = options.deadlineMs ?? 0;
  const started = performance.now();
  let last = started;
  let bytes = 0;
  let reason: string | undefined;
  /** (time, bytes) once per tick, as far back as the rate window. */
  const samples: [number, number][] = [[started, 0]];
  const period = Math.max(10, Math.min(1000, stallMs / 4, windowMs / 4));
  const giveUp = (why: string) => {
    reason = why;
    clearInterval(timer);
    onGiveUp();
  };
  const timer = setInterval(() => {
    const now = performance.now();
    if (now - last >= stallMs) return giveUp(`stalled: no data for ${formatDuration(stallMs)}`);
    if (deadlineMs > 0 && now - started >= deadlineMs) {
      return giveUp(
        `gave up after ${
          formatDuration(deadlineMs)
        }, the deadline per artifact (DTK_FETCH_DEADLINE_MS)`,
      );
    }
    samples.push([now, bytes]);
    while (samples.length > 1 && now - samples[1]![0] >= windowMs) samples.shift();
    const [then, before] = samples[0]!;
    if (minRate > 0 && now - then >= windowMs) {
      const rate = (bytes - before) / ((now - then) / 1000);
      if (rate < minRate) {
        return giveUp(
          `too slow: ${formatBytes(rate)}/s over the last ${formatDuration(now - then)}, below ` +
            `the minimum of ${formatBytes(minRate)}/s (DTK_MIN_RATE)`,
        );
      }
    }
  }, period);
  return {
    touch: (n = 0) => {
      last = performance.now();
      bytes += n;
    },
    stop: () => clearInterval(timer),
    get reason() {
      return reason;
    },
  };
}

/**
 * Runs `pump` into `sink` and flushes it; returns the bytes written. On failure, writes in flight
 * land first (the file stays a valid prefix for a resume), then the failure is sorted: a failed
 * write is the store's problem, which no other source can cure; a `SourceError` from the
 * caller's checks passes as it is; anything else is the source failing, described by `lost`.
 */
async function drain(
  sink: HashingWriter,
  path: string,
  options: {
    pump: (sink: HashingWriter) => Promise<void>;
    lost: (error: unknown) => string;
    retryable: boolean;
  },
): Promise<number> {
  try {
    await options.pump(sink);
    return await sink.finish();
  } catch (error) {
    await sink.abandon();
    if (sink.writeError) {
      // A full disk: what was written is no use and the space is wanted back at once.
      if (isDiskFull(sink.writeError)) await discardPartial(path);
      throw storeWriteFailed(path, sink.writeError);
    }
    if (error instanceof SourceError) throw error;
    throw new SourceError(options.lost(error), { retryable: options.retryable });
  }
}

/** The store itself cannot take the bytes: no source will do better, so stop at once. */
function isDiskFull(error: Error): boolean {
  return /ENOSPC|no space/i.test(error.message);
}

function storeWriteFailed(path: string, cause: Error): DtkError {
  const full = isDiskFull(cause);
  return new DtkError(`Cannot write to the store at ${q(path)}: ${errText(cause)}`, {
    hint: full
      ? "Free disk space (dtk store gc removes objects no lock uses), or point DTK_STORE at a larger disk"
      : "Check the store folder's permissions and disk, or point DTK_STORE elsewhere",
    cause,
  });
}

function errText(error: unknown): string {
  const e = error as Error;
  return (e?.message ?? String(error)).split("\n")[0] ?? "";
}

/**
 * Opens a local source for reading. Checked before the open: a FIFO or device would block or
 * never end, and a source under a mirror (`confine`) may not lead out of it through a link.
 * The descriptor must then be the file that was checked.
 */
async function openLocalSource(
  source: string,
  confine: string | undefined,
): Promise<{ file: Deno.FsFile; info: Deno.FileInfo }> {
  const path = source.startsWith("file:") ? fromFileUrl(source) : source;
  let info: Deno.FileInfo;
  try {
    if (confine !== undefined) {
      const real = await Deno.realPath(path);
      const root = await Deno.realPath(confine);
      if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) {
        throw new SourceError(`a link out of the folder ${q(confine)} (to ${q(real)}); refused`);
      }
    }
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof SourceError) throw error;
    if (error instanceof Deno.errors.NotFound) throw new SourceError("not found");
    throw new SourceError(`cannot read: ${errText(error)}`);
  }
  if (!info.isFile) throw new SourceError(`${fileKind(info)}, not a regular file; refused`);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new SourceError("not found");
    throw new SourceError(`cannot read: ${errText(error)}`);
  }
  const opened = await file.stat();
  if (!opened.isFile || !sameFile(info, opened)) {
    file.close();
    throw new SourceError("replaced while being opened; refused");
  }
  return { file, info: opened };
}

/** A `file://` URL or a plain path: copy through the hash. */
async function copyLocal(
  store: ObjectStore,
  target: FetchTarget,
  source: string,
  options: SourceOptions,
): Promise<number> {
  const temp = store.tempPath();
  let committed = false;
  try {
    const { hex, size, written } = await copyToTemp(store, source, temp, {
      confine: options.confine,
      size: target.size,
      limit: byteLimit(target, options),
      kind: target.kind,
      reserve: (size) => checkFreeSpace(store, target, size),
      onProgress: (bytes, phase) =>
        options.onProgress?.({ name: target.name, bytes, total: target.size, phase }),
    });
    if (hex !== target.hex) {
      throw new SourceError(`wrong bytes: got ${formatHash(hex)} (${size} bytes)`, {
        wrongBytes: true,
      });
    }
    await store.commit(temp, target.hex, written);
    committed = true;
    return size;
  } finally {
    if (!committed) await Deno.remove(temp).catch(() => {});
  }
}

/**
 * Copies a local source into the new file `temp` through the hash and fsyncs it: the one copy
 * loop for an object whose hash is pinned (`copyLocal`) and for one whose hash is to be learned
 * (`streamToTemp`). A file of another size than a pinned `size`, or over `limit`, is refused
 * before `temp` is made, and again if it grows while being read; `reserve` may refuse a file the
 * store's disk cannot hold.
 */
async function copyToTemp(
  store: ObjectStore,
  source: string,
  temp: string,
  options: {
    confine?: string;
    size: number | null;
    limit: number;
    kind?: string;
    reserve?: (size: number) => Promise<void>;
    onProgress?: (bytes: number, phase: "start" | "data") => void;
  },
): Promise<{ hex: string; size: number; written: Deno.FileInfo }> {
  const { limit, kind } = options;
  const { file: input, info } = await openLocalSource(source, options.confine);
  let output: Deno.FsFile | undefined;
  try {
    if (options.size !== null && info.size !== options.size) {
      throw new SourceError(`wrong size: ${info.size} bytes, expected ${options.size}`, {
        wrongBytes: true,
      });
    }
    if (info.size > limit) throw tooBig(kind, limit, `the file has ${info.size} bytes,`);
    await options.reserve?.(info.size);
    output = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 }).catch(
      (error) => {
        throw storeUnwritable(store.dir, error);
      },
    );
    options.onProgress?.(0, "start");
    const hash = createHash("sha256");
    let total = 0;
    await drain(new HashingWriter(output, hash), temp, {
      pump: (sink) =>
        pumpFile(input, sink, {
          onRead: (n) => {
            total += n;
            if (total > limit) throw tooBig(kind, limit, "the file grew to");
            options.onProgress?.(total, "data");
          },
        }),
      lost: (error) => `cannot read after ${total} bytes: ${errText(error)}`,
      retryable: false,
    });
    await output.sync();
    const written = await output.stat();
    return { hex: hash.digest("hex"), size: total, written };
  } finally {
    input.close();
    output?.close();
  }
}

/**
 * Downloads an artifact whose hash is not known yet (`dtk lock` of an unpinned artifact with no
 * publisher checksum) into the store and returns its hash and size.
 */
export async function fetchUnknown(
  store: ObjectStore,
  name: string,
  sources: readonly string[],
  given: DownloadOptions & { kind?: string } = {},
): Promise<{ hex: string; size: number; from: string }> {
  const options = withEnvLimits(given);
  await store.init();
  refuseRemoteFileUrls(sources, `Cannot download ${q(name)}`);
  const failures: Failure[] = [];
  const attempts = options.attempts ?? 3;
  for (const source of sources) {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const temp = store.tempPath();
      try {
        const { hex, size, written } = await streamToTemp(store, source, temp, options);
        await store.withLock(hex, async () => {
          if (await store.check(hex, size) === "present") {
            await Deno.remove(temp).catch(() => {});
          } else {
            await store.commit(temp, hex, written);
          }
          await store.recordMeta(hex, size, { name, urls: sources, from: source });
        });
        return { hex, size, from: source };
      } catch (error) {
        await Deno.remove(temp).catch(() => {});
        if (!(error instanceof SourceError)) throw error;
        if (!error.retryable || attempt === attempts) {
          failures.push({ source, reason: error.message });
          break;
        }
        await sleep((options.backoffMs ?? 500) * 2 ** (attempt - 1), options.signal);
      }
    }
  }
  const lines = failures.map((f) => `  ${redact(f.source)}: ${f.reason}`).join("\n");
  throw new DtkError(`Cannot download ${q(name)} to compute its hash\n${lines}`, {
    hint: "Check the network, or add a mirror with --mirror",
  });
}

/**
 * `dtk store add`: the kernel copies the file into `tmp/` (`copy_file_range`, a reflink on btrfs
 * or XFS), and the copy is hashed from the page cache while it is being fsynced: the disk reads
 * the source once and writes the object once, and the hash is of the very bytes that become the
 * object. Copying through dtk's own buffers instead was twice as slow as `cp` on a plain disk.
 * The source must be a regular file (a FIFO would block) that does not change meanwhile. With
 * `expected`, a file of another hash is refused and nothing is kept.
 */
export async function addLocalFile(
  store: ObjectStore,
  path: string,
  options: { name: string; expected?: string },
): Promise<{ hex: string; size: number; status: "added" | "present" }> {
  await store.init();
  const refuse = (reason: string, exitCode: ExitCodeValue = ExitCode.failure) =>
    new DtkError(`Cannot add ${q(path)}: ${reason}`, {
      exitCode,
      hint: "Give a regular file that nothing is writing to",
    });
  let before: Deno.FileInfo;
  try {
    const opened = await openLocalSource(path, undefined);
    before = opened.info;
    opened.file.close();
  } catch (error) {
    if (!(error instanceof SourceError)) throw error;
    throw refuse(error.message, error.message === "not found" ? ExitCode.usage : ExitCode.failure);
  }
  await checkFreeSpace(store, {
    name: options.name,
    hex: "",
    size: before.size,
    file: "",
    urls: [],
  });
  const temp = store.tempPath();
  try {
    try {
      await Deno.copyFile(path, temp);
    } catch (error) {
      throw storeUnwritable(store.dir, error);
    }
    const output = await openRegular(temp, { read: true, write: true });
    let hex: string;
    let written: Deno.FileInfo;
    try {
      written = await output.stat();
      // fsync on one descriptor while a second one reads the copy back through the hash.
      const syncing = output.sync();
      const reader = await openRegular(temp);
      try {
        const hash = createHash("sha256");
        const read = await hashFrom(reader, hash);
        if (read !== written.size) throw refuse("the copy changed while it was hashed");
        hex = hash.digest("hex");
      } finally {
        reader.close();
        await syncing.catch(() => {});
      }
      await syncing;
    } finally {
      output.close();
    }
    const after = await Deno.stat(path).catch(() => undefined);
    if (
      after === undefined || !sameFile(before, after) || after.size !== before.size ||
      after.size !== written.size || after.mtime?.getTime() !== before.mtime?.getTime()
    ) {
      throw refuse("it changed while it was being copied");
    }
    if (options.expected !== undefined && options.expected !== hex) {
      throw new IntegrityError(
        `${q(path)} does not match: expected ${formatHash(options.expected)}, got ${
          formatHash(hex)
        }`,
        { hint: "Check that it is the right file" },
      );
    }
    const size = written.size;
    const url = pathToFileUrl(path);
    return await store.withLock(hex, async () => {
      const present = await store.check(hex, size) === "present";
      if (!present) await store.commit(temp, hex, written);
      await store.recordMeta(hex, size, { name: options.name, urls: [url], from: url });
      return { hex, size, status: present ? "present" as const : "added" as const };
    });
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

async function streamToTemp(
  store: ObjectStore,
  source: string,
  temp: string,
  options: DownloadOptions & { kind?: string },
): Promise<{ hex: string; size: number; written: Deno.FileInfo }> {
  let url = source;
  const headers: Record<string, string> = {};
  if (source.startsWith("oci://")) {
    try {
      const chart = await resolveOciChart(source, { signal: options.signal });
      url = chart.blobUrl;
      Object.assign(headers, chart.headers);
    } catch (error) {
      throw new SourceError((error as Error).message, { retryable: error instanceof OciHttpError });
    }
  }
  const limit = byteLimit({ size: null, kind: options.kind }, options);
  if (!/^https?:\/\//.test(url)) {
    return await copyToTemp(store, url, temp, { size: null, limit, kind: options.kind });
  }
  const hash = createHash("sha256");
  const out = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 }).catch(
    (error) => {
      throw storeUnwritable(store.dir, error);
    },
  );
  const sink = new HashingWriter(out, hash);
  const controller = new AbortController();
  const watch = progressWatch(options, () => controller.abort());
  try {
    const res = await fetch(url, { headers, signal: controller.signal }).catch((e) => {
      throw new SourceError(`network error: ${watch.reason ?? errText(e)}`, { retryable: true });
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new SourceError(`HTTP ${res.status}`, { retryable: true });
    }
    const length = res.headers.get("content-length");
    if (length !== null && Number(length) > limit) {
      await res.body?.cancel();
      throw tooBig(options.kind, limit, `the server announces ${length} bytes,`);
    }
    const size = await drain(sink, temp, {
      pump: (s) =>
        pumpBody(res.body!, s, {
          onRead: (n) => {
            watch.touch(n);
            if (sink.bytes > limit) throw tooBig(options.kind, limit, "the download is");
          },
        }),
      lost: (error) =>
        watch.reason !== undefined
          ? `${watch.reason} after ${sink.bytes} bytes`
          : `connection lost after ${sink.bytes} bytes: ${errText(error)}`,
      retryable: true,
    });
    await out.sync();
    return { hex: hash.digest("hex"), size, written: await out.stat() };
  } finally {
    watch.stop();
    out.close();
  }
}
