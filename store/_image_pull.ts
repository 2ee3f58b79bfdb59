/**
 * Images between registries and the store: `dtk lock` resolves a tag to the digest it names
 * (and the manifest for the lock's arch), `dtk fetch` brings the index and manifest in by
 * digest, checked before anything is stored, and hands the config and layers on as ordinary
 * download targets (resumable, locked, several at once).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { DtkError, IntegrityError, q } from "../lib/errors/mod.ts";
import { readAtMost } from "../lib/http/mod.ts";
import { parseImageReference } from "../lib/registry/_reference.ts";
import type { FetchTarget } from "./_download.ts";
import { formatHash, parseHash } from "./_hash.ts";
import {
  MAX_MANIFEST_BYTES,
  type ParsedImage,
  parseImageJson,
  pickPlatform,
  putImageObject,
  readImageObject,
  RegistryClient,
  type RegistryClientOptions,
} from "./_image.ts";
import type { ObjectStore } from "./_objects.ts";
import type { ImageArtifact, LockArtifact } from "./lockfile.ts";
import { imageArtifactName } from "./lockfile.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

function wrongBytes(what: string, expected: string, actual: string): IntegrityError {
  return new IntegrityError(
    `${what} does not match its digest: expected ${expected}, the bytes hash to ${
      formatHash(actual)
    }`,
    {
      hint:
        "The registry served different bytes; nothing was stored. Try again, or another registry",
    },
  );
}

function noArch(what: string, arch: string, image: Extract<ParsedImage, { kind: "index" }>) {
  const have = image.manifests.map((m) =>
    `${m.platform?.os ?? "?"}/${m.platform?.architecture ?? "?"}${
      m.platform?.variant ? `/${m.platform.variant}` : ""
    }`
  );
  return new DtkError(
    `${what} has no image for linux/${arch} (it has ${have.join(", ") || "none"})`,
    {
      hint: "Pick an image built for the cluster's arch, or change the config's arch",
    },
  );
}

/** What `dtk lock` records for an image. */
export async function resolveImage(
  ref: string,
  arch: "amd64" | "arm64",
  options: RegistryClientOptions = {},
): Promise<LockArtifact> {
  const parsed = parseImageReference(ref);
  const client = new RegistryClient(parsed, options);
  const reference = parsed.digest ?? parsed.tag ?? "latest";
  const what = `Image ${q(ref)}`;
  const top = await client.manifest(reference);
  if (top === undefined) throw gone(client, ref, reference);
  const hex = sha256(top.bytes);
  if (parsed.digest !== undefined && formatHash(hex) !== parsed.digest) {
    throw wrongBytes(what, parsed.digest, hex);
  }
  if (top.digest !== undefined && top.digest !== formatHash(hex)) {
    throw wrongBytes(what, top.digest, hex);
  }
  const image = parseImageJson(top.bytes, what, top.mediaType);
  let manifestHex = hex;
  let manifest = image;
  let manifestSize = top.bytes.length;
  if (image.kind === "index") {
    const child = pickPlatform(image, arch);
    if (child === undefined) throw noArch(what, arch, image);
    const got = await client.manifest(child.digest);
    if (got === undefined) throw gone(client, ref, child.digest);
    const childHex = sha256(got.bytes);
    if (childHex !== child.hex) throw wrongBytes(`${what} (linux/${arch})`, child.digest, childHex);
    manifest = parseImageJson(got.bytes, `${what} (linux/${arch})`, child.mediaType);
    if (manifest.kind !== "manifest") {
      throw new DtkError(`${what}: the linux/${arch} entry of its index is another index`, {
        hint: "dtk reads one level of index",
      });
    }
    manifestHex = childHex;
    manifestSize = got.bytes.length;
  }
  if (manifest.kind !== "manifest") throw new DtkError(`${what} is not an image`);
  if (image.kind === "manifest") {
    // A lone manifest names no platform: its config does.
    const config = JSON.parse(
      new TextDecoder().decode(await client.smallBlob(manifest.config.hex)),
    );
    const built = `${config?.os ?? "?"}/${config?.architecture ?? "?"}`;
    if (built !== `linux/${arch}`) {
      throw new DtkError(`${what} is built for ${built}, not linux/${arch}`, {
        hint: "Pick an image built for the cluster's arch, or change the config's arch",
      });
    }
  }
  const size = manifestSize + manifest.config.size +
    manifest.layers.reduce((n, l) => n + l.size, 0);
  return {
    version: parsed.tag ?? parsed.digest ?? "",
    kind: "image",
    arch,
    urls: [],
    hash: formatHash(hex),
    size,
    source: "registry",
    ref,
    manifest: formatHash(manifestHex),
  };
}

function gone(client: RegistryClient, ref: string, reference: string): DtkError {
  const digest = reference.startsWith("sha256:");
  return new DtkError(
    `Registry ${q(client.ref.registry)} has no ${
      q(`${client.label}${digest ? "@" : ":"}${reference}`)
    }${digest ? " (the digest the lock pins for " + q(ref) + ")" : ""}`,
    {
      hint: digest
        ? "The image was removed upstream: import it from a store that has it (dtk store import DIR), or re-lock with dtk lock --update and review what the tag names now"
        : "Check the image name and tag in the config",
    },
  );
}

export interface PullOptions extends RegistryClientOptions {
  /** Mirror folders or URLs holding `sha256/<hex>`, tried before the registry. */
  mirrors?: readonly string[];
  /** False: mirrors only (`dtk store import`). Default true. */
  registry?: boolean;
  log?: (message: string) => void;
  /** Called for the index and manifest once each is stored (or found present). */
  onManifest?: (event: { hex: string; size: number; fetched: boolean }) => void;
}

/**
 * Makes the index (if any) and the arch manifest of a locked image present, each checked
 * (digest, media type, arch) before it is stored, and returns the config and layers as download
 * targets. A tag that moved since the lock is reported; the lock's digest is what is pulled.
 */
export async function pullImageManifests(
  store: ObjectStore,
  name: string,
  artifact: ImageArtifact,
  options: PullOptions = {},
): Promise<FetchTarget[]> {
  const parsed = parseImageReference(artifact.ref);
  const client = new RegistryClient(parsed, options);
  const hex = parseHash(artifact.hash)!;
  const what = `Image ${q(artifact.ref)}`;
  let warnedMove = false;
  const get = async (
    digestHex: string,
    label: string,
    mediaType: string | undefined,
  ): Promise<{ image: ParsedImage; bytes: Uint8Array; store: () => Promise<void> }> => {
    const have = await readImageObject(store, digestHex, label, mediaType);
    if (have !== undefined) {
      return {
        ...have,
        store: () => {
          options.onManifest?.({ hex: digestHex, size: have.bytes.length, fetched: false });
          return Promise.resolve();
        },
      };
    }
    let bytes: Uint8Array | undefined;
    let served = mediaType;
    let from = "";
    for (const mirror of options.mirrors ?? []) {
      bytes = await readMirror(mirror, digestHex);
      if (bytes !== undefined && sha256(bytes) === digestHex) {
        from = mirror;
        break;
      }
      bytes = undefined;
    }
    if (bytes === undefined) {
      if (options.registry === false) {
        throw new DtkError(`${label} is in none of ${(options.mirrors ?? []).map(q).join(", ")}`, {
          hint: "Export it with dtk store export from a store that has it",
        });
      }
      if (!warnedMove && parsed.tag !== undefined && parsed.digest === undefined) {
        warnedMove = true;
        const now = await client.manifest(parsed.tag, { head: true }).catch(() => undefined);
        if (now?.digest !== undefined && now.digest !== artifact.hash) {
          options.log?.(
            `${name}: the tag ${parsed.tag} now names ${now.digest}, the lock pins ${artifact.hash}: fetching the lock's digest (dtk lock --update takes the new one)`,
          );
        }
      }
      const got = await client.manifest(formatHash(digestHex));
      if (got === undefined) throw gone(client, artifact.ref, formatHash(digestHex));
      bytes = got.bytes;
      served = got.mediaType || mediaType;
      from = client.base;
      const actual = sha256(bytes);
      if (actual !== digestHex) throw wrongBytes(label, formatHash(digestHex), actual);
    }
    const image = parseImageJson(bytes, label, served);
    if (mediaType !== undefined && image.mediaType !== mediaType) {
      throw new DtkError(
        `${label} is ${q(image.mediaType)} but its index says ${q(mediaType)}`,
        { hint: "The registry serves an inconsistent image; nothing was stored" },
      );
    }
    const body = bytes;
    return {
      image,
      bytes,
      store: async () => {
        await putImageObject(store, body, {
          hex: digestHex,
          name,
          version: artifact.version,
          mediaType: image.mediaType,
          from,
        });
        options.onManifest?.({ hex: digestHex, size: body.length, fetched: true });
      },
    };
  };
  const top = await get(hex, `${what}@${artifact.hash}`, undefined);
  let manifest = top;
  if (top.image.kind === "index") {
    const wanted = artifact.manifest === undefined ? undefined : parseHash(artifact.manifest);
    const child = wanted === undefined
      ? pickPlatform(top.image, artifact.arch)
      : top.image.manifests.find((m) => m.hex === wanted);
    if (child === undefined) {
      if (wanted === undefined) throw noArch(what, artifact.arch, top.image);
      throw new DtkError(
        `${what}: its index does not list the locked manifest ${artifact.manifest}`,
        {
          hint: "The lock is inconsistent: fix it by hand, or re-lock with dtk lock --update",
        },
      );
    }
    manifest = await get(child.hex, `${what}@${child.digest}`, child.mediaType);
    if (manifest.image.kind !== "manifest") {
      throw new DtkError(`${what}: the linux/${artifact.arch} entry of its index is another index`);
    }
  } else if (artifact.manifest !== undefined && parseHash(artifact.manifest) !== hex) {
    throw new DtkError(
      `${what}: the lock pins manifest ${artifact.manifest}, but ${artifact.hash} is a lone manifest`,
      {
        hint: "Fix the lock by hand, or re-lock with dtk lock --update",
      },
    );
  }
  // Stored only now: an index without the arch, or a bad manifest below it, stores nothing.
  await top.store();
  if (manifest !== top) await manifest.store();
  const image = manifest.image;
  if (image.kind !== "manifest") throw new DtkError(`${what} is not an image`);
  // Manifests from the store or a mirror have not shown where the registry serves blobs from
  // (it may redirect elsewhere, as registry.k8s.io does): ask once, when a blob is to be fetched.
  if (options.registry !== false && !client.located) {
    const blobs = [image.config, ...image.layers];
    const states = await Promise.all(blobs.map((d) => store.check(d.hex, d.size)));
    if (states.some((st) => st !== "present")) {
      await client.manifest(formatHash(hex), { head: true }).catch(() => undefined);
    }
  }
  const headers = () => client.authHeaders();
  return [image.config, ...image.layers].map((d, i) => ({
    name,
    label: `${name} ${i === 0 ? "config" : "layer"} ${d.hex.slice(0, 12)}`,
    hex: d.hex,
    size: d.size,
    file: d.hex,
    urls: options.registry === false ? [] : [client.blobUrl(d.hex)],
    version: artifact.version,
    mediaType: d.mediaType,
    headers,
  }));
}

/** `<mirror>/sha256/<hex>` from a folder, a `file://` or an `http(s)://` mirror; small only. */
async function readMirror(mirror: string, hex: string): Promise<Uint8Array | undefined> {
  const base = mirror.replace(/\/+$/, "");
  if (/^https?:\/\//.test(base)) {
    try {
      const res = await fetch(`${base}/sha256/${hex}`, { signal: AbortSignal.timeout(30_000) });
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      return await readAtMost(res, MAX_MANIFEST_BYTES);
    } catch {
      return undefined;
    }
  }
  const dir = base.startsWith("file://") ? fileURLToPath(base) : base;
  try {
    const path = `${dir}/sha256/${hex}`;
    // As for every local source: a FIFO would block the read, a link may not leave the mirror.
    const info = await Deno.stat(path);
    if (!info.isFile || info.size > MAX_MANIFEST_BYTES) return undefined;
    const [real, root] = await Promise.all([Deno.realPath(path), Deno.realPath(dir)]);
    if (!real.startsWith(root.endsWith("/") ? root : `${root}/`)) return undefined;
    return await Deno.readFile(path);
  } catch {
    return undefined;
  }
}

export interface ResolveImagesOptions extends RegistryClientOptions {
  previous?: Record<string, LockArtifact>;
  update?: boolean;
  warn?: (message: string) => void;
  /** Images resolved at once. Default 4. */
  jobs?: number;
  /** Built-in digests by ref (`IMAGE_PINS`): locked as `source: pinned` without the network. */
  pins?: Readonly<Record<string, string>>;
}

/**
 * The lock entries of `refs`. A pinned ref, or an entry already locked for the same ref and arch,
 * is kept without contacting anything (unless `update`); with `update`, a tag that moved is said.
 */
export async function resolveImages(
  refs: readonly string[],
  arch: "amd64" | "arm64",
  options: ResolveImagesOptions = {},
): Promise<
  { artifacts: Record<string, LockArtifact>; failures: { name: string; message: string }[] }
> {
  const artifacts: Record<string, LockArtifact> = {};
  const failures: { name: string; message: string }[] = [];
  const todo: { name: string; ref: string }[] = [];
  for (const ref of [...new Set(refs)]) {
    const name = imageArtifactName(ref);
    const old = options.previous?.[name];
    const same = old !== undefined && old.kind === "image" && old.ref === ref && old.arch === arch;
    const pin = options.pins?.[ref];
    if (pin !== undefined) {
      artifacts[name] = same && old.hash === pin ? old : {
        version: parseImageReference(ref).tag ?? "",
        kind: "image",
        arch,
        urls: [],
        hash: pin,
        size: null,
        source: "pinned",
        ref,
      };
    } else if (same && !options.update) {
      artifacts[name] = old;
    } else todo.push({ name, ref });
  }
  const queue = [...todo];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      try {
        const entry = await resolveImage(item.ref, arch, options);
        const old = options.previous?.[item.name];
        if (old?.kind === "image" && old.ref === item.ref && old.hash !== entry.hash) {
          options.warn?.(
            `${item.name}: the tag ${entry.version} moved from ${old.hash} to ${entry.hash} since the lock; review the new image`,
          );
        }
        artifacts[item.name] = entry;
      } catch (error) {
        if (options.signal?.aborted) throw error;
        failures.push({ name: item.name, message: (error as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs ?? 4, todo.length) }, worker));
  return { artifacts, failures };
}
