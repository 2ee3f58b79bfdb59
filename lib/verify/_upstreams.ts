/**
 * `dtk verify upstreams`: every URL of the lock still answers, and where the publisher states a
 * checksum, it still is the hash the lock pins. The original only ran `curl --head` and always
 * exited 0; here any problem is reported and fails the command, and every request is bounded.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { ArtifactSpec, ChecksumSource } from "../catalog/mod.ts";
import { formatDuration } from "../errors/mod.ts";
import {
  artifactFileName,
  artifactHex,
  fetchSmallText,
  findChecksum,
  findInHelmIndex,
  type LockArtifact,
  type Lockfile,
  resolveOciChart,
} from "../../store/mod.ts";
import { parse as parseYaml } from "yaml";

/**
 * `ok`; `unreachable`: the URL (or checksum file) does not answer with the artifact;
 * `checksum-changed`: the publisher now states another hash; `checksum-missing`: the publisher's
 * file no longer lists the artifact.
 */
export type UpstreamStatus = "ok" | "unreachable" | "checksum-changed" | "checksum-missing";

export interface UpstreamResult {
  artifact: string;
  check: "url" | "checksum";
  url: string;
  status: UpstreamStatus;
  /** How it answered, e.g. `HEAD 200`, `GET 206` (after HEAD was refused), `file`, `oci`. */
  via?: string;
  /** For checksums: the lock's sha256 and the publisher's. */
  expected?: string;
  actual?: string;
  detail?: string;
}

export interface UpstreamReport {
  results: UpstreamResult[];
  problems: number;
  elapsedMs: number;
}

export interface TextFetchOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface VerifyUpstreamsOptions {
  /** The config's catalogue specs: they name the publisher checksum of pinned artifacts too. */
  specs?: readonly ArtifactSpec[];
  /** Bound of each request. Default 20 s. */
  timeoutMs?: number;
  /** Requests at once. Default 8. */
  jobs?: number;
  signal?: AbortSignal;
  /** Reads a checksum file or an index (tests may replace it). */
  fetchText?: (url: string, options: TextFetchOptions) => Promise<string>;
}

/** HEAD answers that mean "this server does not do HEAD here", not "the file is gone". */
const HEAD_REFUSED = [400, 403, 405, 501];

function boundedSignal(timeoutMs: number, outer?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return outer ? AbortSignal.any([timeout, outer]) : timeout;
}

function failure(error: unknown, timeoutMs: number): string {
  const e = error as Error;
  if (e?.name === "TimeoutError" || e?.name === "AbortError") {
    return `no answer within ${formatDuration(timeoutMs)}`;
  }
  return e?.message ?? String(error);
}

async function request(
  url: string,
  init: RequestInit,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Response> {
  const res = await fetch(url, {
    ...init,
    redirect: "follow",
    signal: boundedSignal(timeoutMs, signal),
  });
  // Only the status matters: never read a body (a ranged GET may be ignored and send it all).
  await res.body?.cancel().catch(() => {});
  return res;
}

/** Whether `url` answers with the artifact: HEAD, or a one-byte ranged GET where HEAD is refused. */
export async function checkUrl(
  url: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<{ ok: boolean; via: string; detail?: string }> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  if (url.startsWith("file://")) {
    try {
      const info = await Deno.stat(fileURLToPath(url));
      return info.isFile
        ? { ok: true, via: "file" }
        : { ok: false, via: "file", detail: "not a file" };
    } catch (error) {
      return { ok: false, via: "file", detail: (error as Error).message };
    }
  }
  if (url.startsWith("oci://")) {
    try {
      await resolveOciChart(url, { signal: boundedSignal(timeoutMs, options.signal) });
      return { ok: true, via: "oci" };
    } catch (error) {
      return { ok: false, via: "oci", detail: failure(error, timeoutMs) };
    }
  }
  let headFailure: string;
  try {
    const head = await request(url, { method: "HEAD" }, timeoutMs, options.signal);
    if (head.ok) return { ok: true, via: `HEAD ${head.status}` };
    if (!HEAD_REFUSED.includes(head.status)) {
      return { ok: false, via: `HEAD ${head.status}`, detail: `HTTP ${head.status}` };
    }
    headFailure = `HEAD ${head.status}`;
  } catch (error) {
    const reason = failure(error, timeoutMs);
    if (reason.startsWith("no answer")) return { ok: false, via: "HEAD", detail: reason };
    // Some servers drop HEAD requests outright; the ranged GET below says whether the file is there.
    headFailure = "HEAD failed";
  }
  try {
    const get = await request(
      url,
      { method: "GET", headers: { Range: "bytes=0-0" } },
      timeoutMs,
      options.signal,
    );
    const via = `GET ${get.status} (after ${headFailure})`;
    return get.status === 200 || get.status === 206
      ? { ok: true, via }
      : { ok: false, via, detail: `HTTP ${get.status}` };
  } catch (error) {
    return { ok: false, via: `GET (after ${headFailure})`, detail: failure(error, timeoutMs) };
  }
}

/** The helm index entry of an artifact found by its file name, when the chart name is unknown. */
function findInIndexByFile(text: string, file: string): string | undefined {
  const index = parseYaml(text) as {
    entries?: Record<string, { urls?: string[]; digest?: string }[]>;
  };
  for (const list of Object.values(index?.entries ?? {})) {
    for (const entry of list ?? []) {
      if ((entry.urls ?? []).some((u) => u === file || u.endsWith(`/${file}`))) {
        return entry.digest?.replace(/^sha256:/, "").toLowerCase();
      }
    }
  }
  return undefined;
}

/** Where the publisher states this artifact's checksum, if anywhere. */
function checksumSource(
  name: string,
  entry: LockArtifact,
  specs: readonly ArtifactSpec[],
): ChecksumSource | undefined {
  const spec = specs.find((s) => s.name === name && s.version === entry.version);
  if (entry.checksumUrl !== undefined) {
    const url = entry.checksumUrl;
    if (url.startsWith("oci://")) return { type: "oci" };
    if (spec?.checksum?.type === "helm-index" && spec.checksum.url === url) return spec.checksum;
    if (/\/index\.ya?ml$/.test(url)) return { type: "helm-index", url, chart: "" };
    return { type: "file", url };
  }
  return spec?.checksum;
}

/** Checks every URL and every publisher checksum of a lock. */
export async function verifyUpstreams(
  lock: Lockfile,
  options: VerifyUpstreamsOptions = {},
): Promise<UpstreamReport> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? 20_000;
  const fetchText = options.fetchText ??
    ((url: string, o: TextFetchOptions) =>
      fetchSmallText(url, { stallTimeoutMs: o.timeoutMs, attempts: 2, backoffMs: 250 }));
  const texts = new Map<string, Promise<string>>();
  const text = (url: string) => {
    let p = texts.get(url);
    if (!p) {
      p = fetchText(url, { timeoutMs, signal: options.signal });
      texts.set(url, p);
    }
    return p;
  };
  const tasks: (() => Promise<UpstreamResult>)[] = [];
  for (const [name, entry] of Object.entries(lock.artifacts).sort(([a], [b]) => a < b ? -1 : 1)) {
    for (const url of entry.urls) {
      tasks.push(async () => {
        const r = await checkUrl(url, { timeoutMs, signal: options.signal });
        return {
          artifact: name,
          check: "url",
          url,
          status: r.ok ? "ok" : "unreachable",
          via: r.via,
          ...(r.detail ? { detail: r.detail } : {}),
        };
      });
    }
    const source = checksumSource(name, entry, options.specs ?? []);
    if (source !== undefined) {
      tasks.push(() =>
        verifyChecksum(name, entry, source, { text, timeoutMs, signal: options.signal })
      );
    }
  }
  const results: UpstreamResult[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  const jobs = Math.max(1, Math.min(options.jobs ?? 8, tasks.length || 1));
  await Promise.all(Array.from({ length: jobs }, worker));
  return {
    results,
    problems: results.filter((r) => r.status !== "ok").length,
    elapsedMs: performance.now() - started,
  };
}

async function verifyChecksum(
  name: string,
  entry: LockArtifact,
  source: ChecksumSource,
  o: { text: (url: string) => Promise<string>; timeoutMs: number; signal?: AbortSignal },
): Promise<UpstreamResult> {
  const expected = artifactHex(entry);
  const file = artifactFileName(name, entry);
  const ociUrl = entry.urls.find((u) => u.startsWith("oci://")) ?? entry.checksumUrl ?? "";
  const url = source.type === "oci" ? ociUrl : source.url;
  const base = { artifact: name, check: "checksum" as const, url, expected };
  let actual: string | undefined;
  try {
    switch (source.type) {
      case "file":
        actual = findChecksum(await o.text(source.url), file);
        break;
      case "helm-index": {
        const index = await o.text(source.url);
        actual = source.chart
          ? await findInHelmIndex(index, source.chart, entry.version)
          : findInIndexByFile(index, file);
        break;
      }
      case "oci":
        actual = (await resolveOciChart(ociUrl, {
          signal: boundedSignal(o.timeoutMs, o.signal),
        })).hex;
        break;
    }
  } catch (error) {
    return { ...base, status: "unreachable", detail: failure(error, o.timeoutMs) };
  }
  if (actual === undefined) {
    return {
      ...base,
      status: "checksum-missing",
      detail: `the publisher's checksum no longer lists ${file}`,
    };
  }
  return actual === expected ? { ...base, status: "ok", actual } : {
    ...base,
    status: "checksum-changed",
    actual,
    detail: `the publisher now states sha256 ${actual} for ${file}; the lock pins ${expected}`,
  };
}
