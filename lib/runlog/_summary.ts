/**
 * What a run's step timings say: the time of each phase, and the critical path (the chain of
 * steps that each waited for the one before, ending at the step that finished last), which is
 * where a faster run must save time.
 *
 * @module
 */
import { formatDuration } from "../errors/mod.ts";
import { table } from "../ui/mod.ts";
import type { LoggedStep } from "./_log.ts";

export interface PhaseRow {
  phase: string;
  /** From the first step's start to the last step's end. */
  elapsedMs: number;
  ran: number;
  skipped: number;
  failed: number;
}

/** The phases in the order they started. */
export function phaseRows(steps: readonly LoggedStep[]): PhaseRow[] {
  const spans = new Map<string, { start: number; end: number; row: PhaseRow }>();
  for (const s of [...steps].sort((a, b) => a.startMs - b.startMs)) {
    let span = spans.get(s.phase);
    if (!span) {
      span = {
        start: s.startMs,
        end: s.startMs,
        row: { phase: s.phase, elapsedMs: 0, ran: 0, skipped: 0, failed: 0 },
      };
      spans.set(s.phase, span);
    }
    span.end = Math.max(span.end, s.endMs ?? s.startMs);
    if (s.result === "done") span.row.ran++;
    else if (s.result === "skipped") span.row.skipped++;
    else if (s.result === "failed") span.row.failed++;
  }
  return [...spans.values()].map((s) => ({ ...s.row, elapsedMs: s.end - s.start }));
}

export interface PathStep {
  id: string;
  elapsedMs: number;
}

/**
 * The measured critical path, first step first: from the step that ended last, back through the
 * need of each that ended last (the one it waited for).
 */
export function criticalPath(steps: readonly LoggedStep[]): PathStep[] {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const ended = steps.filter((s) => s.endMs !== undefined);
  let current = ended.reduce<LoggedStep | undefined>(
    (best, s) => best === undefined || s.endMs! > best.endMs! ? s : best,
    undefined,
  );
  const path: PathStep[] = [];
  const seen = new Set<string>();
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    path.push({ id: current.id, elapsedMs: current.endMs! - current.startMs });
    current = current.needs.map((n) => byId.get(n)).filter((s): s is LoggedStep =>
      s?.endMs !== undefined
    ).reduce<LoggedStep | undefined>(
      (best, s) => best === undefined || s.endMs! > best.endMs! ? s : best,
      undefined,
    );
  }
  return path.reverse();
}

/** The phase table and the critical path, as printed at the end of a create and in its log. */
export function formatRunSummary(steps: readonly LoggedStep[]): string {
  const rows = phaseRows(steps);
  const path = criticalPath(steps);
  const total = path.reduce((n, s) => n + s.elapsedMs, 0);
  return [
    table(
      ["PHASE", "TIME", "RUN", "UNCHANGED", "FAILED"],
      rows.map((r) => [
        r.phase,
        formatDuration(r.elapsedMs),
        String(r.ran),
        String(r.skipped),
        String(r.failed),
      ]),
    ).trimEnd(),
    "",
    `Critical path (${formatDuration(total)} of step time):`,
    ...path.map((s) => `  ${formatDuration(s.elapsedMs).padStart(8)}  ${s.id}`),
  ].join("\n");
}
