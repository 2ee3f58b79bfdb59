/**
 * Daemons the PKI tests start themselves (etcd, sshd, openssl s_server): spawned with a log
 * file, awaited with a timeout, stopped by their own PID.
 *
 * @module
 */
import { TimeoutError } from "../../lib/errors/mod.ts";

/** A free TCP port on 127.0.0.1 (bound and released; tests bind it right after). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export interface Daemon {
  pid: number;
  log: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** The log so far (for assertion messages). */
  output(): Promise<string>;
  /** The exit code once the process has ended by itself, else `undefined`. */
  exitCode(): number | undefined;
}

/** Starts `argv` with stdout and stderr going to `log`. */
export async function startDaemon(argv: string[], log: string): Promise<Daemon> {
  const file = await Deno.open(log, { write: true, create: true, truncate: true });
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both streams into one file; a full pipe would otherwise stall the daemon.
  const sink = file.writable.getWriter();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) await sink.write(chunk);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]).finally(() =>
    sink.close().catch(() => {})
  );
  let stopped = false;
  let code: number | undefined;
  child.status.then((status) => (code = status.code));
  return {
    pid: child.pid,
    log,
    async stop(graceMs = 3000) {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }, graceMs);
      await child.status;
      clearTimeout(timer);
      await drained;
    },
    output: () => Deno.readTextFile(log).catch(() => ""),
    exitCode: () => code,
  };
}

/**
 * Polls `probe` every `intervalMs` until it returns true; TimeoutError naming `what` after
 * `timeoutMs`. Gives up at once when the daemon that should answer has exited.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; daemon?: Daemon },
): Promise<void> {
  const deadline = performance.now() + options.timeoutMs;
  while (true) {
    if (await probe()) return;
    const code = options.daemon?.exitCode();
    if (code !== undefined) {
      throw new Error(`Gave up waiting for ${what}: the process exited with ${code}`);
    }
    if (performance.now() > deadline) {
      throw new TimeoutError(what, { timeoutMs: options.timeoutMs });
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}
