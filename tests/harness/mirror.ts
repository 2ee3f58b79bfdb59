/**
 * A loopback artifact mirror: a small HTTP server on 127.0.0.1 (free port) serving a folder by
 * file name (`/<file>`) and by content (`/sha256/<hex>`), the two paths dtk's store tries. It
 * honours `Range` and `If-Range` (ETag = the sha256) so that resumed downloads are real.
 *
 * @module
 */
import { join } from "node:path";
import type { ArtifactSet } from "./artifacts.ts";

export interface MirrorRequest {
  method: string;
  path: string;
  status: number;
  range: string | null;
}

export interface Mirror extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Every request served, in order. */
  requests: MirrorRequest[];
  close(): Promise<void>;
}

export interface MirrorOptions {
  /** sha256 hex → file name, for `/sha256/<hex>`. */
  byHash?: Record<string, string>;
}

/** Serves `dir` on 127.0.0.1 until `close()`. */
export function startMirror(dir: string, options: MirrorOptions = {}): Mirror {
  const requests: MirrorRequest[] = [];
  const byHash = options.byHash ?? {};
  const hashOf = Object.fromEntries(Object.entries(byHash).map(([h, f]) => [f, h]));

  const handler = async (request: Request): Promise<Response> => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    const range = request.headers.get("range");
    const respond = (response: Response) => {
      requests.push({ method: request.method, path, status: response.status, range });
      return response;
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      return respond(new Response("method not allowed\n", { status: 405 }));
    }
    let name: string | undefined;
    const hashMatch = path.match(/^\/sha256\/([0-9a-f]{64})$/);
    if (hashMatch?.[1]) name = byHash[hashMatch[1]];
    else if (/^\/[A-Za-z0-9][A-Za-z0-9._+@-]*$/.test(path)) name = path.slice(1);
    if (name === undefined) return respond(new Response("not found\n", { status: 404 }));
    let file: Deno.FsFile;
    let size: number;
    try {
      file = await Deno.open(join(dir, name), { read: true });
      size = (await file.stat()).size;
    } catch {
      return respond(new Response("not found\n", { status: 404 }));
    }
    const etag = hashOf[name] ? `"${hashOf[name]}"` : undefined;
    const headers = new Headers({
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
    });
    if (etag) headers.set("etag", etag);
    let start = 0;
    let end = size - 1;
    let status = 200;
    const ifRange = request.headers.get("if-range");
    const rangeApplies = range !== null && (ifRange === null || ifRange === etag);
    if (rangeApplies) {
      const m = range.match(/^bytes=(\d*)-(\d*)$/);
      if (!m || (m[1] === "" && m[2] === "")) {
        file.close();
        return respond(
          new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } }),
        );
      }
      if (m[1] === "") {
        start = Math.max(0, size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== "") end = Math.min(end, Number(m[2]));
      }
      if (start >= size || start > end) {
        file.close();
        return respond(
          new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } }),
        );
      }
      status = 206;
      headers.set("content-range", `bytes ${start}-${end}/${size}`);
    }
    headers.set("content-length", String(end - start + 1));
    if (request.method === "HEAD") {
      file.close();
      return respond(new Response(null, { status, headers }));
    }
    await file.seek(start, Deno.SeekMode.Start);
    let remaining = end - start + 1;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (remaining <= 0) {
          file.close();
          controller.close();
          return;
        }
        const buffer = new Uint8Array(Math.min(1 << 20, remaining));
        const n = await file.read(buffer);
        if (n === null) {
          file.close();
          controller.close();
          return;
        }
        remaining -= n;
        controller.enqueue(buffer.subarray(0, n));
      },
      cancel() {
        file.close();
      },
    });
    return respond(new Response(body, { status, headers }));
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  const port = server.addr.port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.shutdown();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Serves an artifact set, by name and by hash. */
export function startArtifactMirror(set: ArtifactSet): Mirror {
  return startMirror(set.dir, {
    byHash: Object.fromEntries(set.artifacts.map((a) => [a.sha256, a.file])),
  });
}
