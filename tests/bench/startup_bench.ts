/**
 * `deno task bench startup`: start-up of dtk as one bundled file (what `deno compile` embeds, from
 * a stamped staged copy of the source) against `deno run main.ts` from the source tree, for
 * `dtk version`, `dtk --help` and a warm `dtk fetch` (every artifact of the lock already in the
 * store), measured in the same run by hyperfine where it is installed, else by repeated timing
 * here. Goal: the bundle no slower. Also prints the bundle's size, and the same graph bundled
 * with code splitting (dynamic imports stay lazy) to show what evaluating one file whole costs.
 *
 * @module
 */
import { join } from "node:path";
import { ROOT } from "../build/_release.ts";
import { bundleDtk, cleanEnv, PINNED_CONFIG } from "../release/_bundle.ts";
import type { BenchResult } from "./types.ts";

const RUNS = 15;
const WARMUP = 3;
const decoder = new TextDecoder();

interface Case {
  name: string;
  args: string[];
}

const CASES: Case[] = [
  { name: "dtk version", args: ["version"] },
  { name: "dtk --help", args: ["--help"] },
  { name: "dtk fetch (warm: all in the store)", args: ["fetch"] },
];

async function exec(argv: string[], cwd: string, env: Record<string, string>) {
  const r = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  if (!r.success) {
    throw new Error(`${argv.join(" ")} exited ${r.code}:\n${decoder.decode(r.stderr)}`);
  }
  return decoder.decode(r.stdout);
}

async function hyperfine(): Promise<string | undefined> {
  const r = await new Deno.Command("sh", {
    args: ["-c", "command -v hyperfine"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return r.success ? decoder.decode(r.stdout).trim() : undefined;
}

const shellWord = (s: string) => /^[\w./=:,@%+-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;

interface Timing {
  /** Mean wall-clock seconds. */
  mean: number;
  /** Mean user CPU seconds (hyperfine only): steadier than wall-clock on a loaded machine. */
  user?: number;
}

/** Each command line, all measured in one hyperfine run, or by our own interleaved loop. */
async function measure(
  commands: string[][],
  cwd: string,
  env: Record<string, string>,
): Promise<{ tool: string; timings: Timing[] }> {
  const tool = await hyperfine();
  if (tool) {
    const out = join(cwd, "..", "hyperfine.json");
    await exec(
      [
        tool,
        "--shell=none",
        "--warmup",
        String(WARMUP),
        "--runs",
        String(RUNS),
        "--export-json",
        out,
        "--style",
        "none",
        ...commands.map((argv) => argv.map(shellWord).join(" ")),
      ],
      cwd,
      env,
    );
    const report = JSON.parse(await Deno.readTextFile(out)) as { results: Timing[] };
    return {
      tool: "hyperfine",
      timings: report.results.map((r) => ({ mean: r.mean, user: r.user })),
    };
  }
  // Interleaved, so that a change in the machine's load falls on both sides alike.
  const times = commands.map(() => [] as number[]);
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const [j, argv] of commands.entries()) {
      const t = performance.now();
      await exec(argv, cwd, env);
      if (i >= WARMUP) times[j]!.push((performance.now() - t) / 1000);
    }
  }
  return {
    tool: "repeated timing",
    timings: times.map((ts) => ({ mean: ts.reduce((a, b) => a + b, 0) / ts.length })),
  };
}

export async function run(): Promise<BenchResult[]> {
  const work = await Deno.makeTempDir({ prefix: "dtk-bench-startup-" });
  try {
    const bundle = await bundleDtk(work, {
      build: { version: "0.0.0-bench", commit: "0".repeat(40), date: "2026-01-01T00:00:00Z" },
    });
    const size = (await Deno.stat(bundle)).size;
    // The same graph with dynamic imports kept lazy, as chunks: what a single file gives up.
    const split = await bundleDtk(work, {
      build: { version: "0.0.0-bench", commit: "0".repeat(40), date: "2026-01-01T00:00:00Z" },
      split: true,
    });
    const home = join(work, "home");
    const cwd = join(work, "cluster");
    await Deno.mkdir(home);
    await Deno.mkdir(cwd);
    // Both sides share this user's Deno cache: the source run finds its npm packages there, as a
    // developer's does; the bundle needs none.
    const env = cleanEnv(home, {
      DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache/deno"),
    });
    const source = [
      Deno.execPath(),
      "run",
      "--allow-all",
      "--config",
      join(ROOT, "deno.json"),
      join(ROOT, "main.ts"),
    ];
    const bundled = [Deno.execPath(), "run", "--no-config", "--no-lock", "--allow-all", bundle];
    const chunked = [Deno.execPath(), "run", "--no-config", "--no-lock", "--allow-all", split];

    // A warm store: the lock's artifacts replaced by small local files, each added to the store.
    await Deno.writeTextFile(join(cwd, "config.yaml"), PINNED_CONFIG);
    await exec([...bundled, "lock"], cwd, env);
    const lock = JSON.parse(await Deno.readTextFile(join(cwd, "dtk.lock")));
    for (const [name, entry] of Object.entries<Record<string, unknown>>(lock.artifacts)) {
      // Images need real manifests; the files are enough to time a warm fetch's start-up.
      if (entry.kind === "image") {
        delete lock.artifacts[name];
        continue;
      }
      const file = join(work, `${name}.bin`);
      const bytes = new TextEncoder().encode(`bench stand-in for ${name}\n`);
      await Deno.writeFile(file, bytes);
      entry.hash = (await exec([...bundled, "store", "add", file], cwd, env)).trim();
      entry.size = bytes.length;
    }
    await Deno.writeTextFile(join(cwd, "dtk.lock"), JSON.stringify(lock, null, 2) + "\n");

    const results: BenchResult[] = [{
      name: "startup: bundle size (dtk.js, the module graph deno compile embeds)",
      value: size / 1048576,
      unit: "MiB",
    }];
    const ms = (t: Timing) =>
      `${(t.mean * 1000).toFixed(1)} ms${
        t.user === undefined ? "" : `, user CPU ${(t.user * 1000).toFixed(0)} ms`
      }`;
    for (const c of CASES) {
      // Each must work before it is timed: a failing command is quick, not fast.
      for (const argv of [source, bundled, chunked]) await exec([...argv, ...c.args], cwd, env);
      const { tool, timings } = await measure(
        [[...source, ...c.args], [...bundled, ...c.args], [...chunked, ...c.args]],
        cwd,
        env,
      );
      const [fromSource, fromBundle, fromChunks] = timings as [Timing, Timing, Timing];
      const cpu = (t: Timing) =>
        t.user !== undefined && fromSource.user !== undefined
          ? `; user CPU ratio ${(fromSource.user / t.user).toFixed(2)}`
          : "";
      results.push({
        name: `startup: ${c.name}, bundled single file (${tool}, ${RUNS} runs${cpu(fromBundle)})`,
        value: fromBundle.mean * 1000,
        unit: "ms",
        reference: `deno run main.ts: ${ms(fromSource)}`,
        ratio: fromSource.mean / fromBundle.mean,
        goal: ">= 1.0x (the bundle no slower)",
      });
      results.push({
        name: `startup: ${c.name}, code-split bundle (${tool}, ${RUNS} runs${cpu(fromChunks)})`,
        value: fromChunks.mean * 1000,
        unit: "ms",
        reference: `deno run main.ts: ${ms(fromSource)}`,
        ratio: fromSource.mean / fromChunks.mean,
      });
    }
    return results;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
