/**
 * Runs a plan: every step as soon as what it needs is done, at most `jobs` at a time. A step
 * whose input digest matches the state file is skipped. The first failure stops new steps from
 * starting; running ones finish (or see the abort), and the error names the step. Ctrl-C works
 * the same way, and the next run resumes.
 *
 * @module
 */
import { DtkError, formatDuration, InterruptedError } from "../errors/mod.ts";
import type { Phase, Plan, Step } from "../plan/mod.ts";
import type { StateStore } from "./state.ts";

export interface StepHandler {
  /** Digest of everything the step's result depends on; `undefined`: always run. */
  digest?(step: Step): Promise<string | undefined>;
  /** A cheap check that a recorded result still holds (e.g. the VM still exists). */
  stillDone?(step: Step): Promise<boolean>;
  run(step: Step, options: { signal: AbortSignal }): Promise<void>;
}

export type StepEvent =
  | { type: "start"; step: Step; index: number; total: number }
  | { type: "done"; step: Step; index: number; total: number; elapsedMs: number }
  | { type: "skip"; step: Step; index: number; total: number }
  | { type: "fail"; step: Step; index: number; total: number; error: unknown; elapsedMs: number };

export interface ExecuteOptions {
  jobs: number;
  state: StateStore;
  handler: (step: Step) => StepHandler;
  signal?: AbortSignal;
  onEvent?: (event: StepEvent) => void;
  /**
   * Runs around each step's work (digest check and run): the run log uses it to know which step
   * a command belongs to when steps run at once.
   */
  around?: <T>(step: Step, work: () => Promise<T>) => Promise<T>;
}

export interface PhaseTiming {
  phase: Phase;
  elapsedMs: number;
  ran: number;
  skipped: number;
}

export interface RunReport {
  elapsedMs: number;
  ran: string[];
  skipped: string[];
  phases: PhaseTiming[];
}

/** A step failed; `cause` is its error. */
export class StepFailedError extends DtkError {
  readonly step: Step;

  constructor(step: Step, cause: unknown) {
    const inner = cause instanceof Error ? cause.message : String(cause);
    const where = step.node ? ` on node "${step.node}"` : "";
    super(`Step "${step.id}"${where} failed: ${inner}`, {
      cause,
      exitCode: cause instanceof DtkError ? cause.exitCode : 1,
      hint: cause instanceof DtkError && cause.hint
        ? `${cause.hint}. Then run the same command again: finished steps are skipped`
        : "Fix the cause, then run the same command again: finished steps are skipped",
    });
    this.step = step;
  }
}

export async function executePlan(plan: Plan, options: ExecuteOptions): Promise<RunReport> {
  const started = performance.now();
  const steps = new Map(plan.steps.map((s) => [s.id, s]));
  const pending = new Set(plan.steps.map((s) => s.id));
  const finished = new Set<string>();
  const ran: string[] = [];
  const skipped: string[] = [];
  const phaseSpan = new Map<Phase, { start: number; end: number; ran: number; skipped: number }>();
  const total = plan.steps.length;
  let count = 0;
  let failure: { step: Step; error: unknown } | undefined;
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const running = new Map<string, Promise<void>>();

  const span = (phase: Phase) => {
    let s = phaseSpan.get(phase);
    if (!s) {
      s = { start: performance.now(), end: performance.now(), ran: 0, skipped: 0 };
      phaseSpan.set(phase, s);
    }
    return s;
  };

  const runOne = (step: Step) =>
    options.around ? options.around(step, () => runStep(step)) : runStep(step);

  const runStep = async (step: Step) => {
    const index = ++count;
    const handler = options.handler(step);
    const t0 = performance.now();
    const phase = span(step.phase);
    try {
      const digest = handler.digest ? await handler.digest(step) : undefined;
      const record = options.state.step(step.id);
      const unchanged = digest !== undefined && record?.digest === digest &&
        (handler.stillDone ? await handler.stillDone(step) : true);
      if (unchanged) {
        skipped.push(step.id);
        phase.skipped++;
        options.onEvent?.({ type: "skip", step, index, total });
      } else {
        options.onEvent?.({ type: "start", step, index, total });
        await handler.run(step, { signal: inner.signal });
        const elapsedMs = performance.now() - t0;
        if (digest !== undefined) {
          await options.state.recordStep(step.id, {
            digest,
            finishedAt: new Date().toISOString(),
            elapsedMs: Math.round(elapsedMs),
          });
        }
        ran.push(step.id);
        phase.ran++;
        options.onEvent?.({ type: "done", step, index, total, elapsedMs });
      }
      finished.add(step.id);
    } catch (error) {
      const elapsedMs = performance.now() - t0;
      if (!failure) failure = { step, error };
      options.onEvent?.({ type: "fail", step, index, total, error, elapsedMs });
      // Stop the others: a failed cluster step makes later steps pointless.
      if (!inner.signal.aborted) inner.abort(error);
    } finally {
      phase.end = Math.max(phase.end, performance.now());
    }
  };

  try {
    while (pending.size > 0 || running.size > 0) {
      if (!inner.signal.aborted) {
        for (const id of [...pending]) {
          if (running.size >= Math.max(1, options.jobs)) break;
          const step = steps.get(id)!;
          if (step.needs.every((n) => finished.has(n))) {
            pending.delete(id);
            const promise = runOne(step).finally(() => running.delete(id));
            running.set(id, promise);
          }
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
  } finally {
    options.signal?.removeEventListener("abort", onOuterAbort);
  }

  if (failure) {
    if (options.signal?.aborted && !(failure.error instanceof StepFailedError)) {
      throw new InterruptedError(`Interrupted during step "${failure.step.id}"`, {
        cause: failure.error,
      });
    }
    throw new StepFailedError(failure.step, failure.error);
  }
  if (options.signal?.aborted) throw new InterruptedError();
  if (pending.size > 0) {
    throw new DtkError(`Plan could not finish: ${[...pending].join(", ")} never became ready`);
  }
  const phases: PhaseTiming[] = [...phaseSpan.entries()].map(([phase, s]) => ({
    phase,
    elapsedMs: s.end - s.start,
    ran: s.ran,
    skipped: s.skipped,
  }));
  return { elapsedMs: performance.now() - started, ran, skipped, phases };
}

/** One line per event, for logs and non-TTY output. */
export function formatEvent(event: StepEvent): string {
  const n = `[${String(event.index).padStart(String(event.total).length)}/${event.total}]`;
  const where = event.step.node ? ` (${event.step.node})` : "";
  switch (event.type) {
    case "start":
      return `${n} ${event.step.id}${where}: ${event.step.title}`;
    case "skip":
      return `${n} ${event.step.id}: unchanged, skipped`;
    case "done":
      return `${n} ${event.step.id}: done in ${formatDuration(event.elapsedMs)}`;
    case "fail":
      return `${n} ${event.step.id}: failed after ${formatDuration(event.elapsedMs)}`;
  }
}
