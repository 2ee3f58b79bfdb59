/**
 * Catalogue specs → lock entries. The hash of each artifact comes from the built-in pins, else
 * the publisher's checksum file, else (with a warning) from hashing the download.
 *
 * @module
 */
import { basename } from "node:path";
import type { ArtifactSpec, ChecksumSource } from "../lib/catalog/mod.ts";
import { DtkError, formatDuration, q } from "../lib/errors/mod.ts";
import { readTextAtMost } from "../lib/http/mod.ts";
import { fetchUnknown, sourcesFor } from "./_download.ts";
import type { DownloadOptions } from "./_download.ts";
import { formatHash, parseHash } from "./_hash.ts";
import type { ObjectStore } from "./_objects.ts";
import { resolveOciChart } from "./_oci.ts";
import type { LockArtifact, Lockfile, LockRequest } from "./lockfile.ts";
import { LOCK_VERSION } from "./lockfile.ts";

/** Finds the sha256 of `fileName` in a checksum file (bare hex, GNU or BSD lines). */
export function findChecksum(text: string, fileName: string): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) =>
    l !== "" && !l.startsWith("#")
  );
  for (const line of lines) {
    const gnu = /^([0-9a-fA-F]{64})\s+\*?(\S.*)$/.exec(line);
    if (gnu && basename(gnu[2] ?? "") === fileName) return gnu[1]?.toLowerCase();
    const bsd = /^SHA256\s*\((.+)\)\s*=\s*([0-9a-fA-F]{64})$/.exec(line);
    if (bsd && basename(bsd[1] ?? "") === fileName) return bsd[2]?.toLowerCase();
  }
  // A sidecar `.sha256` holds one digest and sometimes no name.
  const only = lines.length === 1 ? /^([0-9a-fA-F]{64})$/.exec(lines[0] ?? "") : null;
  return only?.[1]?.toLowerCase();
}

/** The digest of `chart` at `version` in a Helm repository `index.yaml`. */
export async function findInHelmIndex(
  text: string,
  chart: string,
  version: string,
): Promise<string | undefined> {
  // The YAML parser loads only when a Helm index is read (`dtk lock`), not for every command.
  const { parse: parseYaml } = await import("yaml");
  const index = parseYaml(text) as {
    entries?: Record<string, { version?: string; digest?: string }[]>;
  };
  const entries = index?.entries?.[chart] ?? [];
  const bare = (v: string) => v.replace(/^v/, "");
  const entry = entries.find((e) => e.version === version) ??
    entries.find((e) => bare(e.version ?? "") === bare(version));
  return entry?.digest === undefined ? undefined : parseHash(entry.digest);
}

export interface ResolveOptions {
  store: ObjectStore;
  /** The lock as it is now; its entries are kept when their spec did not change. */
  previous?: Lockfile;
  /** Re-resolve every entry, not only new and changed ones. */
  update?: boolean;
  /** Artifacts resolved at once. Default 4. */
  jobs?: number;
  download?: DownloadOptions;
  /** Fetches a small text (checksum files); replaceable in tests. */
  fetchText?: (url: string) => Promise<string>;
  warn?: (message: string) => void;
  info?: (message: string) => void;
}

export interface ResolveResult {
  lock: Lockfile;
  /** Names added, changed or removed compared with the previous lock. */
  changed: string[];
}

function sameSpec(entry: LockArtifact, spec: ArtifactSpec): boolean {
  return entry.version === spec.version && entry.kind === spec.kind && entry.arch === spec.arch &&
    (entry.file ?? "") === spec.file && entry.urls.length === spec.urls.length &&
    entry.urls.every((u, i) => u === spec.urls[i]);
}

function sameEntry(a: LockArtifact | undefined, b: LockArtifact | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Resolves every spec into a lock. Only unpinned artifacts touch the network. */
export async function resolveLock(
  specs: readonly ArtifactSpec[],
  request: LockRequest,
  options: ResolveOptions,
): Promise<ResolveResult> {
  const previous = options.previous?.artifacts ?? {};
  const resolved = new Map<string, LockArtifact>();
  const warn = options.warn ?? (() => {});
  const todo: ArtifactSpec[] = [];
  for (const spec of specs) {
    const old = previous[spec.name];
    if (old !== undefined && !options.update && sameSpec(old, spec)) resolved.set(spec.name, old);
    else todo.push(spec);
  }
  // Several at once (checksum files are small, computed hashes are downloads), and every failure
  // is reported together, so one run tells the user all that is missing.
  const failures: { name: string; message: string }[] = [];
  const queue = [...todo];
  const worker = async () => {
    for (let spec = queue.shift(); spec !== undefined; spec = queue.shift()) {
      try {
        resolved.set(spec.name, await resolveOne(spec, options));
      } catch (error) {
        if (options.download?.signal?.aborted) throw error;
        failures.push({ name: spec.name, message: (error as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs ?? 4, todo.length) }, worker));
  if (failures.length > 0) {
    failures.sort((a, b) => a.name.localeCompare(b.name));
    const lines = failures.map((f) => {
      const [first, ...rest] = f.message.split("\n");
      return [`  ${f.name}: ${first}`, ...rest.map((l) => `  ${l}`)].join("\n");
    });
    throw new DtkError(
      `Cannot resolve ${failures.length} of ${specs.length} artifacts; the lock was not written\n${
        lines.join("\n")
      }`,
      {
        hint:
          "Check the network or add a mirror (--mirror); or pin the hashes by hand in dtk.lock (its format is in the README)",
      },
    );
  }
  const artifacts: Record<string, LockArtifact> = {};
  for (const spec of specs) {
    const entry = resolved.get(spec.name)!;
    const old = previous[spec.name];
    if (old !== undefined && todo.includes(spec)) {
      const moved = old.version !== spec.version || old.urls.join(" ") !== spec.urls.join(" ");
      if (moved && old.hash === entry.hash) {
        warn(
          `${spec.name}: the version or URL changed (${old.version} → ${spec.version}) but the hash did not (${entry.hash}); check that the new version is really new`,
        );
      }
      if (!moved && old.hash !== entry.hash) {
        warn(
          `${spec.name}: the hash of ${spec.version} changed from ${old.hash} to ${entry.hash} with the same URL; upstream may have replaced the file`,
        );
      }
      if (old.hash === entry.hash && entry.size === null && old.size !== null) {
        entry.size = old.size;
      }
    }
    artifacts[spec.name] = entry;
  }
  const lock: Lockfile = { version: LOCK_VERSION, requested: request, artifacts };
  const names = new Set([...Object.keys(previous), ...Object.keys(artifacts)]);
  const changed = [...names].filter((n) => !sameEntry(previous[n], artifacts[n])).sort();
  return { lock, changed };
}

async function resolveOne(spec: ArtifactSpec, options: ResolveOptions): Promise<LockArtifact> {
  const base = {
    version: spec.version,
    kind: spec.kind,
    arch: spec.arch,
    urls: [...spec.urls],
    file: spec.file,
  };
  if (spec.pin !== undefined) {
    return { ...base, hash: formatHash(spec.pin), size: null, source: "pinned" };
  }
  if (spec.checksum !== undefined) {
    try {
      const found = await fromPublisher(spec, spec.checksum, options);
      if (found !== undefined) {
        return {
          ...base,
          hash: formatHash(found.hex),
          size: found.size,
          source: "publisher",
          ...(found.url ? { checksumUrl: found.url } : {}),
        };
      }
      options.warn?.(`${spec.name}: the publisher's checksum file does not list ${q(spec.file)}`);
    } catch (error) {
      options.warn?.(
        `${spec.name}: cannot read the publisher's checksum: ${(error as Error).message}`,
      );
    }
  }
  options.info?.(`${spec.name}: downloading ${spec.file} to compute its hash`);
  const sources = sourcesFor({ hex: "0".repeat(64), file: spec.file, urls: spec.urls }, [])
    .filter((s) => !s.includes("/sha256/"));
  const mirrors = (options.download?.mirrors ?? []).map((m) =>
    `${m.replace(/\/+$/, "")}/${spec.file}`
  );
  const got = await fetchUnknown(
    options.store,
    spec.name,
    [...mirrors, ...sources],
    { ...options.download, kind: spec.kind },
  );
  options.warn?.(
    `${spec.name}: no pinned or published checksum; trusting the download from ${got.from} (${
      formatHash(got.hex)
    }). Review it before sharing this lock`,
  );
  return { ...base, hash: formatHash(got.hex), size: got.size, source: "computed" };
}

async function fromPublisher(
  spec: ArtifactSpec,
  checksum: ChecksumSource,
  options: ResolveOptions,
): Promise<{ hex: string; size: number | null; url?: string } | undefined> {
  const fetchText = options.fetchText ?? ((url: string) => fetchSmallText(url, options.download));
  switch (checksum.type) {
    case "file": {
      const hex = findChecksum(await fetchText(checksum.url), spec.file);
      return hex === undefined ? undefined : { hex, size: null, url: checksum.url };
    }
    case "helm-index": {
      const hex = await findInHelmIndex(
        await fetchText(checksum.url),
        checksum.chart,
        spec.version,
      );
      return hex === undefined ? undefined : { hex, size: null, url: checksum.url };
    }
    case "oci": {
      const url = spec.urls.find((u) => u.startsWith("oci://"));
      if (url === undefined) return undefined;
      const chart = await resolveOciChart(url);
      return { hex: chart.hex, size: chart.size >= 0 ? chart.size : null, url };
    }
  }
}

/** The largest Helm repository indexes are tens of MiB; checksum files a few KiB. */
export const MAX_SMALL_TEXT_BYTES = 128 * 1024 * 1024;

/** GETs a checksum file or an index, with a time limit, a size limit and retries. */
export async function fetchSmallText(url: string, options: DownloadOptions = {}): Promise<string> {
  const timeoutMs = Math.max(options.stallTimeoutMs ?? 30_000, 1000);
  const attempts = options.attempts ?? 3;
  let last = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const res = await fetch(url, { signal: controller.signal });
      if (res.ok) {
        const text = await readTextAtMost(res, MAX_SMALL_TEXT_BYTES);
        if (text !== undefined) return text;
        throw new DtkError(`${q(url)} is larger than ${MAX_SMALL_TEXT_BYTES / 1024 / 1024} MiB`, {
          hint: "A checksum file or a Helm repository index is far smaller: check the URL",
        });
      }
      await res.body?.cancel();
      last = `HTTP ${res.status}`;
      if (res.status === 404) break;
    } catch (error) {
      // Too large is the server's answer, not a lost connection: asking again changes nothing.
      if (error instanceof DtkError) throw error;
      last = controller.signal.aborted
        ? `no answer within ${formatDuration(timeoutMs)}`
        : (error as Error).message;
    } finally {
      clearTimeout(timer);
    }
    await new Promise((r) => setTimeout(r, (options.backoffMs ?? 500) * 2 ** (attempt - 1)));
  }
  throw new DtkError(`Cannot read ${q(url)}: ${last}`);
}
