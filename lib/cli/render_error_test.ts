import assert from "node:assert/strict";
import { CommandError, ConfigError, type ConfigIssue, DtkError } from "../errors/mod.ts";
import { MAX_PRINTED_ISSUES, renderError } from "./render_error.ts";

const plain = {
  red: (s: string) => s,
  bold: (s: string) => s,
  cyan: (s: string) => s,
  dim: (s: string) => s,
  verbose: false,
};

function issue(i: number, extra: Partial<ConfigIssue> = {}): ConfigIssue {
  return { file: "c.yaml", line: i, column: 1, path: `k${i}`, message: `problem ${i}`, ...extra };
}

Deno.test("renderError: at most 50 config problems are printed, then how many more", () => {
  const many = new ConfigError(Array.from({ length: 5000 }, (_, i) => issue(i + 1)));
  const { text, exitCode } = renderError(many, plain);
  assert.equal(exitCode, 2);
  assert.equal(text.split("\n").filter((l) => /^\s+problem \d+$/.test(l)).length, 50);
  assert.equal(MAX_PRINTED_ISSUES, 50);
  assert.match(text, /problem 50\n/);
  assert.doesNotMatch(text, /problem 51\n/);
  assert.match(text, /… and 4950 more problems \(dtk config check --json lists them all\)/);
  assert.ok(text.length < 5000, `${text.length} characters`);
  const few = renderError(new ConfigError([issue(1), issue(2)]), plain).text;
  assert.doesNotMatch(few, /more problem/);
});

Deno.test("renderError: control and bidi characters from files and subprocesses are printed escaped", () => {
  const config = new ConfigError([
    issue(1, { path: "a\u202eb", file: "x\u001b[2J.yaml", message: "m\u0007", hint: "h\u2066" }),
  ]);
  const command = new CommandError("Command failed\u001b]0;pwned\u0007", {
    command: ["virsh", "start", "vm\u202e1"],
    code: 1,
    stderrTail: "error: \u001b[31mred\u001b[0m\n\tline\rtwo",
    hint: "try \u009b1m",
    cause: new DtkError("inner\u202e"),
  });
  for (const error of [config, command]) {
    const { text } = renderError(error, plain);
    assert.doesNotMatch(
      text,
      // deno-lint-ignore no-control-regex
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/,
    );
  }
  const { text } = renderError(command, plain);
  assert.match(text, /error: \\u001b\[31mred\\u001b\[0m\n {4}\tline\\rtwo/);
  assert.match(text, /a\\u202eb|vm\\u202e1/);
});
