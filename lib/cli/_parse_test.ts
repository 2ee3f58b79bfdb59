import assert from "node:assert/strict";
import { UsageError } from "../errors/mod.ts";
import { parseSeconds } from "./_parse.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

Deno.test("parseSeconds: seconds to ms, more than 0 and at most an hour", () => {
  const parse = parseSeconds("--timeout");
  assert.equal(parse("20"), 20_000);
  assert.equal(parse("0.5"), 500);
  assert.equal(parse("3600"), 3_600_000);
  for (const bad of ["0", "-1", "3601", "", "ten", "Infinity", "NaN"]) {
    assert.throws(() => parse(bad), (e: unknown) => {
      assert.ok(e instanceof UsageError, bad);
      assert.equal(e.message, `Invalid --timeout "${bad}"`);
      assert.equal(e.hint, "Give seconds, more than 0 and at most 3600");
      return true;
    });
  }
});

Deno.test("dtk verify and dtk cluster status say the same of the same bad --timeout", async () => {
  const stderr: string[] = [];
  for (const args of [["verify", "--timeout", "0"], ["cluster", "status", "--timeout", "0"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MAIN, ...args],
      env: { NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2, args.join(" "));
    stderr.push(new TextDecoder().decode(out.stderr));
  }
  assert.match(stderr[0]!, /Invalid --timeout "0"/);
  assert.equal(stderr[1], stderr[0]);
});
