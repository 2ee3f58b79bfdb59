/**
 * `dtk registry`: a read-only OCI distribution endpoint served from the store, for the images of
 * one lock and nothing else. Nodes pull through it (containerd's `hosts.toml` points at it), so
 * a cluster comes up with no network beyond the host.
 *
 * ```ts
 * const index = await RegistryIndex.build(entries, (e) => imageClosure(store, e));
 * const server = startRegistry(index, { hostname: "127.0.0.1", port: 0, objectPath });
 * await server.shutdown();
 * ```
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";
import { handleRegistryRequest } from "./_http.ts";
import type { RegistryIndex } from "./_index.ts";
import type { Lockfile } from "../../store/mod.ts";

export { handleRegistryRequest, ociError, parseRange } from "./_http.ts";
export type { HandlerOptions, OciErrorCode } from "./_http.ts";
export { digestHex, findBlob, findManifest, RegistryIndex } from "./_index.ts";
export type { ClosureBlob, IndexedImage, NameProblem } from "./_index.ts";
export { isRepositoryName, parseImageReference } from "./_reference.ts";
export type { ImageReference } from "./_reference.ts";

/** An image of the lock, as the server, the nodes and `dtk verify` need it. */
export interface LockedImage {
  /** The lock's artifact name. */
  name: string;
  /** The reference as the cluster uses it. */
  ref: string;
  /** `sha256:<hex>` the ref resolves to (index or lone manifest). */
  hash: string;
  /** `sha256:<hex>` of the manifest for the lock's arch (equals `hash` for a lone manifest). */
  manifest: string;
}

/** The `kind: image` artifacts of a lock, sorted by name. */
export function lockedImages(lock: Lockfile): LockedImage[] {
  const out: LockedImage[] = [];
  for (const [name, artifact] of Object.entries(lock.artifacts)) {
    const a = artifact as unknown as Record<string, unknown>;
    if (a.kind !== "image" || typeof a.ref !== "string") continue;
    const manifest = typeof a.manifest === "string" ? a.manifest : artifact.hash;
    out.push({ name, ref: a.ref, hash: artifact.hash, manifest });
  }
  return out.sort((x, y) => x.name.localeCompare(y.name));
}

/** The port `cluster create` serves on unless told otherwise. */
export const DEFAULT_REGISTRY_PORT = 5380;

export interface RegistryServerOptions {
  hostname: string;
  /** 0: any free port. */
  port: number;
  objectPath: (hex: string) => string;
  /** Called for each request that failed inside the server (the client got a 500). */
  onError?: (error: unknown) => void;
}

export interface RegistryServer {
  hostname: string;
  port: number;
  /** `host:port`, bracketed for IPv6. */
  address: string;
  /**
   * Stops accepting, lets requests in flight finish for up to `timeoutMs` (default 5 s), then
   * ends their streams. Resolves within `timeoutMs` either way.
   */
  shutdown(timeoutMs?: number): Promise<{ graceful: boolean }>;
  /** Settles when the server has stopped. */
  finished: Promise<void>;
}

/** Formats `host:port`, bracketing an IPv6 host. */
export function hostPort(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/** Splits `HOST:PORT` (`[v6]:PORT`, or `:PORT` for every address). */
export function parseListen(text: string): { hostname: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** Starts serving `index`. Throws a clear error when the address is taken or not the host's. */
export function startRegistry(
  index: RegistryIndex,
  options: RegistryServerOptions,
): RegistryServer {
  const open = new Set<() => void>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      {
        hostname: options.hostname,
        port: options.port,
        onListen: () => {},
        onError: (error) => {
          options.onError?.(error);
          return new Response("internal error", { status: 500 });
        },
      },
      (request, info) =>
        handleRegistryRequest(request, index, {
          objectPath: options.objectPath,
          open,
          completed: info.completed,
        }),
    );
  } catch (error) {
    const where = hostPort(options.hostname, options.port);
    if (error instanceof Deno.errors.AddrInUse) {
      throw new DtkError(`Cannot serve the registry on ${q(where)}: the port is in use`, {
        hint: "Stop what listens there, or pick another port with --listen HOST:PORT",
        cause: error,
      });
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new DtkError(`Cannot serve the registry on ${q(where)}: not an address of this host`, {
        hint: "Give an address of one of this host's interfaces",
        cause: error,
      });
    }
    throw error;
  }
  const addr = server.addr;
  let stopping: Promise<{ graceful: boolean }> | undefined;
  return {
    hostname: addr.hostname,
    port: addr.port,
    address: hostPort(addr.hostname, addr.port),
    finished: server.finished,
    shutdown(timeoutMs = 5000) {
      stopping ??= (async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const expired = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        });
        const graceful = await Promise.race([server.shutdown().then(() => true), expired]);
        clearTimeout(timer);
        // A client that stopped reading keeps its response open: end the streams; the socket
        // itself goes when the client does or when dtk exits.
        if (!graceful) { for (const abort of [...open]) abort(); }
        return { graceful };
      })();
      return stopping;
    },
  };
}

export { lockIndex, serveLock } from "./_serve.ts";
export type { ServeLockOptions } from "./_serve.ts";
export { layoutIndex, normalName, ociArchive } from "./_archive.ts";
