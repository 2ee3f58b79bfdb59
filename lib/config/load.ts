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
    await Deno.lstat(local);
    text = await readConfigFile(local, local);
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

/** A config is a few KiB; anything over this is a mistake (or an attack), not a config. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads a config file: a regular file (a FIFO or device would block or never end) of at most
 * `MAX_CONFIG_BYTES`, read with that bound even if it grows while it is read.
 */
async function readConfigFile(file: string, given: string): Promise<string> {
  try {
    const info = await Deno.stat(file);
    if (info.isDirectory) {
      throw new UsageError(`Config path is a folder, not a file: ${q(given)}`);
    }
    if (!info.isFile) {
      throw new UsageError(`Config path is not a regular file: ${q(given)}`, {
        hint: "Give a YAML file (a pipe or device is not read)",
      });
    }
    const tooBig = () =>
      new UsageError(
        `Config file ${q(given)} is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`,
        { hint: "A dtk config is a few KiB: check that --config names the right file" },
      );
    if (info.size > MAX_CONFIG_BYTES) throw tooBig();
    using handle = await Deno.open(file, { read: true });
    const buffer = new Uint8Array(MAX_CONFIG_BYTES + 1);
    let size = 0;
    while (size < buffer.length) {
      const n = await handle.read(buffer.subarray(size));
      if (n === null) break;
      size += n;
    }
    if (size > MAX_CONFIG_BYTES) throw tooBig();
    return new TextDecoder().decode(buffer.subarray(0, size));
  } catch (error) {
    if (error instanceof UsageError) throw error;
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
