/**
 * `dtk cluster list` and `dtk cluster status`.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { DtkError, formatDuration, q } from "../errors/mod.ts";
import { lockPath, storeDir } from "../paths/mod.ts";
import { table } from "../ui/mod.ts";
import type { Driver, VmState } from "../../drivers/types.ts";
import type { ClusterEntry, StatusReport } from "../status/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import { parseSeconds } from "./_parse.ts";

export interface StatusCommandsOptions {
  driver: (config: Config, ctx: CliContext) => Driver | Promise<Driver>;
}

function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((resolve) => timer = setTimeout(() => resolve(fallback), ms)),
  ]);
}

function when(iso: string | undefined): string {
  return iso === undefined ? "" : iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "Z");
}

export function registerStatusCommands(
  cluster: Command,
  ctx: CliContext,
  options: StatusCommandsOptions,
): void {
  cluster
    .command("list")
    .description("Every cluster dtk knows on this machine, with its VMs' state")
    .addHelpText(
      "after",
      `
Clusters are found from the store's roots (every cluster cluster create made, every lock) and from
generated/ in the current folder. A cluster whose folder or config is gone is listed as such.`,
    )
    .action(async function (this: Command) {
      const opts = this.optsWithGlobals() as GlobalOptions;
      const status = await import("../status/mod.ts");
      const { openStore } = await import("../../store/mod.ts");
      const roots = await openStore(storeDir(undefined, ctx.env)).roots().catch(() => []);
      const dirs = await status.clusterFolders({
        roots: roots.map((r) => r.record),
        extraDirs: [ctx.cwd],
      });
      const entries = await Promise.all(dirs.map(async (dir) => {
        const entry = await status.readEntry(dir);
        return await withTimeout(
          vmStates(entry, ctx, options),
          15_000,
          { ...entry, note: "the driver did not answer within 15s" },
        );
      }));
      if (opts.json) {
        ctx.out.data(JSON.stringify(entries, null, 2));
        return;
      }
      if (entries.length === 0) {
        ctx.out.info("No clusters: create one with dtk cluster create");
        return;
      }
      ctx.out.data(table(
        ["NAME", "DRIVER", "NODES", "KUBERNETES", "VMS", "CREATED", "LAST CREATE", "CONFIG"],
        entries.map((e) => [
          e.name,
          e.driver ?? "?",
          String(e.nodes.length),
          e.kubernetes ?? "?",
          e.folder === "gone" ? "folder gone" : e.vms,
          when(e.createdAt),
          e.lastCreate ? `${e.lastCreate.result} ${when(e.lastCreate.at)}` : "",
          e.configState === "gone"
            ? `${e.config} (gone)`
            : e.configState === "unknown"
            ? "(not recorded)"
            : e.config ?? "",
        ]),
      ));
    });

  cluster
    .command("status")
    .description("Health of the config's cluster: VMs, nodes, control plane, add-ons")
    .option("--verify", "Also run dtk verify and include its summary")
    .option("--watch", "Check again every --interval until Ctrl-C")
    .addOption(
      new Option("--interval <seconds>", "With --watch: time between checks")
        .argParser(parseSeconds("--interval")).default(5000, "5"),
    )
    .addOption(
      new Option("--timeout <seconds>", "Bound of each probe")
        .argParser(parseSeconds("--timeout")).default(20_000, "20"),
    )
    .addHelpText(
      "after",
      `
Each VM: the driver's state, its address, ssh with the pinned host key, dtk's systemd units. Each
node: Ready, kubelet version, pressure conditions, pod CIDR (its vms[].pod-cidr). The control
plane: etcd health, apiserver /readyz, the controller-manager and scheduler leader leases. Each
enabled add-on: its helm release and dtk's readiness check. Probes run in parallel, each bounded
by --timeout; one that does not answer in time is named. Exit codes: 0 healthy, 1 degraded, 2
could not check.`,
    )
    .action(async function (this: Command) {
      const opts = this.optsWithGlobals() as GlobalOptions & {
        verify?: boolean;
        watch?: boolean;
        interval: number;
        timeout: number;
      };
      const config = await ctx.loadConfig(opts);
      const driver = await options.driver(config, ctx);
      const { clusterStatus, formatStatus } = await import("../status/mod.ts");
      const check = () =>
        clusterStatus(config, {
          driver,
          runner: ctx.runner,
          probeTimeoutMs: opts.timeout,
          verify: opts.verify ? () => verifySummary(config, ctx) : undefined,
        });
      const show = (report: StatusReport) => {
        if (opts.json) ctx.out.data(JSON.stringify(report, null, 2));
        else {
          // Only a healthy verdict goes to stdout: any other is the error the command exits with.
          ctx.out.data(
            formatStatus(report, { verbose: ctx.out.verbose, verdict: report.exitCode === 0 }),
          );
        }
      };
      let report: StatusReport;
      if (!opts.watch) {
        report = await check();
        show(report);
      } else {
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        Deno.addSignalListener("SIGINT", onSignal);
        try {
          while (true) {
            report = await check();
            if (ctx.out.tty && !opts.json) ctx.out.data("\x1b[H\x1b[2J");
            if (!opts.json) {
              ctx.out.data(
                `Every ${formatDuration(opts.interval)}: ${
                  new Date().toISOString()
                } (Ctrl-C to stop)\n`,
              );
            }
            show(report);
            const slept = await new Promise<boolean>((resolve) => {
              const timer = setTimeout(() => resolve(true), opts.interval);
              stop.signal.addEventListener("abort", () => {
                clearTimeout(timer);
                resolve(false);
              }, { once: true });
            });
            if (!slept || stop.signal.aborted) break;
          }
        } finally {
          Deno.removeSignalListener("SIGINT", onSignal);
        }
      }
      verdict(report!);
    });
}

/** Ends the command with the report's exit code. */
function verdict(report: StatusReport): void {
  if (report.exitCode === 0) return;
  const byName = new Map(report.results.map((r) => [r.name, r]));
  const named = report.problems.map((n) => `${n} (${byName.get(n)?.summary ?? ""})`).join("; ");
  throw new DtkError(
    report.exitCode === 1
      ? `Cluster ${q(report.cluster)} is degraded: ${named}`
      : `Cluster ${q(report.cluster)} could not be checked fully: ${named}`,
    {
      exitCode: report.exitCode,
      hint: report.exitCode === 1
        ? "Start stopped VMs with dtk cluster up; for a unit, see dtk ssh <vm> journalctl -u <unit>"
        : "Check that the VMs run and answer ssh, and that the admin kubeconfig exists",
    },
  );
}

async function verifySummary(config: Config, ctx: CliContext) {
  const { readLock } = await import("../../store/mod.ts");
  const { verifyCluster, formatClusterReport } = await import("../verify/mod.ts");
  const path = lockPath(config);
  const lock = await readLock(path);
  if (lock === undefined) throw new DtkError(`Lock file ${q(path)} does not exist`);
  const report = await verifyCluster(config, {
    lock,
    runner: ctx.runner,
    storeDir: storeDir(config, ctx.env),
    renderOverrides: config.testNspawn?.["renderOverrides"] as never,
  });
  return {
    outcome: report.outcome,
    counts: report.counts as Record<string, number>,
    detail: formatClusterReport(report),
  };
}

/** Asks the cluster's driver for each VM's state, from the config the state file names. */
async function vmStates(
  entry: ClusterEntry,
  ctx: CliContext,
  options: StatusCommandsOptions,
): Promise<ClusterEntry> {
  if (entry.folder === "gone") return entry;
  if (entry.configState !== "present" && entry.configState !== "built-in") {
    return { ...entry, note: `config ${entry.configState}` };
  }
  try {
    const { defaultConfig, loadConfig } = await import("../config/mod.ts");
    const configDir = join(entry.dir, "..", "..");
    const config = entry.configState === "built-in"
      ? defaultConfig({ dir: configDir })
      : (await loadConfig({ path: entry.config, cwd: configDir, env: ctx.env })).config;
    if (config.cluster.name !== entry.name) {
      return { ...entry, note: `the config now names cluster ${q(config.cluster.name)}` };
    }
    const driver = await options.driver(config, ctx);
    const states: Record<string, VmState> = {};
    await Promise.all(entry.nodes.map(async (n) => {
      states[n] = await driver.status(n).catch((): VmState => "unknown");
    }));
    const { aggregateVms } = await import("../status/mod.ts");
    return {
      ...entry,
      vmStates: states,
      vms: aggregateVms(entry.nodes.map((n) => states[n] ?? "unknown")),
    };
  } catch (error) {
    return { ...entry, note: error instanceof Error ? error.message : String(error) };
  }
}
