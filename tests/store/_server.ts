/**
 * A loopback HTTP server for store tests: fixtures with Range/If-Range, and routes that answer
 * 404, 500, reset the connection, stall, send wrong bytes, truncate, throttle, or ignore Range.
 * Every request is logged. Bound to 127.0.0.1 on a free port; `close()` stops it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type FetchTarget, ObjectStore } from "../../store/mod.ts";

export interface Route {
  body?: Uint8Array;
  /** Answer this status with an empty body. */
  status?: number;
  /** Answer 500 this many times first, then behave normally. */
  failTimes?: number;
  /** Answer 404 this many times first. */
  notFoundTimes?: number;
  /** Honour Range (default true). */
  range?: boolean;
  etag?: string;
  /** Send this many bytes, then reset the connection (first `resetTimes` requests). */
  resetAfter?: number;
  resetTimes?: number;
  /** Send this many bytes, then nothing, forever (first `stallTimes` requests). */
  stallAfter?: number;
  stallTimes?: number;
  /** Send only this many bytes but announce no length (truncation without an error). */
  truncateTo?: number;
  /** Throttle: bytes per tick and the tick. */
  chunk?: number;
  delayMs?: number;
  /** Announce a different Content-Length than the body. */
  contentLength?: number;
  headers?: Record<string, string>;
}

export interface LoggedRequest {
  path: string;
  method: string;
  range: string | null;
  ifRange: string | null;
  authorization: string | null;
  status: number;
}

export interface StoreEnv {
  server: TestServer;
  store: ObjectStore;
  dir: string;
}

/** Runs `fn` with a store in a new temp folder and a server; both are gone afterwards. */
export async function withStoreEnv(
  prefix: string,
  fn: (env: StoreEnv) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  const server = new TestServer();
  try {
    await fn({ server, store: new ObjectStore(join(dir, "store")), dir });
  } finally {
    await server.close();
    // A test may have left the folder read-only.
    await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** What to fetch for `body`: its hash and size, from `urls`. */
export function target(
  body: Uint8Array,
  urls: string[],
  extra: Partial<FetchTarget> = {},
): FetchTarget {
  return { name: "thing", hex: sha256(body), size: body.length, file: "thing.bin", urls, ...extra };
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Deterministic pseudo-random bytes (xorshift), so fixtures do not compress or repeat. */
export function fixture(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let x = (seed * 2654435761) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    view.setUint32(i, x);
  }
  for (; i < size; i++) out[i] = i & 0xff;
  return out;
}

export class TestServer {
  readonly routes = new Map<string, Route>();
  readonly log: LoggedRequest[] = [];
  #server: Deno.HttpServer<Deno.NetAddr>;
  #counts = new Map<string, number>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  /** Extra handler tried first (the OCI registry test). */
  handler?: (req: Request, url: URL) => Response | undefined | Promise<Response | undefined>;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  get port(): number {
    return this.#server.addr.port;
  }

  /** Requests for `path` that asked for the whole body (no Range). */
  fullGets(path: string): number {
    return this.log.filter((r) => r.path === path && r.method === "GET" && r.range === null).length;
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    for (const c of this.#streams) {
      try {
        c.error(new Error("server closing"));
      } catch { /* done */ }
    }
    await this.#server.shutdown();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        resolve();
      }, ms);
      this.#timers.add(t);
    });
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const entry: LoggedRequest = {
      path: url.pathname,
      method: req.method,
      range: req.headers.get("range"),
      ifRange: req.headers.get("if-range"),
      authorization: req.headers.get("authorization"),
      status: 0,
    };
    this.log.push(entry);
    const custom = await this.handler?.(req, url);
    if (custom) {
      entry.status = custom.status;
      return custom;
    }
    const route = this.routes.get(url.pathname);
    const n = (this.#counts.get(url.pathname) ?? 0) + 1;
    this.#counts.set(url.pathname, n);
    const reply = (status: number, body?: BodyInit | null, headers?: HeadersInit) => {
      entry.status = status;
      return new Response(body ?? null, { status, headers });
    };
    if (route === undefined) return reply(404, "not found\n");
    if (route.status !== undefined) return reply(route.status, "");
    if (route.notFoundTimes !== undefined && n <= route.notFoundTimes) return reply(404, "");
    if (route.failTimes !== undefined && n <= route.failTimes) return reply(500, "boom\n");
    const body = route.body ?? new Uint8Array();
    const etag = route.etag ?? `"${sha256(body).slice(0, 16)}"`;
    let start = 0;
    let status = 200;
    const headers: Record<string, string> = {
      "etag": etag,
      "accept-ranges": route.range === false ? "none" : "bytes",
      "content-type": "application/octet-stream",
      ...route.headers,
    };
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const ifRange = req.headers.get("if-range");
    if (range && route.range !== false && (ifRange === null || ifRange === etag)) {
      start = Number(range[1]);
      if (start >= body.length) {
        headers["content-range"] = `bytes */${body.length}`;
        return reply(416, null, headers);
      }
      status = 206;
      headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
    }
    let payload = body.subarray(start);
    if (route.truncateTo !== undefined) payload = payload.subarray(0, route.truncateTo);
    else headers["content-length"] = String(route.contentLength ?? payload.length);
    const reset = route.resetAfter !== undefined && n <= (route.resetTimes ?? Infinity)
      ? route.resetAfter
      : undefined;
    const stall = route.stallAfter !== undefined && n <= (route.stallTimes ?? Infinity)
      ? route.stallAfter
      : undefined;
    const chunk = route.chunk ?? 256 * 1024;
    const delay = route.delayMs ?? 0;
    if (
      reset === undefined && stall === undefined && delay === 0 && route.truncateTo === undefined
    ) {
      return reply(status, payload as Uint8Array<ArrayBuffer>, headers);
    }
    const streams = this.#streams;
    const sleep = (ms: number) => this.#sleep(ms);
    let off = 0;
    let ctl: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c;
        streams.add(c);
      },
      async pull(c) {
        const limit = reset ?? stall ?? payload.length;
        if (off >= limit) {
          if (reset !== undefined) {
            streams.delete(ctl);
            c.error(new Error("reset"));
            return;
          }
          if (stall !== undefined) {
            await sleep(3_600_000);
            return;
          }
          streams.delete(ctl);
          c.close();
          return;
        }
        if (delay > 0) await sleep(delay);
        const end = Math.min(off + chunk, limit);
        c.enqueue(payload.slice(off, end));
        off = end;
      },
      cancel() {
        streams.delete(ctl);
      },
    });
    return reply(status, stream, headers);
  }
}
