/**
 * The `dtk` entry point: builds the command tree, runs it, renders an error once, and sets the
 * exit code.
 *
 * @module
 */
import {
  buildProgram,
  type GlobalOptions,
  renderError,
  translateCommanderError,
} from "./lib/cli/mod.ts";
import type { CliContext } from "./lib/cli/context.ts";
import { ConfigError, InterruptedError } from "./lib/errors/mod.ts";
import { LocalRunner } from "./lib/exec/mod.ts";
import { Output } from "./lib/ui/mod.ts";
import { loadConfig } from "./lib/config/mod.ts";
import { renderIssue } from "./lib/cli/render_error.ts";
import type { TestDriverFactory } from "./drivers/mod.ts";

/** What only a test entry passes to `main()`. */
export interface MainOptions {
  /** The test-only `test-nspawn` driver (`tests/harness/dtk.ts`); dtk never imports tests. */
  testDriver?: TestDriverFactory;
}

/** Runs dtk with `args`; returns the exit code. */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  // Flags are read before parsing so that errors in parsing itself honour them.
  const early = {
    color: !args.includes("--no-color"),
    quiet: args.includes("-q") || args.includes("--quiet"),
    verbose: args.includes("-v") || args.includes("--verbose"),
  };
  const json = args.includes("--json");
  const ctx: CliContext = {
    runner: new LocalRunner(),
    out: Output.fromEnv(early),
    cwd: Deno.cwd(),
    env: (name) => Deno.env.get(name),
    testDriver: options.testDriver,
    async loadConfig(globals: GlobalOptions) {
      const { config, warnings } = await loadConfig({ path: globals.config, cwd: this.cwd });
      for (const warning of warnings) {
        ctx.out.warn(
          `${warning.file}:${warning.line}:${warning.column} ${warning.message}${
            warning.hint ? ` (${warning.hint})` : ""
          }`,
        );
      }
      return config;
    },
  };
  const program = buildProgram(ctx);
  const abort = new AbortController();
  const onSignal = () => abort.abort(new InterruptedError());
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    if (args.length === 0) {
      program.outputHelp();
      return 0;
    }
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    // The reader of our output went away (`dtk … | head`): nothing left to say.
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    const translated = translateCommanderError(error);
    if (translated === "exit-ok") return 0;
    const failure = translated ?? error;
    if (json && failure instanceof ConfigError) {
      ctx.out.data(JSON.stringify({ valid: false, issues: failure.issues }, null, 2));
    }
    const { text, exitCode } = renderError(failure, ctx.out);
    try {
      ctx.out.error(text);
    } catch (writeError) {
      // `dtk doctor 2>&1 | head`: the error cannot be shown, but the exit code still tells.
      if (!(writeError instanceof Deno.errors.BrokenPipe)) throw writeError;
    }
    return exitCode;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

export { renderIssue };

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
