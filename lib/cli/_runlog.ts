/**
 * Every run of a command that changes a cluster (`cluster create`, `up`, `down`, `delete`,
 * `install-addon`) writes a run log, `generated/<cluster>/logs/<timestamp>-<command>.log`: the
 * command gets a context whose runner logs every command, and the log's path is printed when
 * the run fails.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { clusterDir } from "../paths/mod.ts";
import type { RunLog } from "../runlog/mod.ts";
import type { CliContext } from "./context.ts";

export async function withRunLog<T>(
  ctx: CliContext,
  config: Config,
  command: string,
  work: (ctx: CliContext, log: RunLog) => Promise<T>,
): Promise<T> {
  const { LoggingRunner, Redactor, RunLog } = await import("../runlog/mod.ts");
  const dir = clusterDir(config);
  const log = await RunLog.open(join(dir, "logs"), {
    command,
    redactor: new Redactor(),
    secretsDir: dir,
  });
  log.note(`config: ${config.source.file}; cluster: ${config.cluster.name}`);
  const logged: CliContext = { ...ctx, runner: new LoggingRunner(ctx.runner, log) };
  try {
    const result = await work(logged, log);
    await log.close();
    return result;
  } catch (error) {
    await log.close(error).catch(() => {});
    ctx.out.error(`The log of this run: ${log.path}`);
    throw error;
  }
}
