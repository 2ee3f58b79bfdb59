/**
 * The status model, pure data: probes run in parallel, each bounded in time, each optionally
 * after another (a node's units are checked only once its ssh answers); their results make a
 * report whose outcome gives the exit code: 0 healthy, 1 degraded, 2 could not check.
 *
 * @module
 */
import { formatDuration } from "../errors/mod.ts";
import { table } from "../ui/mod.ts";

export type ProbeStatus = "ok" | "degraded" | "unchecked" | "skipped";
export type ProbeGroup = "vm" | "node" | "control-plane" | "addon" | "verify";

export interface ProbeOutcome {
  status: ProbeStatus;
  /** One line: what was found. */
  summary: string;
  /** More lines (a journal tail, a drift list), shown with --verbose and in --json. */
  detail?: string;
}

export interface Probe {
  /** Unique, e.g. `vm/vm1`, `units/vm2`, `apiserver`, `addon/cilium`. */
  name: string;
  group: ProbeGroup;
  /** Run only when this probe (by name) ended `ok`; skipped otherwise. */
  after?: string;
  run(signal: AbortSignal): Promise<ProbeOutcome>;
}

export interface ProbeResult extends ProbeOutcome {
  name: string;
  group: ProbeGroup;
  elapsedMs: number;
  timedOut?: boolean;
}

export type StatusOutcome = "healthy" | "degraded" | "unchecked";

export interface StatusReport {
  cluster: string;
  outcome: StatusOutcome;
  /** 0 healthy, 1 degraded, 2 could not check. */
  exitCode: 0 | 1 | 2;
  results: ProbeResult[];
  /** Probe names that are not ok (degraded first), for the one-line verdict. */
  problems: string[];
  elapsedMs: number;
}

export interface RunProbesOptions {
  /** Bound of each probe. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Runs every probe at once (a probe with `after` once that one ends), each within `timeoutMs`:
 * a probe that does not end in time is reported `unchecked`, by name, and its signal aborted.
 * A probe that throws is `unchecked` with the error's message. Results keep the probes' order.
 */
export async function runProbes(
  probes: readonly Probe[],
  options: RunProbesOptions,
): Promise<ProbeResult[]> {
  const byName = new Map<string, Promise<ProbeResult>>();
  const runOne = async (probe: Probe, index: number): Promise<ProbeResult> => {
    // Only an earlier probe can gate a later one, so that no two wait for each other.
    const gate = probes.findIndex((p) => p.name === probe.after);
    if (gate !== -1 && gate < index) {
      const before = await byName.get(probes[gate]!.name);
      if (before !== undefined && before.status !== "ok") {
        return {
          name: probe.name,
          group: probe.group,
          status: "skipped",
          summary: `not checked: ${before.name} is ${before.status}`,
          elapsedMs: 0,
        };
      }
    }
    const started = performance.now();
    const abort = new AbortController();
    const onOuter = () => abort.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onOuter, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<ProbeOutcome & { timedOut: true }>((resolve) => {
      timer = setTimeout(() => {
        abort.abort(new Error(`${probe.name} timed out`));
        resolve({
          status: "unchecked",
          summary: `timed out after ${formatDuration(options.timeoutMs)}`,
          timedOut: true,
        });
      }, options.timeoutMs);
    });
    try {
      const outcome = await Promise.race([
        probe.run(abort.signal).catch((error): ProbeOutcome => ({
          status: "unchecked",
          summary: `could not check: ${error instanceof Error ? error.message : String(error)}`,
        })),
        timeout,
      ]);
      return {
        ...outcome,
        name: probe.name,
        group: probe.group,
        elapsedMs: performance.now() - started,
      };
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onOuter);
    }
  };
  // Registered in order, so the promise of the probe a later one waits for is in the map.
  for (const [index, probe] of probes.entries()) {
    byName.set(probe.name, runOne(probe, index));
  }
  return await Promise.all(probes.map((p) => byName.get(p.name)!));
}

/** The report of a set of results: degraded beats could-not-check, which beats healthy. */
export function summarize(
  cluster: string,
  results: readonly ProbeResult[],
  elapsedMs = 0,
): StatusReport {
  const degraded = results.filter((r) => r.status === "degraded");
  const unchecked = results.filter((r) => r.status === "unchecked");
  const outcome: StatusOutcome = degraded.length > 0
    ? "degraded"
    : unchecked.length > 0 || results.length === 0
    ? "unchecked"
    : "healthy";
  return {
    cluster,
    outcome,
    exitCode: outcome === "healthy" ? 0 : outcome === "degraded" ? 1 : 2,
    results: [...results],
    problems: [...degraded, ...unchecked].map((r) => r.name),
    elapsedMs,
  };
}

const GROUP_TITLE: Record<ProbeGroup, string> = {
  vm: "VMs",
  node: "Nodes",
  "control-plane": "Control plane",
  addon: "Add-ons",
  verify: "Verify",
};

/**
 * One screen: a table per group, then the verdict naming every problem (left out with
 * `verdict: false`, when the caller says it another way, e.g. as the error it exits with).
 */
export function formatStatus(
  report: StatusReport,
  options: { verbose?: boolean; verdict?: boolean } = {},
): string {
  const out: string[] = [];
  for (const group of Object.keys(GROUP_TITLE) as ProbeGroup[]) {
    const rows = report.results.filter((r) => r.group === group);
    if (rows.length === 0) continue;
    out.push(`${GROUP_TITLE[group]}:`);
    const lines = table(
      ["CHECK", "STATUS", "FOUND"],
      rows.map((r) => [r.name, r.status, r.summary]),
    ).trimEnd().split("\n");
    out.push(...lines.map((l) => `  ${l}`));
    if (options.verbose) {
      for (const r of rows) {
        if (r.detail && r.status !== "ok") {
          out.push(`  ${r.name}:`, ...r.detail.trimEnd().split("\n").map((l) => `    ${l}`));
        }
      }
    }
    out.push("");
  }
  if (options.verdict === false) return out.join("\n").trimEnd();
  const byName = new Map(report.results.map((r) => [r.name, r]));
  const named = report.problems.map((n) => `${n} (${byName.get(n)?.summary ?? ""})`);
  const took = formatDuration(report.elapsedMs);
  switch (report.outcome) {
    case "healthy":
      out.push(
        `Cluster "${report.cluster}" is healthy (${report.results.length} checks in ${took})`,
      );
      break;
    case "degraded":
      out.push(`Cluster "${report.cluster}" is degraded: ${named.join("; ")}`);
      break;
    case "unchecked":
      out.push(`Cluster "${report.cluster}" could not be checked fully: ${named.join("; ")}`);
  }
  return out.join("\n");
}
