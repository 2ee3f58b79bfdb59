/**
 * Runs `dtk verify …` through the real command tree in-process, capturing stdout, stderr and
 * the exit code `main.ts` would set.
 *
 * @module
 */
import { buildProgram } from "../../lib/cli/mod.ts";
import type { CliContext } from "../../lib/cli/context.ts";
import { registerVerifyCommands } from "../../lib/cli/verify.ts";
import type { Config } from "../../lib/config/types.ts";
import { DtkError } from "../../lib/errors/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  error?: DtkError;
}

export async function dtkVerify(
  config: Config,
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const ctx: CliContext = {
    runner: new LocalRunner(),
    out: new Output({
      color: false,
      quiet: false,
      verbose: false,
      tty: false,
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
    }),
    cwd: config.source.dir,
    env: (name) => options.env?.[name],
    loadConfig: () => Promise.resolve(config),
  };
  const program = buildProgram(ctx);
  // Until the lead wires verify into lib/cli/mod.ts, the test adds it itself.
  if (!program.commands.some((c) => c.name() === "verify")) {
    registerVerifyCommands(program as never, ctx);
  }
  try {
    await program.parseAsync(args, { from: "user" });
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (!(error instanceof DtkError)) throw error;
    return { code: error.exitCode, stdout, stderr, error };
  }
}
