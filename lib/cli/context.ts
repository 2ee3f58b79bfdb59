/**
 * What every command gets: the runner, the output, and a way to load the config named by the
 * global `--config` option.
 *
 * @module
 */
import type { Runner } from "../exec/mod.ts";
import type { Output } from "../ui/mod.ts";
import type { Config } from "../config/types.ts";
import type { TestDriverFactory } from "../../drivers/mod.ts";

/** Global options, present on every command (`cmd.optsWithGlobals()`). */
export interface GlobalOptions {
  config?: string;
  verbose?: boolean;
  quiet?: boolean;
  json?: boolean;
  color?: boolean;
}

export interface CliContext {
  runner: Runner;
  /** Set once the global options are parsed (before any action runs). */
  out: Output;
  cwd: string;
  env: (name: string) => string | undefined;
  /** Loads and validates the config named by `--config`/`DTK_CONFIG`/`./config.yaml`/built-in. */
  loadConfig(globals: GlobalOptions): Promise<Config>;
  /** The test-only driver, registered by the test entry `tests/harness/dtk.ts`; never in dtk. */
  testDriver?: TestDriverFactory;
}
