/**
 * The read-only OCI distribution API over a `RegistryIndex`: `/v2/`, manifests and blobs, GET and
 * HEAD only. Bytes stream from the store's files; nothing is held in memory.
 *
 * @module
 */
import {
  type ClosureBlob,
  digestHex,
  findBlob,
  findManifest,
  type RegistryIndex,
} from "./_index.ts";
import { isRepositoryName } from "./_reference.ts";

/** OCI distribution error codes this server answers with. */
export type OciErrorCode =
  | "NAME_UNKNOWN"
  | "NAME_INVALID"
  | "MANIFEST_UNKNOWN"
  | "BLOB_UNKNOWN"
  | "DIGEST_INVALID"
  | "UNSUPPORTED"
  | "RANGE_INVALID";

const API_HEADERS = { "Docker-Distribution-API-Version": "registry/2.0" };

/** An OCI error body: `{"errors":[{"code","message","detail"}]}`. */
export function ociError(
  status: number,
  code: OciErrorCode,
  message: string,
  options: { detail?: unknown; headers?: Record<string, string>; head?: boolean } = {},
): Response {
  const body = JSON.stringify({ errors: [{ code, message, detail: options.detail ?? {} }] });
  return new Response(options.head ? null : body, {
    status,
    headers: {
      ...API_HEADERS,
      "Content-Type": "application/json",
      ...(options.head ? {} : { "Content-Length": String(new TextEncoder().encode(body).length) }),
      ...options.headers,
    },
  });
}

/** A parsed `Range` header: one byte range, clamped to `size`; "invalid" when unsatisfiable. */
export function parseRange(
  header: string | null,
  size: number,
): { start: number; end: number } | "invalid" | undefined {
  if (header === null) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges or another unit: serve the whole blob, as RFC 9110 allows.
  if (!m) return undefined;
  const [, from = "", to = ""] = m;
  if (from === "" && to === "") return "invalid";
  if (from === "") {
    const suffix = Number(to);
    if (suffix === 0 || size === 0) return "invalid";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(from);
  const end = to === "" ? size - 1 : Math.min(Number(to), size - 1);
  if (start >= size || end < start) return "invalid";
  return { start, end };
}

/**
 * Opens `path` for reading as the regular file its lstat `checked` found. An object is served
 * only as the regular file it is: a link, or another file, put in its place since is refused,
 * never read through.
 */
async function openChecked(path: string, checked: Deno.FileInfo): Promise<Deno.FsFile> {
  if (!checked.isFile) throw new Error(`${path} is not a regular file`);
  const file = await Deno.open(path, { read: true });
  let after: Deno.FileInfo;
  try {
    after = await file.stat();
  } catch (error) {
    file.close();
    throw error;
  }
  if (after.ino !== checked.ino || after.dev !== checked.dev) {
    file.close();
    throw new Error(`${path} was replaced while being opened`);
  }
  return file;
}

/**
 * A stream of `length` bytes of `path` from `start`, read in 1 MiB chunks. `checked` is the
 * lstat of `path` when the caller made one already (for its size): it is not made again.
 */
export function fileStream(
  path: string,
  start: number,
  options: { length: number; open?: Set<() => void>; checked?: Deno.FileInfo },
): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  let left = options.length;
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  // A forced shutdown ends every stream still open, so that no connection outlives it.
  const abort = () => {
    close();
    try {
      controller?.error(new Error("dtk registry is shutting down"));
    } catch { /* already closed */ }
  };
  const close = () => {
    file?.close();
    file = undefined;
    options.open?.delete(abort);
  };
  return new ReadableStream<Uint8Array>({
    async start(c) {
      controller = c;
      file = await openChecked(path, options.checked ?? await Deno.lstat(path));
      options.open?.add(abort);
      if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    },
    async pull(c) {
      if (left <= 0 || file === undefined) {
        close();
        c.close();
        return;
      }
      const buffer = new Uint8Array(Math.min(left, 1 << 20));
      const n = await file.read(buffer);
      if (n === null) {
        close();
        c.error(new Error(`${path} ended ${left} bytes early`));
        return;
      }
      left -= n;
      c.enqueue(n === buffer.length ? buffer : buffer.subarray(0, n));
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 2 });
}

export interface HandlerOptions {
  /** The store file of an object (by hex). */
  objectPath: (hex: string) => string;
  /** Streams still open register their abort here (for a bounded shutdown). */
  open?: Set<() => void>;
  /**
   * Settles when the response was delivered (the server's `info.completed`). Given, a whole
   * blob is answered with the file's own stream, which the server sends without a JS copy.
   */
  completed?: Promise<void>;
}

const ROUTE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;

/** Answers one request. */
export async function handleRegistryRequest(
  request: Request,
  index: RegistryIndex,
  options: HandlerOptions,
): Promise<Response> {
  const url = new URL(request.url);
  const head = request.method === "HEAD";
  if (request.method !== "GET" && !head) {
    return ociError(
      405,
      "UNSUPPORTED",
      `${request.method} is not supported: dtk's registry is read-only`,
      {
        headers: { Allow: "GET, HEAD" },
      },
    );
  }
  if (url.pathname === "/v2/" || url.pathname === "/v2") {
    return new Response(head ? null : "{}", {
      headers: { ...API_HEADERS, "Content-Type": "application/json", "Content-Length": "2" },
    });
  }
  const tags = TAGS.exec(url.pathname);
  const m = ROUTE.exec(url.pathname) ?? (tags ? [tags[0], tags[1], "tags", ""] : null);
  if (!m) return ociError(404, "UNSUPPORTED", `No route for ${url.pathname}`, { head });
  const [, name = "", kind = "", reference = ""] = m;
  if (!isRepositoryName(name)) {
    return ociError(400, "NAME_INVALID", `Invalid repository name ${JSON.stringify(name)}`, {
      head,
    });
  }
  const images = index.repository(name, url.searchParams.get("ns") ?? undefined);
  if (!Array.isArray(images)) {
    return ociError(404, "NAME_UNKNOWN", images.message, {
      head,
      detail: { name, problem: images.problem },
    });
  }
  if (kind === "tags") {
    // The lock's tags only: the list is what the lock pins, not what the upstream has.
    const list = [...new Set(images.flatMap((i) => i.ref.tag === undefined ? [] : [i.ref.tag]))]
      .sort();
    const body = JSON.stringify({ name, tags: list });
    return new Response(head ? null : body, {
      headers: {
        ...API_HEADERS,
        "Content-Type": "application/json",
        "Content-Length": String(new TextEncoder().encode(body).length),
      },
    });
  }
  if (kind === "manifests") {
    const blob = findManifest(images, reference);
    if (blob === undefined) {
      return ociError(
        404,
        "MANIFEST_UNKNOWN",
        `Manifest ${reference} of ${name} is not in the lock`,
        {
          head,
          detail: { name, reference },
        },
      );
    }
    return await serveBlob(request, blob, { ...options, head, ranges: false });
  }
  if (digestHex(reference) === undefined) {
    return ociError(400, "DIGEST_INVALID", `Invalid digest ${JSON.stringify(reference)}`, {
      head,
    });
  }
  const blob = findBlob(images, reference);
  if (blob === undefined) {
    return ociError(404, "BLOB_UNKNOWN", `Blob ${reference} of ${name} is not in the lock`, {
      head,
      detail: { name, digest: reference },
    });
  }
  return await serveBlob(request, blob, { ...options, head, ranges: true });
}

async function serveBlob(
  request: Request,
  blob: ClosureBlob,
  options: HandlerOptions & { head: boolean; ranges: boolean },
): Promise<Response> {
  const hex = digestHex(blob.digest)!;
  const path = options.objectPath(hex);
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
    // A link or anything else planted in objects/ is not a blob of the store.
    if (!info.isFile) throw new Deno.errors.NotFound(`${path} is not a regular file`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return ociError(404, "BLOB_UNKNOWN", `Blob ${blob.digest} is not in the store`, {
      head: options.head,
      detail: { digest: blob.digest },
    });
  }
  const size = info.size;
  const headers: Record<string, string> = {
    ...API_HEADERS,
    "Content-Type": blob.mediaType,
    "Docker-Content-Digest": blob.digest,
    "ETag": `"${blob.digest}"`,
  };
  if (options.ranges) headers["Accept-Ranges"] = "bytes";
  const range = options.ranges ? parseRange(request.headers.get("range"), size) : undefined;
  if (range === "invalid") {
    return ociError(
      416,
      "RANGE_INVALID",
      `Range ${request.headers.get("range")} is outside 0-${size}`,
      {
        head: options.head,
        headers: { "Content-Range": `bytes */${size}` },
      },
    );
  }
  const start = range?.start ?? 0;
  const length = range === undefined ? size : range.end - range.start + 1;
  headers["Content-Length"] = String(length);
  if (range !== undefined) headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
  const status = range === undefined ? 200 : 206;
  if (options.head) return new Response(null, { status, headers });
  if (range === undefined && options.completed !== undefined) {
    // The common case, a whole blob: Deno's server pipes a file's stream natively (several
    // times the speed of chunks through JS). A forced shutdown closes the file under it.
    const file = await openChecked(path, info);
    const abort = () => {
      try {
        file.close();
      } catch { /* already closed at the end of the stream */ }
    };
    options.open?.add(abort);
    options.completed.catch(() => {}).finally(() => options.open?.delete(abort));
    return new Response(file.readable, { status, headers });
  }
  const stream = fileStream(path, start, { length, open: options.open, checked: info });
  return new Response(stream, { status, headers });
}
