/**
 * The cluster's own `known_hosts`: every node's host key pinned, replaced atomically, never the
 * user's `~/.ssh/known_hosts`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DtkError, q } from "../errors/mod.ts";
import { writeFileAtomic } from "../fs/mod.ts";
import { formatCommand } from "../exec/mod.ts";

/** A host key was not what the cluster pinned for that node. */
export class HostKeyChangedError extends DtkError {
  readonly node: string;
  readonly expected: string;
  readonly actual: string;

  constructor(node: string, where: string, expected: string, actual: string, knownHosts: string) {
    super(
      `Host key of node ${q(node)} (${where}) changed: pinned ${expected}, offered ${actual}`,
      {
        hint: `If the VM was re-created on purpose, forget the old key with: ` +
          `${formatCommand(["ssh-keygen", "-f", knownHosts, "-R", where])} (or re-create the VM ` +
          `with dtk); ` +
          `otherwise something else answers at that address`,
      },
    );
    this.node = node;
    this.expected = expected;
    this.actual = actual;
  }
}

/** `host`, or `[host]:port` when the port is not 22 (the known_hosts form). */
export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** OpenSSH's `SHA256:…` fingerprint of a public key line (`ssh-ed25519 AAAA… [comment]`). */
export function fingerprint(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1];
  if (blob === undefined) throw new DtkError(`Not an SSH public key: ${q(publicKey.slice(0, 40))}`);
  const digest = createHash("sha256").update(Uint8Array.from(atob(blob), (c) => c.charCodeAt(0)))
    .digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

function keyOf(publicKey: string): string {
  const [type, blob] = publicKey.trim().split(/\s+/);
  if (!type || !blob) throw new DtkError(`Not an SSH public key: ${q(publicKey.slice(0, 40))}`);
  return `${type} ${blob}`;
}

export interface PinOptions {
  /** Node name, for messages. */
  node: string;
  /** Replace a different pinned key (the VM was re-created with a new key). Default false. */
  replace?: boolean;
}

/**
 * Read-modify-write of one file, one at a time: nodes come up in parallel and each pins its key;
 * without this, two pins read the same old file and the last write drops the other's line.
 */
const queues = new Map<string, Promise<unknown>>();

function exclusive<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(path) ?? Promise.resolve();
  const next = previous.catch(() => {}).then(fn);
  queues.set(path, next);
  const cleanup = () => {
    if (queues.get(path) === next) queues.delete(path);
  };
  next.then(cleanup, cleanup);
  return next;
}

/** One cluster's known_hosts file. */
export class KnownHosts {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  async #lines(): Promise<string[]> {
    try {
      return (await Deno.readTextFile(this.path)).split("\n").filter((l) => l.trim() !== "");
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
  }

  /** The pinned keys (`type base64`) of `host:port`. */
  async lookup(host: string, port: number): Promise<string[]> {
    const pattern = hostPattern(host, port);
    return (await this.#lines()).flatMap((line) => {
      const [hosts, type, blob] = line.trim().split(/\s+/);
      return hosts?.split(",").includes(pattern) && type && blob ? [`${type} ${blob}`] : [];
    });
  }

  /**
   * Pins `publicKey` for `host:port`. The same key again is a no-op; a different key is refused
   * with `HostKeyChangedError` unless `replace`, which drops the old entries.
   */
  pin(host: string, port: number, publicKey: string, options: PinOptions): Promise<void> {
    return exclusive(this.path, () => this.#pin(host, port, publicKey, options));
  }

  async #pin(host: string, port: number, publicKey: string, options: PinOptions): Promise<void> {
    const pattern = hostPattern(host, port);
    const key = keyOf(publicKey);
    const existing = await this.lookup(host, port);
    if (existing.length === 1 && existing[0] === key) return;
    const other = existing.find((k) => k !== key);
    if (other !== undefined && !options.replace) {
      throw new HostKeyChangedError(
        options.node,
        pattern,
        fingerprint(other),
        fingerprint(key),
        this.path,
      );
    }
    const kept = (await this.#lines()).filter((line) => {
      const hosts = line.trim().split(/\s+/)[0];
      return !hosts?.split(",").includes(pattern);
    });
    await writeFileAtomic(this.path, [...kept, `${pattern} ${key}`, ""].join("\n"), {
      mode: 0o600,
    });
  }

  /** Forgets `host:port`. Returns whether anything was removed. */
  remove(host: string, port: number): Promise<boolean> {
    return exclusive(this.path, () => this.#remove(host, port));
  }

  async #remove(host: string, port: number): Promise<boolean> {
    const pattern = hostPattern(host, port);
    const lines = await this.#lines();
    const kept = lines.filter((l) => !l.trim().split(/\s+/)[0]?.split(",").includes(pattern));
    if (kept.length === lines.length) return false;
    await writeFileAtomic(this.path, kept.length ? `${kept.join("\n")}\n` : "", { mode: 0o600 });
    return true;
  }
}
