/**
 * Small helpers shared by the harness modules.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { TimeoutError } from "../../lib/errors/mod.ts";

/** Root of everything the harness caches on the machine (rootfs, k8s build, artifacts). */
export function cacheRoot(): string {
  return Deno.env.get("DTK_TEST_CACHE") ?? "/var/cache/dtk-test";
}

/** Root of the per-run state (node overlays, netns records); `sweepStale` scans it. */
export function runRoot(): string {
  return Deno.env.get("DTK_TEST_RUN_DIR") ?? "/var/tmp/dtk-test";
}

/** sha256 hex of a file, streamed through 1 MiB reads. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buffer = new Uint8Array(1 << 20);
    while (true) {
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

export function sha256Text(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** True when a process with this PID exists (and is not a zombie). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` until it returns a value other than `undefined`, or throws a `TimeoutError`
 * naming `awaited`. The last probe error becomes the cause.
 */
export async function waitFor<T>(
  awaited: string,
  probe: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal; hint?: string },
): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  let lastError: unknown;
  while (true) {
    options.signal?.throwIfAborted();
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() >= deadline) {
      throw new TimeoutError(awaited, {
        timeoutMs: options.timeoutMs,
        cause: lastError,
        hint: options.hint,
      });
    }
    await sleep(options.intervalMs ?? 100);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Mount points (unescaped) from /proc/self/mountinfo. */
export function mountPoints(): string[] {
  const text = Deno.readTextFileSync("/proc/self/mountinfo");
  return text.split("\n").filter((l) => l.length > 0).map((line) =>
    (line.split(" ")[4] ?? "").replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
  );
}

/** Prints a timing line on stderr so CI logs show where time goes. */
export function logTiming(what: string, ms: number): void {
  console.error(`[harness] ${what}: ${(ms / 1000).toFixed(2)} s`);
}
