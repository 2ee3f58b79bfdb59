/**
 * Bounded polling for the drivers: every wait has a deadline and names what it waited for.
 *
 * @module
 */
import { InterruptedError, TimeoutError } from "../lib/errors/mod.ts";

export interface PollOptions {
  timeoutMs: number;
  /** What is awaited, for the error, e.g. `IP address of VM "vm1"`. */
  awaited: string;
  intervalMs?: number;
  hint?: string;
  signal?: AbortSignal;
  /** Injected by tests. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Calls `probe` until it returns a value other than `undefined`, or throws `TimeoutError`. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  options: PollOptions,
): Promise<T> {
  const sleep = options.sleep ?? realSleep;
  const now = options.now ?? (() => performance.now());
  const deadline = now() + options.timeoutMs;
  const interval = options.intervalMs ?? 1000;
  while (true) {
    if (options.signal?.aborted) {
      throw new InterruptedError(undefined, { cause: options.signal.reason });
    }
    const value = await probe();
    if (value !== undefined) return value;
    if (now() + interval > deadline) {
      throw new TimeoutError(options.awaited, { timeoutMs: options.timeoutMs, hint: options.hint });
    }
    await sleep(interval);
  }
}

/** How a driver polls: its interval and (in tests) its clock. */
export interface PollSettings {
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** `pollUntil` with a driver's settings and a caller's bounded wait. */
export function pollFor<T>(
  settings: PollSettings,
  probe: () => Promise<T | undefined>,
  options: { awaited: string; wait: { timeoutMs: number; signal?: AbortSignal }; hint?: string },
): Promise<T> {
  return pollUntil(probe, {
    awaited: options.awaited,
    timeoutMs: options.wait.timeoutMs,
    signal: options.wait.signal,
    intervalMs: settings.pollMs ?? 1000,
    sleep: settings.sleep ?? realSleep,
    hint: options.hint,
  });
}
