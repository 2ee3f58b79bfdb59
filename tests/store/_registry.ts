/**
 * A distribution-API registry of the tests' own, on 127.0.0.1 port 0, serving images built in
 * memory, with the faults dtk must refuse: a token service (or one that never accepts), bytes
 * that do not hash to their digest, a wrong Content-Type, tags that move, images that go away.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { fixture } from "./_server.ts";

export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const CONFIG = "application/vnd.oci.image.config.v1+json";
const LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

const hexOf = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)) as Uint8Array<ArrayBuffer>;

export interface Built {
  /** Digest of the index (or the lone manifest). */
  top: string;
  /** Digest of the amd64 manifest. */
  amd64: string;
  /** Config and layer digests of the amd64 image. */
  blobs: string[];
  size: number;
}

export interface Faults {
  /** Require a bearer token from /token. */
  auth?: boolean;
  /** /token hands out tokens the registry never accepts. */
  authForever?: boolean;
  /** Blob digests (hex) served with one byte flipped. */
  corruptBlobs?: Set<string>;
  /** Manifest digests (hex) served with one byte flipped. */
  corruptManifests?: Set<string>;
  /** Manifest digests (hex) served with this Content-Type. */
  contentType?: Map<string, string>;
  /** Blobs sent `chunk` bytes every `delayMs` (Range is honoured either way). */
  throttle?: { chunk: number; delayMs: number };
}

/** The registry and what it holds. */
export class TestRegistry {
  readonly manifests = new Map<string, { bytes: Uint8Array<ArrayBuffer>; type: string }>();
  readonly blobs = new Map<string, Uint8Array<ArrayBuffer>>();
  /** `repo:tag` → manifest hex. */
  readonly tags = new Map<string, string>();
  readonly faults: Faults = {};
  readonly log: { method: string; path: string; status: number; authorization: string | null }[] =
    [];
  /** Redirect every `/v2/<repo>/…` to `/v2/<prefix>/<repo>/…` of this host (a front registry). */
  redirect?: { host: string; prefix: string };
  #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => {
        const res = this.#handle(req);
        this.log.push({
          method: req.method,
          path: new URL(req.url).pathname,
          status: res.status,
          authorization: req.headers.get("authorization"),
        });
        return res;
      },
    );
  }

  get host(): string {
    return `127.0.0.1:${this.#server.addr.port}`;
  }

  /**
   * Adds `repo:tag`: an index of amd64 and arm64 manifests (or, with `lone`, one amd64
   * manifest), each with a config and `layers` layers of `layerSize` bytes.
   */
  add(
    repo: string,
    tag: string,
    options: {
      layers?: number;
      layerSize?: number;
      seed?: number;
      lone?: boolean;
      arches?: string[];
    } = {},
  ): Built {
    const seed = options.seed ?? 1;
    const arches = options.lone ? ["amd64"] : options.arches ?? ["amd64", "arm64"];
    const descriptors = [];
    let amd64 = "";
    let blobs: string[] = [];
    let size = 0;
    for (const [i, arch] of arches.entries()) {
      const layers = Array.from(
        { length: options.layers ?? 2 },
        (_, j) => fixture(options.layerSize ?? 10_000, seed * 100 + i * 10 + j),
      );
      const config = enc({ architecture: arch, os: "linux", seed });
      for (const b of [config, ...layers]) this.blobs.set(hexOf(b), b);
      const manifest = enc({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: CONFIG, digest: `sha256:${hexOf(config)}`, size: config.length },
        layers: layers.map((l) => ({
          mediaType: LAYER,
          digest: `sha256:${hexOf(l)}`,
          size: l.length,
        })),
      });
      this.manifests.set(hexOf(manifest), { bytes: manifest, type: OCI_MANIFEST });
      descriptors.push({
        mediaType: OCI_MANIFEST,
        digest: `sha256:${hexOf(manifest)}`,
        size: manifest.length,
        platform: { os: "linux", architecture: arch },
      });
      if (arch === "amd64" || i === 0) {
        amd64 = `sha256:${hexOf(manifest)}`;
        blobs = [config, ...layers].map((b) => `sha256:${hexOf(b)}`);
        size = manifest.length + config.length + layers.reduce((n, l) => n + l.length, 0);
      }
    }
    let top = amd64;
    if (!options.lone) {
      const index = enc({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: descriptors });
      this.manifests.set(hexOf(index), { bytes: index, type: OCI_INDEX });
      top = `sha256:${hexOf(index)}`;
    }
    this.tags.set(`${repo}:${tag}`, top.slice(7));
    return { top, amd64, blobs, size };
  }

  #handle(req: Request): Response {
    const url = new URL(req.url);
    if (this.redirect !== undefined && url.pathname.startsWith("/v2/") && url.pathname !== "/v2/") {
      const rest = url.pathname.slice(4);
      return new Response(null, {
        status: 307,
        headers: { location: `http://${this.redirect.host}/v2/${this.redirect.prefix}/${rest}` },
      });
    }
    if (url.pathname === "/token") {
      return Response.json({ token: this.faults.authForever ? "never" : "good", expires_in: 300 });
    }
    if (this.faults.auth || this.faults.authForever) {
      if (req.headers.get("authorization") !== "Bearer good") {
        return new Response("{}", {
          status: 401,
          headers: {
            "www-authenticate":
              `Bearer realm="http://${this.host}/token",service="test",scope="repository:x:pull"`,
          },
        });
      }
    }
    if (url.pathname === "/v2/") return new Response("{}");
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) return new Response("not found", { status: 404 });
    const [, repo, what, reference = ""] = m;
    const head = req.method === "HEAD";
    if (what === "manifests") {
      const hex = reference.startsWith("sha256:")
        ? reference.slice(7)
        : this.tags.get(`${repo}:${reference}`);
      const found = hex === undefined ? undefined : this.manifests.get(hex);
      if (hex === undefined || found === undefined) return new Response("{}", { status: 404 });
      let bytes = found.bytes;
      if (this.faults.corruptManifests?.has(hex)) bytes = flip(bytes);
      return new Response(head ? null : bytes, {
        headers: {
          "content-type": this.faults.contentType?.get(hex) ?? found.type,
          "docker-content-digest": `sha256:${hex}`,
          "content-length": String(bytes.length),
        },
      });
    }
    const hex = reference.replace(/^sha256:/, "");
    const blob = this.blobs.get(hex);
    if (blob === undefined) return new Response("{}", { status: 404 });
    const bytes = this.faults.corruptBlobs?.has(hex) ? flip(blob) : blob;
    const etag = `"sha256:${hex}"`;
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const ifRange = req.headers.get("if-range");
    const start = range && (ifRange === null || ifRange === etag) ? Number(range[1]) : 0;
    const body = bytes.subarray(start);
    const headers: Record<string, string> = { etag, "content-length": String(body.length) };
    if (start > 0) headers["content-range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    const status = start > 0 ? 206 : 200;
    if (head) return new Response(null, { status, headers });
    const pace = this.faults.throttle;
    if (pace === undefined) return new Response(body, { status, headers });
    let off = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (off >= body.length) return controller.close();
        await new Promise((r) => setTimeout(r, pace.delayMs));
        controller.enqueue(body.slice(off, off + pace.chunk));
        off += pace.chunk;
      },
    });
    return new Response(stream, { status, headers });
  }

  #closed?: Promise<void>;

  /** Stops the server (again: a no-op). */
  close(): Promise<void> {
    this.#closed ??= this.#server.shutdown();
    return this.#closed;
  }
}

function flip(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = bytes.slice();
  out[out.length >> 1] = (out[out.length >> 1] ?? 0) ^ 1;
  return out;
}
