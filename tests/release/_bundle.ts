/**
 * One-file builds of dtk for the tests and the benchmark: `deno bundle` of `main.ts` (of the
 * source tree, or of a stamped staged copy), and a runner for the bundle from an empty folder
 * with no network, no read access to the source tree, and a fresh Deno cache.
 *
 * @module
 */
import { join } from "node:path";
import type { BuildInfo } from "../../lib/cli/_build_info.ts";
import { ROOT, stageSource } from "../build/_release.ts";

const decoder = new TextDecoder();

/**
 * A config with only what `dtk lock` resolves from the built-in pins, without the network (the
 * default containerd and runc take their hashes from the publisher; containerd 2.2.1 and runc
 * v1.4.0 are pinned; cilium's images carry their digests, coredns's would need the registry).
 */
export const PINNED_CONFIG =
  "versions:\n  kubernetes: v1.35.0\n  containerd: 2.2.1\n  runc: v1.4.0\naddons:\n- name: cilium\n  enabled: true\n";

/**
 * The `deno bundle` command line for `entry` into the file `output`, or with `split` into the
 * folder `output` (an entry `main.js` and chunks that its dynamic imports load when they run).
 */
export function bundleArgs(entry: string, output: string, options: { split?: boolean } = {}) {
  const to = options.split ? ["--code-splitting", "--outdir", output] : ["--output", output];
  return ["bundle", "--platform", "deno", "--quiet", ...to, entry];
}

/**
 * Bundles `main.ts` into `<dir>/dtk.js` (with `split`: `<dir>/split/main.js` and its chunks): from
 * a copy of the source without `tests/`, stamped with `build` when given, else from the source
 * tree itself. Returns the file to run.
 */
export async function bundleDtk(
  dir: string,
  options: { build?: BuildInfo; split?: boolean } = {},
): Promise<string> {
  const stage = options.build ? await stageSource(options.build) : undefined;
  const output = join(dir, options.split ? "split" : "dtk.js");
  try {
    const source = stage ?? ROOT;
    const r = await new Deno.Command(Deno.execPath(), {
      args: bundleArgs(join(source, "main.ts"), output, { split: options.split }),
      cwd: source,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0", DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(180_000),
    }).output();
    if (!r.success) throw new Error(`deno bundle failed:\n${decoder.decode(r.stderr)}`);
  } finally {
    if (stage) await Deno.remove(stage, { recursive: true });
  }
  return options.split ? join(output, "main.js") : output;
}

/**
 * `deno run` flags for the bundle: no config or lock file, every permission but the network,
 * and the source tree unreadable, so what works cannot have come from either.
 */
export function runFlags(): string[] {
  return ["run", "--no-config", "--no-lock", "--allow-all", "--deny-net", `--deny-read=${ROOT}`];
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A clean environment in `home`: only what a user's shell would have. */
export function cleanEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: home,
    XDG_CACHE_HOME: join(home, ".cache"),
    DTK_STORE: join(home, "store"),
    NO_COLOR: "1",
    RUST_BACKTRACE: "0",
    DENO_NO_UPDATE_CHECK: "1",
    ...extra,
  };
}

/** Runs the bundle with `args` in `cwd`, bounded in time. */
export async function runBundle(
  bundle: string,
  args: readonly string[],
  options: { cwd: string; env: Record<string, string>; timeoutMs?: number },
): Promise<Run> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [...runFlags(), bundle, ...args],
    cwd: options.cwd,
    env: options.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  return { code: r.code, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
}
