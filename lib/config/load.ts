/**
 * Finds the config (`--config`, `$DTK_CONFIG`, `./config.yaml`, else the built-in default) and
 * loads it. The YAML parser loads only when there is a file to parse: the built-in default
 * comes from a snapshot made at build time, so commands run without a config start fast.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { type ConfigIssue, q, UsageError } from "../errors/mod.ts";
import { BUILT_IN, type Config } from "./types.ts";
import { BUILT_IN_CONFIG } from "./_default_config.ts";

export interface LoadOptions {
  /** `--config`; falls back to `DTK_CONFIG`, then `./config.yaml`, then the built-in default. */
  path?: string;
  cwd?: string;
  env?: (name: string) => string | undefined;
}

export interface LoadedConfig {
  config: Config;
  /** Problems that do not stop dtk (ignored legacy keys, risky combinations). */
  warnings: ConfigIssue[];
}

/** Finds, reads, parses and validates the config. Throws `ConfigError` or `UsageError`. */
export async function loadConfig(options: LoadOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const cwd = options.cwd ?? Deno.cwd();
  const explicit = options.path ?? (env("DTK_CONFIG") || undefined);
  const allowTestDrivers = env("DTK_TEST_DRIVERS") === "1";
  if (explicit !== undefined) {
    const file = resolve(cwd, explicit);
    const text = await readConfigFile(file, explicit);
    const { parseConfig } = await import("./parse.ts");
    return parseConfig(text, { file, dir: join(file, ".."), allowTestDrivers });
  }
  const local = join(cwd, "config.yaml");
  let text: string | undefined;
  try {
    text = await Deno.readTextFile(local);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (text !== undefined) {
    const { parseConfig } = await import("./parse.ts");
    return parseConfig(text, { file: local, dir: cwd, allowTestDrivers });
  }
  return {
    config: defaultConfig({ dir: cwd }),
    warnings: structuredClone(BUILT_IN_CONFIG.warnings),
  };
}

async function readConfigFile(file: string, given: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`Config file not found: ${q(given)}`, {
        hint: "Check the path given to --config or DTK_CONFIG, or omit it to use ./config.yaml",
        cause: error,
      });
    }
    if (error instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`Config path is a folder, not a file: ${q(given)}`, { cause: error });
    }
    throw new UsageError(`Cannot read config file ${q(given)}`, {
      hint: "Check its permissions",
      cause: error,
    });
  }
}

/** The built-in default config, validated (a fresh copy: callers may change it). */
export function defaultConfig(options: { dir?: string } = {}): Config {
  return {
    ...structuredClone(BUILT_IN_CONFIG.config),
    source: { file: BUILT_IN, dir: options.dir ?? Deno.cwd(), builtIn: true },
  };
}
