/**
 * `SshRemote`: the `Remote` port on the system `ssh`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { CommandError, DtkError, formatDuration, q, tail, TimeoutError } from "../errors/mod.ts";
import {
  commandFailed,
  LocalRunner,
  type Runner,
  type RunResult,
  shellQuote,
} from "../exec/mod.ts";
import type { NodeFile } from "../render/mod.ts";
import { fingerprint, HostKeyChangedError, hostPattern, KnownHosts } from "./_known_hosts.ts";
import { tarArchive } from "./_tar.ts";

export interface ExecOptions {
  /** Kill the command (the local ssh client) after this long; throws `TimeoutError`. */
  timeoutMs?: number;
  stdin?: string | Uint8Array;
  /** Throw `CommandError` on a non-zero exit. Default true. */
  check?: boolean;
  /** Shown in errors instead of the command. */
  what?: string;
  /** Keep stdout out of errors (it may hold a secret). */
  secretOutput?: boolean;
  signal?: AbortSignal;
}

export interface RemoteOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface UploadFileOptions extends RemoteOptions {
  mode: number;
  owner?: string;
}

/** Commands and files on one node. */
export interface Remote {
  /** The node's name, for messages. */
  readonly node: string;
  /** Where its sshd answers (`host` or `[host]:port`). */
  readonly address: string;
  /** Runs a command: a string is a shell line, an array is quoted word by word. */
  exec(command: string | readonly string[], options?: ExecOptions): Promise<RunResult>;
  /**
   * Writes files atomically (temp file in the same folder, mode and owner set, fsync, rename),
   * all of them in one round trip. Parent folders are created (0755).
   */
  upload(files: NodeFile | readonly NodeFile[], options?: RemoteOptions): Promise<void>;
  /** Streams a big local file (a binary) to the node, atomically. */
  uploadFile(localPath: string, remotePath: string, options: UploadFileOptions): Promise<void>;
  /**
   * Runs a shell line with `source` streamed to its stdin (an OCI archive into `ctr import`);
   * nothing is buffered whole. Throws on a non-zero exit, with the stderr tail.
   */
  pipe(
    command: string,
    source: ReadableStream<Uint8Array>,
    options?: RemoteOptions & { what?: string },
  ): Promise<void>;
  /** sha256 (hex) of each path on the node; `undefined` for a missing file. */
  sha256(
    paths: readonly string[],
    options?: RemoteOptions,
  ): Promise<Map<string, string | undefined>>;
  /** Ends the shared connection. */
  close(): Promise<void>;
}

/** ssh could not reach the node's sshd (refused, no route, timed out). Worth retrying. */
export class SshUnreachableError extends DtkError {
  readonly node: string;
  constructor(node: string, where: string, detail: string) {
    super(`Cannot reach ssh of node ${q(node)} at ${where}: ${detail}`, {
      hint: "Check that the VM runs (dtk status) and that its sshd is up",
    });
    this.node = node;
  }
}

/** The node refused the cluster key. */
export class SshAuthError extends DtkError {
  readonly node: string;
  constructor(node: string, where: string, identityFile: string) {
    super(`Node ${q(node)} at ${where} refused the cluster's SSH key ${q(identityFile)}`, {
      hint: "The VM was built with another key; re-create it with dtk, or add the key's .pub " +
        "line to root's authorized_keys on the node",
    });
    this.node = node;
  }
}

/** No host key is pinned for the node, so dtk will not talk to it. */
export class HostKeyUnknownError extends DtkError {
  readonly node: string;
  constructor(node: string, where: string, offered: string | undefined, knownHosts: string) {
    super(
      `No host key is pinned for node ${q(node)} at ${where}` +
        (offered ? ` (it offers ${offered})` : ""),
      {
        hint: `dtk pins host keys when it creates a VM; if you trust this host, pin its key in ${
          q(knownHosts)
        } by re-running the create step`,
      },
    );
    this.node = node;
  }
}

export interface SshRemoteOptions {
  /** Node name (messages only). */
  node: string;
  host: string;
  /** Default 22. */
  port?: number;
  /** Default `root`. */
  user?: string;
  /** The cluster's private key. */
  identityFile: string;
  /** The cluster's known_hosts (pinned keys). */
  knownHostsFile: string;
  /** Folder for the multiplexing sockets (`cm-%C`); the cluster's `ssh/` folder. */
  controlDir: string;
  runner?: Runner;
  /** TCP connect + banner timeout in seconds. Default 10. */
  connectTimeoutS?: number;
  /** How long an idle shared connection stays open, in seconds. Default 120. */
  controlPersistS?: number;
  /** Default `ssh`. */
  sshPath?: string;
}

// A unix socket path holds at most 107 bytes; ssh adds `cm-` + 40 hex + a 17-byte temp suffix.
const MAX_CONTROL_DIR = 107 - 3 - 40 - 17;

/** The folder for control sockets: `dir` when short enough, else a short one under /tmp. */
function controlSocketDir(dir: string): string {
  if (dir.length <= MAX_CONTROL_DIR) return dir;
  const uid = Deno.uid() ?? 0;
  const id = createHash("sha256").update(dir).digest("hex").slice(0, 16);
  return `/tmp/dtk-${uid}/${id}`;
}

/** The `Remote` port over the system `ssh`. */
export class SshRemote implements Remote {
  readonly node: string;
  readonly address: string;
  readonly #o: Required<Omit<SshRemoteOptions, "runner">>;
  readonly #runner: Runner;
  readonly #controlDir: string;
  #prepared = false;

  constructor(options: SshRemoteOptions) {
    this.#o = {
      port: 22,
      user: "root",
      connectTimeoutS: 10,
      controlPersistS: 120,
      sshPath: "ssh",
      ...options,
    };
    this.#runner = options.runner ?? new LocalRunner();
    this.node = options.node;
    this.address = hostPattern(options.host, this.#o.port);
    this.#controlDir = controlSocketDir(options.controlDir);
  }

  /** The ssh options every call uses (exposed for `dtk ssh`, which execs ssh interactively). */
  sshArgs(): string[] {
    const o = this.#o;
    const opts: Record<string, string> = {
      BatchMode: "yes",
      ControlMaster: "auto",
      ControlPersist: String(o.controlPersistS),
      ControlPath: `${this.#controlDir}/cm-%C`,
      ConnectTimeout: String(o.connectTimeoutS),
      ServerAliveInterval: "5",
      ServerAliveCountMax: "3",
      UserKnownHostsFile: o.knownHostsFile,
      GlobalKnownHostsFile: "/dev/null",
      StrictHostKeyChecking: "yes",
      CheckHostIP: "no",
      UpdateHostKeys: "no",
      IdentitiesOnly: "yes",
      IdentityFile: o.identityFile,
      PasswordAuthentication: "no",
      KbdInteractiveAuthentication: "no",
      LogLevel: "ERROR",
    };
    // -F /dev/null: the user's ~/.ssh/config must not change how dtk reaches its nodes.
    return [
      "-F",
      "/dev/null",
      ...Object.entries(opts).flatMap(([k, v]) => ["-o", `${k}=${v}`]),
      "-p",
      String(o.port),
      "-l",
      o.user,
      o.host,
    ];
  }

  async #prepare(): Promise<void> {
    if (this.#prepared) return;
    await Deno.mkdir(this.#controlDir, { recursive: true, mode: 0o700 });
    this.#prepared = true;
  }

  /** Turns an ssh-level failure (exit 255 with ssh's own message) into a precise error. */
  async #sshError(stderr: string): Promise<DtkError | undefined> {
    const o = this.#o;
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(stderr)) {
      const pinned = await new KnownHosts(o.knownHostsFile).lookup(o.host, o.port);
      const offered = stderr.match(/SHA256:[A-Za-z0-9+/]+/)?.[0] ?? "an unknown key";
      const expected = pinned[0] ? fingerprint(pinned[0]) : "a different key";
      return new HostKeyChangedError(o.node, this.address, expected, offered, o.knownHostsFile);
    }
    if (/No \S+ host key is known|Host key verification failed/i.test(stderr)) {
      const offered = stderr.match(/SHA256:[A-Za-z0-9+/]+/)?.[0];
      return new HostKeyUnknownError(o.node, this.address, offered, o.knownHostsFile);
    }
    if (/Permission denied \(/.test(stderr)) {
      return new SshAuthError(o.node, this.address, o.identityFile);
    }
    const unreachable = stderr.match(
      /(Connection refused|Connection timed out|timed out|No route to host|Network is unreachable|Connection closed by|Connection reset|kex_exchange_identification[^\n]*|banner exchange[^\n]*|Could not resolve hostname[^\n]*)/i,
    );
    if (unreachable) return new SshUnreachableError(o.node, this.address, unreachable[1]!.trim());
    return undefined;
  }

  #describe(command: string | readonly string[], what?: string): string {
    const text = typeof command === "string" ? command : command.map(shellQuote).join(" ");
    const short = text.length > 120 ? `${text.slice(0, 117)}...` : text;
    return `${what ?? q(short)} on node ${q(this.node)}`;
  }

  async exec(command: string | readonly string[], options: ExecOptions = {}): Promise<RunResult> {
    await this.#prepare();
    let line = typeof command === "string" ? command : command.map(shellQuote).join(" ");
    if (options.timeoutMs !== undefined) {
      // A multiplexed ssh client hands its pipes to the master: killing the client does not end
      // the remote command nor close our pipes. The node enforces the same deadline itself.
      const seconds = Math.max(1, Math.ceil(options.timeoutMs / 1000));
      line = `exec timeout -k 2 ${seconds} sh -c ${shellQuote(line)}`;
    }
    const argv = [this.#o.sshPath, ...this.sshArgs(), "--", line];
    const what = this.#describe(command, options.what);
    const { signal, timedOut, dispose } = deadline(options.timeoutMs, options.signal);
    let result: RunResult;
    try {
      result = await this.#runner.run(argv, {
        stdin: options.stdin,
        check: false,
        signal,
        what,
        secretOutput: options.secretOutput,
      });
    } catch (error) {
      if (timedOut()) {
        throw new TimeoutError(what, { timeoutMs: options.timeoutMs ?? 0, cause: error });
      }
      throw error;
    } finally {
      dispose();
    }
    if (timedOut()) throw new TimeoutError(what, { timeoutMs: options.timeoutMs ?? 0 });
    if (result.code === 255) {
      const sshError = await this.#sshError(result.stderr);
      if (sshError) throw sshError;
    }
    if (!result.success && options.check !== false) {
      throw commandFailed(argv, result, { what, secretOutput: options.secretOutput });
    }
    return result;
  }

  async upload(files: NodeFile | readonly NodeFile[], options: RemoteOptions = {}): Promise<void> {
    const list: readonly NodeFile[] = Array.isArray(files) ? files : [files as NodeFile];
    if (list.length === 0) return;
    const encoder = new TextEncoder();
    const tag = crypto.randomUUID().slice(0, 8);
    const plan = list.map((f) => {
      checkPath(f.path);
      const temp = posix.join(posix.dirname(f.path), `.${posix.basename(f.path)}.dtk-${tag}`);
      return { file: f, temp };
    });
    const seen = new Set<string>();
    for (const { file } of plan) {
      if (seen.has(file.path)) throw new DtkError(`File ${q(file.path)} is uploaded twice`);
      seen.add(file.path);
    }
    const archive = tarArchive(plan.map(({ file, temp }) => ({
      name: temp.slice(1),
      data: encoder.encode(file.content),
      mode: file.mode,
    })));
    const temps = plan.map((p) => shellQuote(p.temp)).join(" ");
    const dirs = [...new Set(plan.map((p) => posix.dirname(p.file.path)))].map(shellQuote).join(
      " ",
    );
    const script = [
      "set -eu",
      "umask 077",
      `trap 'rm -f -- ${temps.replaceAll("'", `'\\''`)}' EXIT`,
      `mkdir -p -m 755 -- ${dirs}`,
      "tar -x -o -f - -C /",
      ...plan.flatMap(({ file, temp }) => [
        `chmod ${file.mode.toString(8).padStart(4, "0")} -- ${shellQuote(temp)}`,
        ...(file.owner ? [`chown ${shellQuote(file.owner)} -- ${shellQuote(temp)}`] : []),
      ]),
      // fsync before rename: after a crash the node has the old file or the new one, never an empty one.
      `sync -- ${temps} 2>/dev/null || sync`,
      ...plan.map(({ file, temp }) => `mv -f -- ${shellQuote(temp)} ${shellQuote(file.path)}`),
    ].join("\n");
    await this.exec(script, {
      stdin: archive,
      timeoutMs: options.timeoutMs ?? 60_000,
      signal: options.signal,
      what: `upload of ${list.length === 1 ? q(list[0]!.path) : `${list.length} files`}`,
    });
  }

  async uploadFile(
    localPath: string,
    remotePath: string,
    options: UploadFileOptions,
  ): Promise<void> {
    checkPath(remotePath);
    await this.#prepare();
    const temp = posix.join(
      posix.dirname(remotePath),
      `.${posix.basename(remotePath)}.dtk-${crypto.randomUUID().slice(0, 8)}`,
    );
    const script = [
      "set -eu",
      "umask 077",
      `trap 'rm -f -- ${shellQuote(temp).replaceAll("'", `'\\''`)}' EXIT`,
      `mkdir -p -m 755 -- ${shellQuote(posix.dirname(remotePath))}`,
      `cat > ${shellQuote(temp)}`,
      `chmod ${options.mode.toString(8).padStart(4, "0")} -- ${shellQuote(temp)}`,
      ...(options.owner ? [`chown ${shellQuote(options.owner)} -- ${shellQuote(temp)}`] : []),
      `sync -- ${shellQuote(temp)} 2>/dev/null || sync`,
      `mv -f -- ${shellQuote(temp)} ${shellQuote(remotePath)}`,
    ].join("\n");
    const what = `upload of ${q(localPath)} to ${q(remotePath)}`;
    // Streamed from the file: binaries are large, the Runner port buffers stdin in memory.
    const file = await Deno.open(localPath, { read: true });
    await this.pipe(script, file.readable, {
      what,
      timeoutMs: options.timeoutMs ?? 600_000,
      signal: options.signal,
    });
  }

  async pipe(
    command: string,
    source: ReadableStream<Uint8Array>,
    options: RemoteOptions & { what?: string } = {},
  ): Promise<void> {
    await this.#prepare();
    const what = this.#describe(command, options.what);
    const argv = [this.#o.sshPath, ...this.sshArgs(), "--", command];
    const timeoutMs = options.timeoutMs ?? 600_000;
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderrText = new Response(child.stderr).text();
    let timedOut = false;
    const kill = () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    options.signal?.addEventListener("abort", kill, { once: true });
    try {
      // A node that fails early closes the pipe; its exit status says why.
      await source.pipeTo(child.stdin).catch(() => {});
      const status = await child.status;
      const stderr = await stderrText;
      if (timedOut) throw new TimeoutError(what, { timeoutMs });
      if (options.signal?.aborted) {
        throw new CommandError(`${what} was cancelled`, {
          command: argv,
          code: null,
          stderrTail: tail(stderr),
        });
      }
      if (status.code === 255) {
        const sshError = await this.#sshError(stderr);
        if (sshError) throw sshError;
      }
      if (!status.success) {
        throw new CommandError(`${what} failed with exit code ${status.code}`, {
          command: argv,
          code: status.code,
          stderrTail: tail(stderr),
        });
      }
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", kill);
      await source.cancel().catch(() => {});
    }
  }

  async sha256(
    paths: readonly string[],
    options: RemoteOptions = {},
  ): Promise<Map<string, string | undefined>> {
    const result = new Map<string, string | undefined>(paths.map((p) => [p, undefined]));
    if (paths.length === 0) return result;
    paths.forEach(checkPath);
    const script = `for f in ${paths.map(shellQuote).join(" ")}; do ` +
      `if [ -f "$f" ]; then sha256sum -- "$f"; fi; done`;
    const { stdout } = await this.exec(script, {
      timeoutMs: options.timeoutMs ?? 300_000,
      signal: options.signal,
      what: `sha256 of ${paths.length} file(s)`,
    });
    for (const line of stdout.split("\n")) {
      const match = line.match(/^([0-9a-f]{64}) [ *](.+)$/);
      if (match && result.has(match[2]!)) result.set(match[2]!, match[1]!);
    }
    return result;
  }

  async close(): Promise<void> {
    if (!this.#prepared) return;
    // No master (never connected, or it already timed out) is fine.
    await this.#runner.run([
      this.#o.sshPath,
      ...this.sshArgs().slice(0, -1),
      "-O",
      "exit",
      this.#o.host,
    ], {
      check: false,
      timeoutMs: 10_000,
    }).catch(() => {});
  }
}

function checkPath(path: string): void {
  if (!path.startsWith("/") || path.split("/").includes("..") || path.includes("\n")) {
    throw new DtkError(`Node path ${q(path)} is not a plain absolute path`);
  }
}

/** An AbortSignal that fires on `timeoutMs` or on `outer`, and whether the timeout fired. */
function deadline(
  timeoutMs: number | undefined,
  outer: AbortSignal | undefined,
): { signal: AbortSignal | undefined; timedOut: () => boolean; dispose: () => void } {
  if (timeoutMs === undefined) return { signal: outer, timedOut: () => false, dispose: () => {} };
  const controller = new AbortController();
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    controller.abort(new Error(`timeout after ${formatDuration(timeoutMs)}`));
  }, timeoutMs);
  const onOuter = () => controller.abort(outer?.reason);
  outer?.addEventListener("abort", onOuter, { once: true });
  if (outer?.aborted) controller.abort(outer.reason);
  return {
    signal: controller.signal,
    timedOut: () => fired,
    dispose: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onOuter);
    },
  };
}

export interface WaitForSshOptions {
  timeoutMs: number;
  /** Pause between attempts. Default 1 s. */
  intervalMs?: number;
  signal?: AbortSignal;
}

/**
 * Waits until the node's sshd accepts the cluster key. Only "not reachable yet" is retried; a
 * refused key or a changed host key fails at once (waiting cannot fix them).
 */
export async function waitForSsh(remote: Remote, options: WaitForSshOptions): Promise<void> {
  const started = performance.now();
  const interval = options.intervalMs ?? 1000;
  let last: unknown;
  while (true) {
    const left = options.timeoutMs - (performance.now() - started);
    if (left <= 0) break;
    try {
      await remote.exec("true", {
        timeoutMs: Math.max(1000, Math.min(left, 15_000)),
        signal: options.signal,
      });
      return;
    } catch (error) {
      if (
        error instanceof HostKeyChangedError || error instanceof HostKeyUnknownError ||
        error instanceof SshAuthError || options.signal?.aborted
      ) {
        throw error;
      }
      last = error;
    }
    const pause = Math.min(interval, options.timeoutMs - (performance.now() - started));
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
  }
  throw new TimeoutError(`ssh of node ${q(remote.node)} at ${remote.address}`, {
    timeoutMs: options.timeoutMs,
    cause: last,
    hint: last instanceof Error ? `Last attempt: ${last.message}` : "Check that the VM has booted",
  });
}

/**
 * The node's ed25519 host key as sshd offers it (`ssh-keyscan`), for trust-on-first-use when a
 * driver cannot tell dtk the key it installed.
 */
export async function scanHostKey(
  host: string,
  port: number,
  options: { runner?: Runner; timeoutMs?: number } = {},
): Promise<string> {
  const runner = options.runner ?? new LocalRunner();
  const timeoutS = Math.max(1, Math.round((options.timeoutMs ?? 10_000) / 1000));
  const result = await runner.run(
    ["ssh-keyscan", "-T", String(timeoutS), "-t", "ed25519", "-p", String(port), host],
    { check: false, timeoutMs: (timeoutS + 5) * 1000 },
  );
  const line = result.stdout.split("\n").find((l) => /\sssh-ed25519\s/.test(l));
  if (!line) {
    throw new SshUnreachableError(
      host,
      hostPattern(host, port),
      tail(result.stderr, 3) || "no ed25519 host key offered",
    );
  }
  const [, type, blob] = line.trim().split(/\s+/);
  return `${type} ${blob}`;
}
