/**
 * Getting verified bytes into the store. Per object: a cheap presence check, then, holding the
 * object's lock, each source in turn (mirrors by hash, mirrors by file name, upstream URLs):
 * stream through sha256 into `tmp/<hex>.partial`, fsync, check size and hash, rename into
 * `objects/`. Interrupted downloads resume with `Range` + `If-Range`.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { fileURLToPath as fromFileUrl } from "node:url";
import { DtkError, formatDuration, IntegrityError, q } from "../lib/errors/mod.ts";
import { writeFileAtomic } from "../lib/fs/mod.ts";
import { formatHash, hashFrom } from "./_hash.ts";
import { HashingWriter, pumpBody, pumpFile } from "./_sink.ts";
import type { ObjectStore } from "./_objects.ts";
import { OciHttpError, resolveOciChart } from "./_oci.ts";

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
  /** Headers for requests to `urls` (not mirrors), asked for at each try: a registry token. */
  headers?: () => Promise<Record<string, string>>;
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
  constructor(message: string, options: { retryable?: boolean; wrongBytes?: boolean } = {}) {
    super(message);
    this.retryable = options.retryable ?? false;
    this.wrongBytes = options.wrongBytes ?? false;
  }
}

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
 * downloads, the others wait on the object lock and find it present.
 */
export async function ensureObject(
  store: ObjectStore,
  target: FetchTarget,
  options: DownloadOptions = {},
): Promise<EnsureResult> {
  await store.init();
  const cheap = await store.check(target.hex, target.size);
  if (cheap === "present") {
    const size = await store.size(target.hex);
    await recordIfNew(store, target, size);
    return { name: target.name, hex: target.hex, status: "present", transferred: 0, size };
  }
  return await store.withLock(target.hex, async () => {
    const state = await store.check(target.hex, target.size);
    if (state === "present") {
      const size = await store.size(target.hex);
      await store.recordMeta(target.hex, size, {
        name: target.name,
        version: target.version,
        urls: target.urls,
        mediaType: target.mediaType,
      });
      return {
        name: target.name,
        hex: target.hex,
        status: cheap === "missing" ? "shared" : "present",
        transferred: 0,
        size,
      } satisfies EnsureResult;
    }
    if (state === "corrupt") {
      options.log?.(
        `Object ${
          formatHash(target.hex)
        } (${target.name}) failed the size check; fetching it again`,
      );
      await store.remove(target.hex);
    }
    return await download(store, target, options);
  }, { stallMs: Math.max(10 * 60_000, (options.stallTimeoutMs ?? 30_000) * 4) });
}

async function recordIfNew(store: ObjectStore, target: FetchTarget, size: number): Promise<void> {
  const meta = await store.readMeta(target.hex);
  if (meta?.names.includes(target.name) && target.urls.every((u) => meta.urls.includes(u))) return;
  await store.withLock(target.hex, () =>
    store.recordMeta(target.hex, size, {
      name: target.name,
      version: target.version,
      urls: target.urls,
      mediaType: target.mediaType,
    }));
}

async function download(
  store: ObjectStore,
  target: FetchTarget,
  options: DownloadOptions,
): Promise<EnsureResult> {
  const sources = sourcesFor(target, options.mirrors);
  const failures: Failure[] = [];
  const attempts = options.attempts ?? 3;
  const backoff = options.backoffMs ?? 500;
  for (const source of sources) {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (options.signal?.aborted) throw options.signal.reason;
      try {
        const transferred = await fetchSource(store, target, source, options);
        const size = await store.size(target.hex);
        await store.recordMeta(target.hex, size, {
          name: target.name,
          version: target.version,
          urls: target.urls,
          from: source,
          mediaType: target.mediaType,
        });
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

function redact(url: string): string {
  return url.replace(/\/\/[^/@]*@/, "//");
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
  options: DownloadOptions,
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

interface PartialState {
  url: string;
  validator: string;
}

async function readState(path: string): Promise<PartialState | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as PartialState;
  } catch {
    return undefined;
  }
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
  const stallMs = options.stallTimeoutMs ?? 30_000;
  let offset = await Deno.stat(partial).then((s) => s.size, () => 0);
  const state = offset > 0 ? await readState(statePath) : undefined;
  // Resume only what the same URL started, and only when it names the version it served.
  if (offset > 0 && (state?.url !== url || !state.validator)) {
    await discardPartial(partial);
    offset = 0;
  }
  if (target.size !== null && offset > target.size) {
    await discardPartial(partial);
    offset = 0;
  }
  const headers: Record<string, string> = { ...extraHeaders, "Accept-Encoding": "identity" };
  if (offset > 0 && state) {
    headers.Range = `bytes=${offset}-`;
    headers["If-Range"] = state.validator;
  }
  const controller = new AbortController();
  let stalled = false;
  const watch = stallWatch(stallMs, () => {
    stalled = true;
    controller.abort();
  });
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
        stalled
          ? `no response within ${formatDuration(stallMs)}`
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
      file = await Deno.open(partial, { read: true, write: true });
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
      file = await Deno.open(partial, { write: true, create: true, truncate: true });
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
    const validator = res.headers.get("etag") ?? res.headers.get("last-modified");
    if (validator && !/^W\//.test(validator)) {
      await writeFileAtomic(statePath, JSON.stringify({ url, validator }));
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
              watch.touch();
              received += n;
              total += n;
              if (target.size !== null && total > target.size) {
                throw new SourceError(`wrong size: more than the expected ${target.size} bytes`, {
                  wrongBytes: true,
                });
              }
              options.onProgress?.({
                name: target.name,
                bytes: total,
                total: target.size,
                phase: "data",
              });
            },
          }),
        lost: (error) =>
          stalled
            ? `stalled: no data for ${formatDuration(stallMs)} after ${total} bytes`
            : `connection lost after ${total} bytes: ${errText(error)}`,
        retryable: true,
      });
    } catch (error) {
      if (error instanceof SourceError && error.wrongBytes) await discardPartial(partial);
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
    file.close();
    file = undefined;
    await store.commit(partial, target.hex);
    await Deno.remove(statePath).catch(() => {});
    return received;
  } finally {
    watch.stop();
    options.signal?.removeEventListener("abort", onAbort);
    file?.close();
  }
}

/**
 * Calls `onStall` once `touch` has not been called for `ms`. One timer per period checks the time
 * of the last touch: re-arming a timer on every network read costs more than the check.
 */
function stallWatch(ms: number, onStall: () => void): { touch(): void; stop(): void } {
  let last = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = () => {
    const idle = performance.now() - last;
    if (idle >= ms) onStall();
    else timer = setTimeout(check, ms - idle);
  };
  timer = setTimeout(check, ms);
  return {
    touch: () => {
      last = performance.now();
    },
    stop: () => clearTimeout(timer),
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
    if (sink.writeError) throw storeWriteFailed(path, sink.writeError);
    if (error instanceof SourceError) throw error;
    throw new SourceError(options.lost(error), { retryable: options.retryable });
  }
}

/** The store itself cannot take the bytes: no source will do better, so stop at once. */
function storeWriteFailed(path: string, cause: Error): DtkError {
  const full = /ENOSPC|no space/i.test(cause.message);
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

/** A `file://` URL or a plain path: copy through the hash. */
async function copyLocal(
  store: ObjectStore,
  target: FetchTarget,
  source: string,
  options: DownloadOptions,
): Promise<number> {
  const path = source.startsWith("file://") ? fromFileUrl(source) : source;
  let input: Deno.FsFile;
  try {
    input = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new SourceError("not found");
    throw new SourceError(`cannot read: ${errText(error)}`);
  }
  const temp = store.tempPath();
  const output = await Deno.open(temp, { write: true, createNew: true });
  let committed = false;
  try {
    const info = await input.stat();
    if (!info.isFile) throw new SourceError("not a regular file");
    if (target.size !== null && info.size !== target.size) {
      throw new SourceError(`wrong size: ${info.size} bytes, expected ${target.size}`, {
        wrongBytes: true,
      });
    }
    options.onProgress?.({ name: target.name, bytes: 0, total: target.size, phase: "start" });
    const hash = createHash("sha256");
    let total = 0;
    await drain(new HashingWriter(output, hash), temp, {
      pump: (sink) =>
        pumpFile(input, sink, {
          onRead: (n) => {
            total += n;
            options.onProgress?.({
              name: target.name,
              bytes: total,
              total: target.size,
              phase: "data",
            });
          },
        }),
      lost: (error) => `cannot read after ${total} bytes: ${errText(error)}`,
      retryable: false,
    });
    const actual = hash.digest("hex");
    if (actual !== target.hex) {
      throw new SourceError(`wrong bytes: got ${formatHash(actual)} (${total} bytes)`, {
        wrongBytes: true,
      });
    }
    await output.sync();
    output.close();
    await store.commit(temp, target.hex);
    committed = true;
    return total;
  } finally {
    input.close();
    if (!committed) {
      try {
        output.close();
      } catch { /* closed */ }
      await Deno.remove(temp).catch(() => {});
    }
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
  options: DownloadOptions = {},
): Promise<{ hex: string; size: number; from: string }> {
  await store.init();
  const failures: Failure[] = [];
  const attempts = options.attempts ?? 3;
  for (const source of sources) {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const temp = store.tempPath();
      try {
        const { hex, size } = await streamToTemp(source, temp, options);
        await store.withLock(hex, async () => {
          if (await store.check(hex, size) === "present") {
            await Deno.remove(temp).catch(() => {});
          } else {
            await store.commit(temp, hex);
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

async function streamToTemp(
  source: string,
  temp: string,
  options: DownloadOptions,
): Promise<{ hex: string; size: number }> {
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
  const hash = createHash("sha256");
  const out = await Deno.open(temp, { write: true, createNew: true });
  const sink = new HashingWriter(out, hash);
  let size: number;
  try {
    if (!/^https?:\/\//.test(url)) {
      const path = url.startsWith("file://") ? fromFileUrl(url) : url;
      const input = await Deno.open(path, { read: true }).catch(() => {
        throw new SourceError("not found");
      });
      try {
        size = await drain(sink, temp, {
          pump: (s) => pumpFile(input, s),
          lost: (error) => `cannot read after ${sink.bytes} bytes: ${errText(error)}`,
          retryable: false,
        });
      } finally {
        input.close();
      }
    } else {
      const controller = new AbortController();
      const watch = stallWatch(options.stallTimeoutMs ?? 30_000, () => controller.abort());
      try {
        const res = await fetch(url, { headers, signal: controller.signal }).catch((e) => {
          throw new SourceError(`network error: ${errText(e)}`, { retryable: true });
        });
        if (!res.ok) {
          await res.body?.cancel();
          throw new SourceError(`HTTP ${res.status}`, { retryable: true });
        }
        size = await drain(sink, temp, {
          pump: (s) => pumpBody(res.body!, s, { onRead: watch.touch }),
          lost: (error) => `connection lost after ${sink.bytes} bytes: ${errText(error)}`,
          retryable: true,
        });
      } finally {
        watch.stop();
      }
    }
    await out.sync();
  } finally {
    out.close();
  }
  return { hex: hash.digest("hex"), size };
}
