// Snapshot tests of `dtk --help` and every command's help. UPDATE_SNAPSHOTS=1 rewrites them.
import assert from "node:assert/strict";
import type { Command } from "commander";
import { buildProgram, type CliContext } from "../../lib/cli/mod.ts";
import { defaultConfig } from "../../lib/config/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";

const SNAPSHOTS = new URL("../testdata/help/", import.meta.url);
const update = Deno.env.get("UPDATE_SNAPSHOTS") === "1";

function programWithCapture() {
  let captured = "";
  const ctx: CliContext = {
    runner: new LocalRunner(),
    out: new Output({ color: false, quiet: false, verbose: false, tty: false }),
    cwd: Deno.cwd(),
    env: () => undefined,
    loadConfig: () => Promise.resolve(defaultConfig()),
  };
  const program = buildProgram(ctx, { write: (t) => (captured += t), helpWidth: 100 });
  return { program, take: () => captured };
}

function paths(command: Command, prefix: string[] = []): string[][] {
  const out = [prefix];
  for (const sub of command.commands as Command[]) {
    if (sub.name() === "help") continue;
    out.push(...paths(sub, [...prefix, sub.name()]));
  }
  return out;
}

const { program } = programWithCapture();
const allPaths = paths(program as unknown as Command);

for (const path of allPaths) {
  const name = path.length === 0 ? "dtk" : `dtk ${path.join(" ")}`;
  Deno.test(`help: ${name} --help matches its snapshot`, async () => {
    const { program, take } = programWithCapture();
    await assert.rejects(
      program.parseAsync([...path, "--help"], { from: "user" }),
      (e: { code?: string }) => e.code === "commander.helpDisplayed",
    );
    const text = take();
    const file = new URL(`${path.length === 0 ? "dtk" : path.join("_")}.txt`, SNAPSHOTS);
    if (update) {
      await Deno.writeTextFile(file, text);
      return;
    }
    let expected: string;
    try {
      expected = await Deno.readTextFile(file);
    } catch {
      throw new Error(`No snapshot for "${name}": run UPDATE_SNAPSHOTS=1 deno test tests/cli`);
    }
    assert.equal(text, expected);
  });
}

Deno.test("help: every snapshot belongs to a command", async () => {
  const expected = new Set(allPaths.map((p) => `${p.length === 0 ? "dtk" : p.join("_")}.txt`));
  for await (const entry of Deno.readDir(SNAPSHOTS)) {
    assert.ok(expected.has(entry.name), `stale snapshot ${entry.name}`);
  }
});
