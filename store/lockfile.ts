/**
 * `dtk.lock`: what a config asked for (`requested`) kept apart from what it resolved to
 * (`artifacts`: exact URLs, sha256, size, and where the hash came from). JSON, 2-space indent,
 * keys sorted, trailing newline, so that the same inputs always give the same bytes.
 *
 * @module
 */
import { basename } from "node:path";
import type { ArtifactArch, ArtifactKind } from "../lib/catalog/mod.ts";
import { ARTIFACT_KINDS } from "../lib/catalog/mod.ts";
import { DtkError, ExitCode, q } from "../lib/errors/mod.ts";
import { writeFileAtomic } from "../lib/fs/mod.ts";
import { parseImageReference } from "../lib/registry/_reference.ts";
import { formatHash, parseHash } from "./_hash.ts";

export const LOCK_VERSION = 1;

/**
 * Where an artifact's hash came from; `registry`: the digest a container registry resolved the
 * image's tag to.
 */
export type HashSource = "pinned" | "publisher" | "computed" | "registry";
const HASH_SOURCES: readonly HashSource[] = ["pinned", "publisher", "computed", "registry"];

/** One resolved artifact. */
export interface LockArtifact {
  version: string;
  kind: ArtifactKind;
  arch: ArtifactArch;
  /** Upstream URLs, tried in order after the mirrors. May be empty when mirrors hold it. */
  urls: string[];
  /** `sha256:<64 hex>`. */
  hash: string;
  /** Bytes, or `null` when not known before the first download. */
  size: number | null;
  source: HashSource;
  /** File name for mirror lookups and on the nodes; default: the last segment of the first URL. */
  file?: string;
  /** The publisher file the hash was read from (`source: publisher`). */
  checksumUrl?: string;
  /** `kind: image`: the reference as the cluster uses it (`quay.io/cilium/cilium:v1.18.5`). */
  ref?: string;
  /**
   * `kind: image`: `sha256:<hex>` of the manifest for `arch` (`hash` names the index, or the
   * lone manifest, the ref resolves to). Absent in a hand-written entry: `dtk fetch` picks it.
   */
  manifest?: string;
}

/** A `kind: image` artifact: `ref` is always set. */
export type ImageArtifact = LockArtifact & { kind: "image"; ref: string };

/** True for a `kind: image` artifact. */
export function isImageArtifact(artifact: LockArtifact): artifact is ImageArtifact {
  return artifact.kind === "image" && typeof artifact.ref === "string";
}

/**
 * The lock name of an image: `<host>+<repository, / as +>@<tag>` (`registry.k8s.io+pause@3.10`);
 * a port's `:` becomes `_` (`[::1]` becomes `ip6-__1`), and a ref pinned only by digest is named by its first 12 hex digits.
 */
export function imageArtifactName(ref: string): string {
  const r = parseImageReference(ref);
  const tag = r.tag ?? `sha256-${(r.digest ?? "").slice(7, 19)}`;
  const host = r.registry.replace(/^\[(.*)\]/, "ip6-$1").replaceAll(":", "_");
  return `${host}+${r.repository.replaceAll("/", "+")}@${tag}`;
}

/** What the config asked for: the inputs `dtk lock --update` re-resolves from. */
export interface LockRequest {
  arch: string;
  virt: string;
  linux: string;
  createTemplate: boolean;
  templateSource: string;
  versions: Record<string, string>;
  /** Enabled add-ons → the chart version asked for (`default` when not overridden). */
  addons: Record<string, string>;
}

export interface Lockfile {
  version: typeof LOCK_VERSION;
  requested?: LockRequest;
  artifacts: Record<string, LockArtifact>;
}

/** Lock names and file names: no separators, no `..`, nothing hidden. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+@-]{0,199}$/;

/** True when `name` is safe as a single path segment. */
export function isSafeName(name: string): boolean {
  return SAFE_NAME.test(name) && !name.includes("..");
}

/** The file name of an artifact: `file`, else the last segment of its first URL, else its name. */
export function artifactFileName(
  name: string,
  artifact: Pick<LockArtifact, "file" | "urls">,
): string {
  if (artifact.file) return artifact.file;
  const first = artifact.urls[0];
  if (first !== undefined) {
    let candidate = basename(first.replace(/[?#].*$/, ""));
    if (first.startsWith("oci://")) {
      const m = /\/([^/:]+):([^/:]+)$/.exec(first);
      if (m) candidate = `${m[1]}-${m[2]}.tgz`;
    }
    if (isSafeName(candidate)) return candidate;
  }
  return name;
}

/** The 64 hex digits of an artifact's hash. */
export function artifactHex(artifact: Pick<LockArtifact, "hash">): string {
  const hex = parseHash(artifact.hash);
  if (hex === undefined) throw new DtkError(`Invalid hash ${q(artifact.hash)}`);
  return hex;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** The canonical text of a lock. */
export function serializeLock(lock: Lockfile): string {
  return JSON.stringify(sortKeys(lock), null, 2) + "\n";
}

function lockError(path: string, message: string): DtkError {
  return new DtkError(`Invalid lock file ${q(path)}: ${message}`, {
    exitCode: ExitCode.usage,
    hint: "Fix it by hand, or regenerate it with: dtk lock --update",
  });
}

/**
 * Validates a parsed lock. Hand-written locks need only `urls` (or a mirror) and `hash` per
 * artifact, images only `ref` and `hash`; the other fields get defaults. Hashes in any accepted spelling become `sha256:<hex>`.
 */
export function parseLock(data: unknown, path = "dtk.lock"): Lockfile {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw lockError(path, "expected a JSON object");
  }
  const obj = data as Record<string, unknown>;
  if (obj.version !== undefined && obj.version !== LOCK_VERSION) {
    throw lockError(path, `unsupported version ${q(obj.version)} (this dtk reads version 1)`);
  }
  const raw = obj.artifacts;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw lockError(path, `"artifacts" must be an object of name → artifact`);
  }
  // A hand-written image entry without `arch` is for the arch the lock was made for.
  const requestedArch = (obj.requested as { arch?: unknown } | undefined)?.arch;
  const defaultArch: ArtifactArch = requestedArch === "arm64" ? "arm64" : "amd64";
  const artifacts: Record<string, LockArtifact> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!isSafeName(name)) {
      throw lockError(path, `artifact name ${q(name)} is not a plain file name`);
    }
    artifacts[name] = parseArtifact(path, name, value, defaultArch);
  }
  const lock: Lockfile = { version: LOCK_VERSION, artifacts };
  if (obj.requested !== undefined) lock.requested = obj.requested as LockRequest;
  return lock;
}

function parseImageFields(
  at: string,
  a: Record<string, unknown>,
  artifact: LockArtifact,
  fail: (message: string) => DtkError,
): void {
  if (typeof a.ref !== "string") {
    throw fail(`${at} is an image and needs "ref": "[registry/]repository[:tag]"`);
  }
  let ref;
  try {
    ref = parseImageReference(a.ref);
  } catch {
    throw fail(`${at}: "ref" ${q(a.ref)} is not a valid image reference`);
  }
  if (ref.digest !== undefined && parseHash(ref.digest) !== parseHash(artifact.hash)) {
    throw fail(`${at}: "ref" pins ${ref.digest} but "hash" is ${artifact.hash}`);
  }
  artifact.ref = a.ref;
  if (a.manifest !== undefined) {
    const manifest = typeof a.manifest === "string" ? parseHash(a.manifest) : undefined;
    if (manifest === undefined) {
      throw fail(`${at}: "manifest" must be "sha256:<64 hex digits>" (got ${q(a.manifest)})`);
    }
    artifact.manifest = formatHash(manifest);
  }
  if (artifact.urls.length > 0) {
    throw fail(`${at}: an image is fetched from its registry; "urls" must be empty`);
  }
  if (artifact.arch === "noarch") throw fail(`${at}: an image needs "arch" amd64 or arm64`);
  if (artifact.version === "") artifact.version = ref.tag ?? ref.digest ?? "";
}

function parseArtifact(
  path: string,
  name: string,
  value: unknown,
  defaultArch: ArtifactArch,
): LockArtifact {
  const at = `artifact ${q(name)}`;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw lockError(path, `${at} must be an object`);
  }
  const a = value as Record<string, unknown>;
  const hash = typeof a.hash === "string" ? parseHash(a.hash) : undefined;
  if (hash === undefined) {
    throw lockError(path, `${at} needs "hash": "sha256:<64 hex digits>" (got ${q(a.hash)})`);
  }
  const urls = a.urls ?? [];
  if (!Array.isArray(urls) || urls.some((u) => typeof u !== "string")) {
    throw lockError(path, `${at}: "urls" must be a list of strings`);
  }
  for (const u of urls as string[]) {
    if (!/^(https?|file|oci):\/\//.test(u)) {
      throw lockError(path, `${at}: URL ${q(u)} is not http(s)://, file:// or oci://`);
    }
    const problem = fileUrlProblem(u);
    if (problem !== undefined) throw lockError(path, `${at}: ${problem}`);
  }
  const size = a.size ?? null;
  if (size !== null && (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)) {
    throw lockError(path, `${at}: "size" must be a byte count or null`);
  }
  // A hand-written image entry needs only `ref` and `hash`.
  const kind = a.kind ?? (a.ref !== undefined ? "image" : "binary");
  if (!ARTIFACT_KINDS.includes(kind as ArtifactKind)) {
    throw lockError(path, `${at}: unknown kind ${q(kind)} (one of ${ARTIFACT_KINDS.join(", ")})`);
  }
  const source = a.source ?? (kind === "image" ? "registry" : "pinned");
  if (!HASH_SOURCES.includes(source as HashSource)) {
    throw lockError(path, `${at}: unknown source ${q(source)} (one of ${HASH_SOURCES.join(", ")})`);
  }
  const arch = a.arch ?? (kind === "image" ? defaultArch : "noarch");
  if (!["amd64", "arm64", "noarch"].includes(arch as string)) {
    throw lockError(path, `${at}: unknown arch ${q(arch)}`);
  }
  if (a.file !== undefined && (typeof a.file !== "string" || !isSafeName(a.file))) {
    throw lockError(path, `${at}: "file" must be a plain file name (got ${q(a.file)})`);
  }
  const artifact: LockArtifact = {
    version: typeof a.version === "string" ? a.version : "",
    kind: kind as ArtifactKind,
    arch: arch as ArtifactArch,
    urls: urls as string[],
    hash: formatHash(hash),
    size: size as number | null,
    source: source as HashSource,
  };
  if (typeof a.file === "string") artifact.file = a.file;
  if (typeof a.checksumUrl === "string") artifact.checksumUrl = a.checksumUrl;
  if (kind === "image") parseImageFields(at, a, artifact, (m) => lockError(path, m));
  else if (a.ref !== undefined || a.manifest !== undefined) {
    throw lockError(path, `${at}: "ref" and "manifest" belong to kind "image" only`);
  }
  return artifact;
}

/**
 * Why a `file://` URL cannot be read here, or `undefined`. `file://host/path` names another
 * machine: refuse it as the user's mistake, before anything tries to open it.
 */
export function fileUrlProblem(url: string): string | undefined {
  if (!url.startsWith("file:")) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `URL ${q(url)} is not a valid file:// URL`;
  }
  if (parsed.hostname !== "" && parsed.hostname !== "localhost") {
    return `URL ${q(url)} names the host ${
      q(parsed.hostname)
    }: file:// URLs must be local (file:///path)`;
  }
  return undefined;
}

/**
 * The first key that appears twice in one JSON object of `text` (already known to be valid
 * JSON), with its 1-based line. `JSON.parse` keeps the last one silently, so a merge that left
 * two entries of one name would otherwise pick one without a word.
 */
export function findDuplicateKey(text: string): { key: string; line: number } | undefined {
  const stack: { keys: Set<string> | undefined; expectKey: boolean }[] = [];
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") line++;
    else if (c === "{") stack.push({ keys: new Set(), expectKey: true });
    else if (c === "[") stack.push({ keys: undefined, expectKey: false });
    else if (c === "}" || c === "]") stack.pop();
    else if (c === ",") {
      const top = stack.at(-1);
      if (top?.keys !== undefined) top.expectKey = true;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const top = stack.at(-1);
      if (top?.keys !== undefined && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, line };
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    }
  }
  return undefined;
}

/** A lock of 10,000 artifacts is a few MiB; anything far larger is not a lock. */
export const MAX_LOCK_BYTES = 64 << 20;

/**
 * Reads and validates a lock file; `undefined` when it does not exist. A FIFO or device (which
 * would block or never end, as in a folder given to `dtk store import`) and a file over
 * `MAX_LOCK_BYTES` are refused unread.
 */
export async function readLock(path: string): Promise<Lockfile | undefined> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw lockError(path, "not a regular file");
    if (info.size > MAX_LOCK_BYTES) {
      throw lockError(path, `${info.size} bytes is more than a lock file can be`);
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw lockError(path, `not JSON (${(error as Error).message})`);
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    throw lockError(
      path,
      `line ${duplicate.line}: duplicate key ${q(duplicate.key)} (a key may appear only once)`,
    );
  }
  return parseLock(data, path);
}

/** Like `readLock`, but a missing file is an error saying how to make one. */
export async function requireLock(path: string): Promise<Lockfile> {
  const lock = await readLock(path);
  if (lock === undefined) {
    throw new DtkError(`Lock file ${q(path)} does not exist`, {
      exitCode: ExitCode.usage,
      hint: "Create it with: dtk lock",
    });
  }
  return lock;
}

/** Writes a lock atomically in its canonical form. */
export async function writeLock(path: string, lock: Lockfile): Promise<void> {
  await writeFileAtomic(path, serializeLock(lock));
}
