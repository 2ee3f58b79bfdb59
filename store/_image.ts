/**
 * Container images in the store. Every blob of an image (index, manifest, config, layer) is an
 * ordinary object under its sha256, so layers shared by images are stored once; indexes and
 * manifests keep their media type in their metadata. This module reads and checks image JSON
 * and walks an image's closure from its locked digest.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { ClosureBlob } from "../lib/registry/_index.ts";
import { DtkError, q } from "../lib/errors/mod.ts";
import { readAtMost, readTextAtMost } from "../lib/http/mod.ts";
import { type ImageReference, parseImageReference } from "../lib/registry/_reference.ts";
import { parseBearerChallenge } from "./_oci.ts";
import { formatHash, parseHash } from "./_hash.ts";
import type { ObjectStore } from "./_objects.ts";

export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const INDEX_TYPES = [OCI_INDEX, DOCKER_LIST];
const MANIFEST_TYPES = [OCI_MANIFEST, DOCKER_MANIFEST];
/** What a registry is asked for: every index and manifest type dtk reads. */
export const MANIFEST_ACCEPT = [...INDEX_TYPES, ...MANIFEST_TYPES].join(", ");
const CONFIG_TYPES = [
  "application/vnd.oci.image.config.v1+json",
  "application/vnd.docker.container.image.v1+json",
];
const LAYER_TYPE =
  /^application\/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.diff\.tar\.gzip)(\+(gzip|zstd))?$/;
/** Index and manifest JSON is small; anything bigger is not one. */
export const MAX_MANIFEST_BYTES = 4 << 20;

/** A token service's answer is a JWT or two in JSON: a few KiB. */
const MAX_TOKEN_BYTES = 1 << 20;

/** A content descriptor as manifests and indexes write them. */
export interface Descriptor {
  mediaType: string;
  /** `sha256:<hex>`. */
  digest: string;
  hex: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export type ParsedImage =
  | { kind: "index"; mediaType: string; manifests: Descriptor[] }
  | { kind: "manifest"; mediaType: string; config: Descriptor; layers: Descriptor[] };

/** One lock entry as the closure needs it. */
export interface ImageEntry {
  name: string;
  ref: string;
  /** The digest the ref resolves to: index or lone manifest. */
  hash: string;
  /** The manifest for the lock's arch, when known. */
  manifest?: string;
}

function invalid(what: string, why: string): DtkError {
  return new DtkError(`${what} is not a usable image manifest: ${why}`, {
    hint: "dtk reads OCI and Docker v2 images (index, manifest list, manifest); " +
      "check that the reference names a container image",
  });
}

function descriptor(value: unknown, what: string, field: string): Descriptor {
  const d = (value ?? {}) as Record<string, unknown>;
  const hex = typeof d.digest === "string" && d.digest.startsWith("sha256:")
    ? parseHash(d.digest)
    : undefined;
  if (hex === undefined) throw invalid(what, `${field} has no sha256 digest (${q(d.digest)})`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw invalid(what, `${field} has no size`);
  }
  if (typeof d.mediaType !== "string") throw invalid(what, `${field} has no mediaType`);
  const out: Descriptor = { mediaType: d.mediaType, digest: formatHash(hex), hex, size: d.size };
  if (d.platform !== null && typeof d.platform === "object") {
    out.platform = d.platform as Descriptor["platform"];
  }
  return out;
}

/**
 * Parses index or manifest bytes. `mediaType` is what the registry, the parent descriptor or
 * the store's metadata says; it must agree with the body's own `mediaType` when both are there.
 * Refuses what is not a container image (a Helm chart's config, foreign layers, schema 1).
 */
export function parseImageJson(
  bytes: Uint8Array,
  what: string,
  mediaType?: string,
): ParsedImage {
  if (bytes.length > MAX_MANIFEST_BYTES) throw invalid(what, `${bytes.length} bytes is too big`);
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw invalid(what, "not JSON");
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw invalid(what, "not a JSON object");
  }
  const own = typeof data.mediaType === "string" ? data.mediaType : undefined;
  // Some registries answer a generic type for a manifest whose body names its own: no information.
  const served = mediaType?.split(";")[0]?.trim().toLowerCase() || undefined;
  const given = served === "application/json" || served === "application/octet-stream"
    ? undefined
    : served;
  if (given !== undefined && own !== undefined && given !== own) {
    throw invalid(what, `served as ${q(given)} but its body says ${q(own)}`);
  }
  const type = own ?? given ?? (Array.isArray(data.manifests) ? OCI_INDEX : OCI_MANIFEST);
  if (data.schemaVersion !== 2) {
    throw invalid(what, `schemaVersion ${q(data.schemaVersion)} (only 2 is read)`);
  }
  if (INDEX_TYPES.includes(type)) {
    if (!Array.isArray(data.manifests)) throw invalid(what, "an index without manifests");
    const manifests = data.manifests.map((m, i) => descriptor(m, what, `manifests[${i}]`));
    return { kind: "index", mediaType: type, manifests };
  }
  if (!MANIFEST_TYPES.includes(type)) throw invalid(what, `wrong media type ${q(type)}`);
  const config = descriptor(data.config, what, "config");
  if (!CONFIG_TYPES.includes(config.mediaType)) {
    throw invalid(what, `config media type ${q(config.mediaType)} is not a container image's`);
  }
  if (!Array.isArray(data.layers)) throw invalid(what, "a manifest without layers");
  const layers = data.layers.map((l, i) => descriptor(l, what, `layers[${i}]`));
  for (const layer of layers) {
    if (!LAYER_TYPE.test(layer.mediaType)) {
      throw invalid(what, `layer ${layer.digest} has media type ${q(layer.mediaType)}`);
    }
  }
  return { kind: "manifest", mediaType: type, config, layers };
}

/** The manifest of `index` for linux/`arch` (arm64 prefers variant v8 or none). */
export function pickPlatform(
  index: Extract<ParsedImage, { kind: "index" }>,
  arch: string,
): Descriptor | undefined {
  const candidates = index.manifests.filter((m) =>
    MANIFEST_TYPES.includes(m.mediaType) && m.platform?.os === "linux" &&
    m.platform.architecture === arch
  );
  return candidates.find((m) => m.platform?.variant === undefined) ??
    candidates.find((m) => m.platform?.variant === "v8") ?? candidates[0];
}

/** The bytes and parsed form of an image object in the store, or undefined when absent. */
export async function readImageObject(
  store: ObjectStore,
  hex: string,
  what: string,
  mediaType?: string,
): Promise<{ bytes: Uint8Array; image: ParsedImage } | undefined> {
  if (await store.check(hex) !== "present") return undefined;
  // Through the object's own descriptor: a link swapped in after the check is refused.
  const file = await store.openObject(hex);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await new Response(file.readable).arrayBuffer());
  } catch (error) {
    try {
      file.close();
    } catch { /* the stream closed it */ }
    throw error;
  }
  const meta = await store.readMeta(hex);
  return { bytes, image: parseImageJson(bytes, what, meta?.mediaType ?? mediaType) };
}

/**
 * Stores small bytes already checked against `hex` (index and manifest JSON) as an object,
 * atomically and under the object's lock, with their media type in the metadata.
 */
export async function putImageObject(
  store: ObjectStore,
  bytes: Uint8Array,
  info: { hex: string; name: string; version?: string; mediaType: string; from?: string },
): Promise<void> {
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== info.hex) {
    throw new DtkError(`Refusing to store ${formatHash(actual)} as ${formatHash(info.hex)}`);
  }
  await store.init();
  await store.withLock(info.hex, async () => {
    if (await store.check(info.hex, bytes.length) !== "present") {
      await store.remove(info.hex);
      const temp = store.tempPath();
      try {
        const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
        let stat: Deno.FileInfo;
        try {
          let written = 0;
          while (written < bytes.length) written += await file.write(bytes.subarray(written));
          await file.sync();
          stat = await file.stat();
        } finally {
          file.close();
        }
        await store.commit(temp, info.hex, stat);
      } catch (error) {
        await Deno.remove(temp).catch(() => {});
        throw error;
      }
    }
    await store.recordMeta(info.hex, bytes.length, {
      name: info.name,
      version: info.version,
      mediaType: info.mediaType,
      from: info.from,
    });
  });
}

function notInStore(entry: ImageEntry, what: string): DtkError {
  return new DtkError(`Image ${q(entry.ref)} is not complete in the store: ${what} is missing`, {
    hint: "Fetch it with: dtk fetch (or import it: dtk store import DIR)",
  });
}

/**
 * Every blob of a locked image as the store holds it: the index (if the ref resolves to one),
 * each of its manifests that is present (at least the lock's), and each manifest's config and
 * layers. Throws when a blob the image needs is missing: a registry must never name a blob it
 * cannot serve.
 */
export async function imageClosure(store: ObjectStore, entry: ImageEntry): Promise<ClosureBlob[]> {
  return await walkImage(store, entry, { partial: false });
}

/**
 * The objects of an image that are present, without failing on what is not (`gc` keeps them,
 * `verify` names them). `partial: false` throws instead.
 */
export async function walkImage(
  store: ObjectStore,
  entry: ImageEntry,
  options: { partial: boolean },
): Promise<ClosureBlob[]> {
  const out: ClosureBlob[] = [];
  const hex = parseHash(entry.hash);
  if (hex === undefined) throw new DtkError(`Invalid image digest ${q(entry.hash)}`);
  const top = await readImageObject(store, hex, `${entry.ref}@${formatHash(hex)}`);
  if (top === undefined) {
    if (options.partial) return out;
    throw notInStore(entry, `its ${entry.hash.slice(0, 19)}… manifest`);
  }
  const manifests: { hex: string; image: ParsedImage; size: number }[] = [];
  if (top.image.kind === "index") {
    out.push({
      digest: formatHash(hex),
      mediaType: top.image.mediaType,
      size: top.bytes.length,
      role: "index",
    });
    const wanted = entry.manifest === undefined ? undefined : parseHash(entry.manifest);
    let found = false;
    for (const child of top.image.manifests) {
      if (!MANIFEST_TYPES.includes(child.mediaType)) continue;
      const got = await readImageObject(
        store,
        child.hex,
        `${entry.ref}@${child.digest}`,
        child.mediaType,
      );
      if (got === undefined) continue;
      if (got.image.kind !== "manifest") continue;
      if (child.hex === wanted || wanted === undefined || wanted === hex) found = true;
      manifests.push({ hex: child.hex, image: got.image, size: got.bytes.length });
    }
    if (!found && !options.partial) {
      throw notInStore(entry, `the manifest ${entry.manifest ?? "for its arch"}`);
    }
  } else {
    manifests.push({ hex, image: top.image, size: top.bytes.length });
  }
  const seen = new Set(out.map((b) => b.digest));
  for (const m of manifests) {
    if (m.image.kind !== "manifest") continue;
    const add = (blob: ClosureBlob) => {
      if (seen.has(blob.digest)) return;
      seen.add(blob.digest);
      out.push(blob);
    };
    add({
      digest: formatHash(m.hex),
      mediaType: m.image.mediaType,
      size: m.size,
      role: "manifest",
    });
    for (
      const [d, role] of [
        [m.image.config, "config"],
        ...m.image.layers.map((l) => [l, "layer"] as const),
      ] as const
    ) {
      const state = await store.check(d.hex, d.size);
      if (state !== "present") {
        if (options.partial) continue;
        throw notInStore(entry, `${role} ${d.digest}${state === "corrupt" ? " (corrupt)" : ""}`);
      }
      add({ digest: d.digest, mediaType: d.mediaType, size: d.size, role });
    }
  }
  return out;
}

/** The distribution API base of a registry: docker.io is served by registry-1.docker.io. */
export function registryBase(registry: string): string {
  if (registry === "docker.io") return "https://registry-1.docker.io";
  // Docker's rule: loopback registries speak plain HTTP.
  const host = registry.replace(/:\d+$/, "");
  const loopback = host === "localhost" || host === "[::1]" || /^127(\.\d{1,3}){3}$/.test(host);
  return `${loopback ? "http" : "https"}://${registry}`;
}

/** A registry call that failed; `status` 0 for a network failure. */
export class RegistryError extends DtkError {
  readonly status: number;
  readonly retryable: boolean;
  constructor(
    message: string,
    options: { status: number; retryable?: boolean; hint?: string; cause?: unknown },
  ) {
    super(message, { hint: options.hint, cause: options.cause });
    this.status = options.status;
    this.retryable = options.retryable ?? false;
  }
}

export interface RegistryClientOptions {
  /** Limit for each manifest or token request. Default 30 s. */
  timeoutMs?: number;
  /** Tries for network failures and 5xx. Default 3. */
  attempts?: number;
  backoffMs?: number;
  signal?: AbortSignal;
}

/** A fetched index or manifest, its bytes not yet trusted. */
export interface ManifestResponse {
  bytes: Uint8Array;
  /** Content-Type as served. */
  mediaType: string;
  /** `Docker-Content-Digest` as served, when it was. */
  digest?: string;
}

/**
 * The distribution API for one repository, pulling anonymously: a 401 with a bearer challenge
 * gets a token from the challenge's realm (scope `repository:<repo>:pull`), once per token
 * lifetime; a second 401 is final.
 */
export class RegistryClient {
  readonly ref: ImageReference;
  readonly base: string;
  readonly #options: RegistryClientOptions;
  /** The token and the origin that asked for it: it is sent nowhere else. */
  #token?: { value: string; expires: number; origin: string };
  #challenge?: { params: Record<string, string>; origin: string; repository: string };
  /** Where the registry redirected manifest requests to (registry.k8s.io does): blobs too. */
  #effective?: { base: string; repository: string };

  constructor(ref: ImageReference | string, options: RegistryClientOptions = {}) {
    this.ref = typeof ref === "string" ? parseImageReference(ref) : ref;
    this.base = registryBase(this.ref.registry);
    this.#options = options;
  }

  /** What the image is called in messages. */
  get label(): string {
    return `${this.ref.registry}/${this.ref.repository}`;
  }

  /** A blob's URL, at the registry manifest requests were redirected to, if they were. */
  blobUrl(hex: string): string {
    const base = this.#effective?.base ?? this.base;
    return `${base}/v2/${this.#effective?.repository ?? this.ref.repository}/blobs/sha256:${hex}`;
  }

  /** True once a manifest request has shown where the registry really serves from. */
  get located(): boolean {
    return this.#effective !== undefined;
  }

  /** Headers for a blob request: the current token, renewed when it is about to expire. */
  authHeaders(): Promise<Record<string, string>> {
    return this.#authFor(this.blobUrl("0".repeat(64)));
  }

  async #authFor(url: string): Promise<Record<string, string>> {
    if (this.#token === undefined || new URL(url).origin !== this.#token.origin) return {};
    if (Date.now() > this.#token.expires) await this.#renew();
    return this.#token === undefined ? {} : { Authorization: `Bearer ${this.#token.value}` };
  }

  /** Learns the registry's token challenge from `GET /v2/` (for blob requests made first). */
  async authenticate(): Promise<void> {
    if (this.#token !== undefined) return;
    const url = `${this.#effective?.base ?? this.base}/v2/`;
    const res = await this.#fetch(url, { method: "GET", headers: {} }, {});
    const params = res.status === 401
      ? parseBearerChallenge(res.headers.get("www-authenticate") ?? "")
      : undefined;
    await res.body?.cancel();
    if (params === undefined) return;
    const repository = this.#effective?.repository ?? this.ref.repository;
    this.#challenge = { params, origin: new URL(url).origin, repository };
    await this.#renew();
  }

  /** GETs (or HEADs) a manifest by tag or digest; `undefined` when the registry says 404. */
  async manifest(
    reference: string,
    options: { head?: boolean } = {},
  ): Promise<ManifestResponse | undefined> {
    const url = `${this.base}/v2/${this.ref.repository}/manifests/${reference}`;
    const { res, final } = await this.#request(url, {
      method: options.head ? "HEAD" : "GET",
      headers: { Accept: MANIFEST_ACCEPT },
    });
    const moved = /^(https?:\/\/[^/]+)\/v2\/(.+)\/manifests\/[^/]+$/.exec(final);
    if (moved && final !== url && moved[1] && moved[2]) {
      this.#effective = { base: moved[1], repository: moved[2] };
    } else if (res.status !== 404) {
      this.#effective ??= { base: this.base, repository: this.ref.repository };
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    const mediaType = res.headers.get("content-type") ?? "";
    const digest = res.headers.get("docker-content-digest") ?? undefined;
    const bytes = options.head ? new Uint8Array() : await readLimited(res, url);
    return { bytes, mediaType, ...(digest ? { digest } : {}) };
  }

  /** GETs a small blob (an image config), checked against its digest. */
  async smallBlob(hex: string): Promise<Uint8Array> {
    const url = this.blobUrl(hex);
    const { res } = await this.#request(url, { method: "GET", headers: {} });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`Registry ${q(this.ref.registry)} has no blob sha256:${hex}`, {
        status: 404,
      });
    }
    const bytes = await readLimited(res, url);
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== hex) {
      throw new DtkError(
        `Blob ${formatHash(hex)} of ${q(this.label)} does not match its digest: the bytes hash to ${
          formatHash(actual)
        }`,
      );
    }
    return bytes;
  }

  /**
   * One registry call, following redirects itself so that a token goes only to the origin that
   * asked for it (a registry may redirect to another that wants one: registry.k8s.io); retries
   * network failures, 5xx and 429. Resolves to the response and the URL that gave it.
   */
  async #request(
    url: string,
    init: { method: string; headers: Record<string, string> },
  ): Promise<{ res: Response; final: string }> {
    const attempts = this.#options.attempts ?? 3;
    let last: RegistryError | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        let current = url;
        let authorized = false;
        for (let hop = 0; hop <= 10; hop++) {
          const res = await this.#fetch(current, init, await this.#authFor(current));
          if ([301, 302, 303, 307, 308].includes(res.status)) {
            const location = res.headers.get("location");
            await res.body?.cancel();
            if (location === null || hop === 10) {
              throw new RegistryError(`Registry redirects ${q(url)} nowhere, or too often`, {
                status: res.status,
              });
            }
            current = new URL(location, current).href;
            continue;
          }
          if (res.status === 401) {
            const params = parseBearerChallenge(res.headers.get("www-authenticate") ?? "");
            await res.body?.cancel();
            if (params === undefined) throw this.#refused("without a bearer challenge");
            if (authorized) throw this.#refused("even with the token it gave");
            const repository = /\/v2\/(.+)\/(?:manifests|blobs)\//.exec(new URL(current).pathname)
              ?.[1] ?? this.ref.repository;
            this.#challenge = { params, origin: new URL(current).origin, repository };
            await this.#renew();
            authorized = true;
            continue;
          }
          if (res.ok || res.status === 404) return { res, final: current };
          await res.body?.cancel();
          throw new RegistryError(`Registry answered HTTP ${res.status} for ${q(current)}`, {
            status: res.status,
            retryable: res.status >= 500 || res.status === 429,
          });
        }
        throw new RegistryError(`Registry redirects ${q(url)} too often`, { status: 310 });
      } catch (error) {
        if (!(error instanceof RegistryError) || !error.retryable) throw error;
        last = error;
        if (attempt < attempts) {
          await new Promise((r) => setTimeout(r, (this.#options.backoffMs ?? 500) * 2 ** attempt));
        }
      }
    }
    throw last!;
  }

  async #fetch(
    url: string,
    init: { method: string; headers: Record<string, string> },
    auth: Record<string, string>,
    redirect: RequestRedirect = "manual",
  ): Promise<Response> {
    const timeoutMs = this.#options.timeoutMs ?? 30_000;
    const signals = [AbortSignal.timeout(timeoutMs)];
    if (this.#options.signal) signals.push(this.#options.signal);
    try {
      return await fetch(url, {
        method: init.method,
        headers: { ...init.headers, ...auth },
        signal: AbortSignal.any(signals),
        redirect,
      });
    } catch (error) {
      if (this.#options.signal?.aborted) throw this.#options.signal.reason;
      const why = (error as Error).name === "TimeoutError"
        ? `no answer within ${timeoutMs / 1000} s`
        : (error as Error).message.split("\n")[0];
      throw new RegistryError(`Cannot reach the registry ${q(this.ref.registry)}: ${why}`, {
        status: 0,
        retryable: true,
        hint: "Check the network; images already in the store need none (dtk fetch --offline)",
        cause: error,
      });
    }
  }

  #refused(how: string): RegistryError {
    return new RegistryError(
      `Registry ${q(this.ref.registry)} refuses anonymous pulls of ${
        q(this.ref.repository)
      } (HTTP 401 ${how})`,
      {
        status: 401,
        hint:
          `dtk pulls anonymously: check the name at ${this.base}, or copy the image to a registry that allows it and point the config at that`,
      },
    );
  }

  async #renew(): Promise<void> {
    const challenge = this.#challenge?.params;
    if (challenge === undefined) return;
    let url: URL;
    try {
      url = new URL(challenge.realm ?? "");
    } catch {
      throw this.#refused(`with a bad token realm ${q(challenge.realm)}`);
    }
    if (challenge.service) url.searchParams.set("service", challenge.service);
    url.searchParams.set(
      "scope",
      challenge.scope ?? `repository:${this.#challenge?.repository ?? this.ref.repository}:pull`,
    );
    const res = await this.#fetch(url.href, { method: "GET", headers: {} }, {}, "follow");
    if (!res.ok) {
      await res.body?.cancel();
      if (res.status >= 500) {
        throw new RegistryError(`Token service ${q(url.origin)} answered HTTP ${res.status}`, {
          status: res.status,
          retryable: true,
        });
      }
      throw this.#refused(`and its token service answered HTTP ${res.status}`);
    }
    const text = await readTextAtMost(res, MAX_TOKEN_BYTES).catch(() => undefined);
    const body = (() => {
      try {
        return JSON.parse(text ?? "{}");
      } catch {
        return {};
      }
    })() as {
      token?: string;
      access_token?: string;
      expires_in?: number;
    };
    const value = body.token ?? body.access_token;
    if (!value) throw this.#refused("and its token service gave no token");
    // Renew at half the lifetime (default 60 s), so a long layer never starts on a dying token.
    const lifetime = typeof body.expires_in === "number" && body.expires_in > 0
      ? body.expires_in
      : 60;
    this.#token = {
      value,
      expires: Date.now() + lifetime * 500,
      origin: this.#challenge?.origin ?? new URL(this.base).origin,
    };
  }
}

async function readLimited(res: Response, url: string): Promise<Uint8Array> {
  const length = Number(res.headers.get("content-length") ?? "0");
  if (length > MAX_MANIFEST_BYTES) {
    await res.body?.cancel();
    throw invalid(q(url), `${length} bytes is too big`);
  }
  // Checked while it streams in: a body of no declared length is never held whole.
  const bytes = await readAtMost(res, MAX_MANIFEST_BYTES);
  if (bytes === undefined) {
    throw invalid(q(url), `more than ${MAX_MANIFEST_BYTES} bytes is too big`);
  }
  return bytes;
}

/**
 * The headers provider for a registry blob URL (`<base>/v2/<repository>/blobs/sha256:<hex>`), as
 * `dtk store verify --repair` needs it to fetch an image blob again; undefined for other URLs.
 */
export function registryBlobHeaders(
  url: string,
  options: RegistryClientOptions = {},
): (() => Promise<Record<string, string>>) | undefined {
  const m = /^https?:\/\/([^/]+)\/v2\/(.+)\/blobs\/sha256:[0-9a-f]{64}$/.exec(url);
  if (!m) return undefined;
  let client: RegistryClient;
  try {
    client = new RegistryClient(`${m[1]}/${m[2]}`, options);
  } catch {
    return undefined;
  }
  if (!url.startsWith(client.base)) return undefined;
  let ready: Promise<void> | undefined;
  return async () => {
    ready ??= client.authenticate();
    await ready;
    return await client.authHeaders();
  };
}
