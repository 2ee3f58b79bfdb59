/**
 * Production code never reaches into `tests/`: not by a static import (the module graph of
 * `main.ts`), nor by a specifier built at run time (a scan of every production file), which the
 * graph cannot see and `deno compile` would not embed.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { ROOT } from "../build/_release.ts";

/** Import specifiers and module URLs of `source` that point into a `tests/` folder. */
export function testsReferences(source: string): string[] {
  const pattern =
    /(?:\bfrom\s*|\bimport\s*\(\s*|\bnew URL\(\s*|\bimport\s+)(["'`])([^"'`]*\btests\/[^"'`]*)\1/g;
  return [...source.matchAll(pattern)].map((m) => m[2]!);
}

const PRODUCTION = ["main.ts", "lib", "store", "drivers", "kickstart"];

async function* productionFiles(path: string): AsyncGenerator<string> {
  const info = await Deno.stat(path);
  if (info.isFile) {
    if (/\.(ts|js)$/.test(path) && !/_test\.ts$/.test(path)) yield path;
    return;
  }
  for await (const entry of Deno.readDir(path)) yield* productionFiles(join(path, entry.name));
}

Deno.test("graph: the scan finds a module URL into tests/ (the old nspawn wiring)", () => {
  const old = `const url = new URL("../../tests/harness/nspawn_driver.ts", import.meta.url).href;`;
  assert.deepEqual(testsReferences(old), ["../../tests/harness/nspawn_driver.ts"]);
  assert.deepEqual(testsReferences(`import { x } from "../tests/a.ts";`), ["../tests/a.ts"]);
  assert.deepEqual(testsReferences(`await import('./tests/b.ts')`), ["./tests/b.ts"]);
  assert.deepEqual(testsReferences(`hint: "Run dtk through tests/harness/dtk.ts"`), []);
});

Deno.test("graph: no production file refers to a module under tests/", async () => {
  const found: string[] = [];
  for (const top of PRODUCTION) {
    for await (const file of productionFiles(join(ROOT, top))) {
      for (const ref of testsReferences(await Deno.readTextFile(file))) {
        found.push(`${relative(ROOT, file)}: ${ref}`);
      }
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("graph: main.ts's module graph has no module under tests/", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", join(ROOT, "main.ts")],
    cwd: ROOT,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  const graph = JSON.parse(new TextDecoder().decode(r.stdout)) as {
    modules: { specifier: string }[];
  };
  const local = graph.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"));
  assert.ok(local.some((s) => s.endsWith("/lib/cli/mod.ts")), "the graph holds the CLI");
  const tests = new URL("tests/", `file://${ROOT}`).href;
  assert.deepEqual(local.filter((s) => s.startsWith(tests)), []);
});
