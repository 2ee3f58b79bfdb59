/**
 * `dtk cluster up|down|delete|pause|resume`: the VM lifecycle of the config's `vms[]` through the
 * configured driver. Every wait is bounded by `--timeout`; each command ends with a summary.
 *
 * @module
 */
import { type Command, Option } from "commander";
import type { Config } from "../config/types.ts";
import { DtkError, formatDuration, q, UsageError } from "../errors/mod.ts";
import { table } from "../ui/mod.ts";
import type { Driver } from "../../drivers/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import type { RunLog } from "../runlog/mod.ts";
import { withRunLog } from "./_runlog.ts";

export interface VmCommandsOptions {
  /** Replaces `createDriver` (tests, and the test-only nspawn driver). */
  driver?: (config: Config, ctx: CliContext) => Driver | Promise<Driver>;
}

interface Row {
  name: string;
  action: string;
  state: string;
  ip?: string;
}

/** Parses `90`, `90s`, `5m`, `1h` into milliseconds. */
export function parseTimeout(value: string): number {
  const m = value.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m|h)?$/);
  if (!m || Number(m[1]) <= 0) {
    throw new UsageError(`Invalid timeout ${q(value)}`, { hint: "Use e.g. 90, 90s, 5m or 1h" });
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"];
  return Math.round(Number(m[1]) * unit);
}

/** Registers the lifecycle commands on the `cluster` command. */
export function registerVmCommands(
  cluster: Command,
  ctx: CliContext,
  options: VmCommandsOptions = {},
): void {
  const timeout = (defaultSeconds: number) =>
    new Option("--timeout <duration>", "Give up waiting after this long (e.g. 90s, 5m)")
      .argParser(parseTimeout)
      .default(defaultSeconds * 1000, `${defaultSeconds}s`);

  interface Setup {
    globals: GlobalOptions & { timeout: number };
    config: Config;
    driver: Driver;
    timeoutMs: number;
    /** Runs one VM's part as a step of the run log. */
    step: <T>(id: string, work: () => Promise<T>) => Promise<T>;
  }
  /** Loads the config and the driver, then runs `body`, in a run log when `logAs` is given. */
  const withSetup = async (
    cmd: Command,
    logAs: string | undefined,
    body: (setup: Setup) => Promise<void>,
  ) => {
    const globals = cmd.optsWithGlobals() as GlobalOptions & { timeout: number };
    const config = await ctx.loadConfig(globals);
    const go = async (c: CliContext, log?: RunLog) => {
      const driver = options.driver
        ? await options.driver(config, c)
        : (await import("../../drivers/mod.ts")).createDriver(config, { runner: c.runner });
      const step = async <T>(id: string, work: () => Promise<T>): Promise<T> => {
        if (log === undefined) return await work();
        log.stepStart({ id, phase: logAs ?? "", needs: [] });
        try {
          const result = await log.inStep(id, work);
          log.stepEnd(id, "done");
          return result;
        } catch (error) {
          log.stepEnd(id, "failed", error);
          throw error;
        }
      };
      await body({ globals, config, driver, timeoutMs: globals.timeout, step });
    };
    if (logAs === undefined) return await go(ctx);
    await withRunLog(ctx, config, logAs, (c, log) => go(c, log));
  };

  const report = (rows: Row[], json: boolean | undefined, started: number, verb: string) => {
    if (json) {
      ctx.out.data(JSON.stringify(rows, null, 2));
    } else {
      ctx.out.data(
        table(
          ["VM", "ACTION", "STATE", "IP"],
          rows.map((r) => [r.name, r.action, r.state, r.ip ?? ""]),
        ),
      );
    }
    ctx.out.success(
      `${verb} ${rows.length} VM(s) in ${formatDuration(performance.now() - started)}`,
    );
  };

  const missingCheck = async (driver: Driver, names: string[]) => {
    const absent = [];
    for (const name of names) if (!(await driver.exists(name))) absent.push(name);
    if (absent.length > 0) {
      throw new DtkError(`No such VM: ${absent.map(q).join(", ")}`, {
        hint: "Create the cluster first: dtk cluster create",
      });
    }
  };

  cluster.command("up")
    .description("Start the cluster's VMs and wait until each has an address")
    .addOption(timeout(300))
    .action(async (_opts, cmd) => {
      const started = performance.now();
      await withSetup(
        cmd as Command,
        "up",
        async ({ globals, config, driver, timeoutMs, step }) => {
          const names = config.vms.map((v) => v.name);
          await missingCheck(driver, names);
          const rows = await Promise.all(
            names.map((name) =>
              step(`up/${name}`, async (): Promise<Row> => {
                const before = await driver.status(name);
                await driver.start(name, { timeoutMs });
                const address = await driver.address(name, { timeoutMs });
                return {
                  name,
                  action: before === "running"
                    ? "already running"
                    : before === "paused"
                    ? "resumed"
                    : "started",
                  state: await driver.status(name),
                  ip: address.ip,
                };
              })
            ),
          );
          report(rows, globals.json, started, "Started");
        },
      );
    });

  cluster.command("down")
    .description("Shut the cluster's VMs down (ACPI, then forced after --timeout)")
    .addOption(timeout(120))
    .action(async (_opts, cmd) => {
      const started = performance.now();
      await withSetup(
        cmd as Command,
        "down",
        async ({ globals, config, driver, timeoutMs, step }) => {
          const rows = await Promise.all(
            config.vms.map(({ name }) =>
              step(`down/${name}`, async (): Promise<Row> => {
                const before = await driver.status(name);
                if (before === "absent") return { name, action: "not present", state: "absent" };
                await driver.stop(name, { timeoutMs });
                return {
                  name,
                  action: before === "stopped" ? "already stopped" : "stopped",
                  state: await driver.status(name),
                };
              })
            ),
          );
          report(rows, globals.json, started, "Stopped");
        },
      );
    });

  for (
    const [verb, past, description] of [
      ["pause", "Paused", "Pause the cluster's VMs (memory kept)"],
      ["resume", "Resumed", "Resume the cluster's paused VMs"],
    ] as const
  ) {
    cluster.command(verb)
      .description(description)
      .action(async (_opts, cmd) => {
        const started = performance.now();
        await withSetup(cmd as Command, undefined, async ({ globals, config, driver }) => {
          const names = config.vms.map((v) => v.name);
          await missingCheck(driver, names);
          const rows: Row[] = [];
          for (const name of names) {
            const before = await driver.status(name);
            if (verb === "pause") await driver.pause(name);
            else await driver.resume(name);
            const after = await driver.status(name);
            rows.push({
              name,
              action: before === after ? "unchanged" : verb === "pause" ? "paused" : "resumed",
              state: after,
            });
          }
          report(rows, globals.json, started, past);
        });
      });
  }

  cluster.command("delete")
    .description(
      "Delete the cluster's VMs and their disks (not generated/; --template: the template too)",
    )
    .option("--template", "Also delete the template VM")
    .addOption(timeout(120))
    .action(async (opts, cmd) => {
      const started = performance.now();
      await withSetup(
        cmd as Command,
        "delete",
        async ({ globals, config, driver, timeoutMs, step }) => {
          const names = config.vms.map((v) => v.name);
          if (opts.template) names.push(config.vm.templateVmname);
          const rows: Row[] = [];
          for (const name of names) {
            const deleted = await step(`delete/${name}`, () => driver.delete(name, { timeoutMs }));
            rows.push({ name, action: deleted ? "deleted" : "not present", state: "absent" });
          }
          report(rows, globals.json, started, "Deleted");
        },
      );
    });
}
