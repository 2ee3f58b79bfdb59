/**
 * A private containerd (Debian's) on a temp socket, and a `Remote` that runs a node's commands
 * on this host: the most real stand-in for a node's image store that needs no VM. Needs root.
 *
 * @module
 */
import { join } from "node:path";
import type { RunResult } from "../../lib/exec/mod.ts";
import type { Remote } from "../../lib/remote/mod.ts";

export interface PrivateContainerd {
  socket: string;
  stop(): Promise<void>;
}

/** True when this host can run a private containerd (root, the binaries present). */
export function canRunContainerd(): boolean {
  if (Deno.uid() !== 0) return false;
  for (const tool of ["containerd", "ctr"]) {
    const found = new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).outputSync();
    if (!found.success) return false;
  }
  return true;
}

/** Starts containerd with its root, state and socket under `dir` (CRI off), bounded to 20 s. */
export async function startContainerd(dir: string): Promise<PrivateContainerd> {
  await Deno.mkdir(dir, { recursive: true });
  const socket = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  await Deno.writeTextFile(
    config,
    [
      "version = 2",
      `root = ${JSON.stringify(join(dir, "root"))}`,
      `state = ${JSON.stringify(join(dir, "state"))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = ${JSON.stringify(socket)}`,
      "",
    ].join("\n"),
  );
  const log = await Deno.open(join(dir, "containerd.log"), { write: true, create: true });
  const child = new Deno.Command("containerd", {
    args: ["--config", config],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const drained = child.stderr.pipeTo(log.writable).catch(() => {});
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    const killer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await child.status;
    clearTimeout(killer);
    await drained;
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await new Deno.Command("ctr", {
      args: ["-a", socket, "version"],
      stdout: "null",
      stderr: "null",
    }).output();
    if (v.success) return { socket, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`containerd on ${socket} did not answer within 20 s (see containerd.log)`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs a node's shell lines here, with `env` added (the commands log into `log`). */
export class LocalRemote implements Remote {
  readonly node: string;
  readonly address = "localhost";
  readonly log: string[] = [];
  readonly #env: Record<string, string>;

  constructor(node: string, env: Record<string, string> = {}) {
    this.node = node;
    this.#env = env;
  }

  async exec(
    command: string | readonly string[],
    options: { stdin?: string | Uint8Array; check?: boolean; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const line = typeof command === "string" ? command : command.join(" ");
    this.log.push(line);
    const child = new Deno.Command("sh", {
      args: ["-c", line],
      env: this.#env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(options.timeoutMs ?? 120_000),
    }).spawn();
    if (options.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(
        typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin,
      );
      await w.close();
    }
    const out = await child.output();
    const d = new TextDecoder();
    const result = {
      code: out.code,
      success: out.success,
      stdout: d.decode(out.stdout),
      stderr: d.decode(out.stderr),
    } as RunResult;
    if (!out.success && options.check !== false) {
      throw new Error(`${line} failed (${out.code}): ${result.stderr}`);
    }
    return result;
  }

  upload(): Promise<void> {
    throw new Error("not used");
  }

  uploadFile(): Promise<void> {
    throw new Error("not used");
  }

  async pipe(command: string, source: ReadableStream<Uint8Array>): Promise<void> {
    this.log.push(command);
    const child = new Deno.Command("sh", {
      args: ["-c", command],
      env: this.#env,
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(300_000),
    }).spawn();
    const stderr = new Response(child.stderr).text();
    await source.pipeTo(child.stdin);
    const status = await child.status;
    if (!status.success) throw new Error(`${command} failed (${status.code}): ${await stderr}`);
  }

  sha256(): Promise<Map<string, string | undefined>> {
    throw new Error("not used");
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
