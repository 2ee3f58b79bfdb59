import assert from "node:assert/strict";
import { formatBytes } from "./mod.ts";
import { formatDuration } from "../errors/mod.ts";

Deno.test("formatBytes: rates below 1 KiB/s are whole bytes, not raw floats", () => {
  assert.equal(formatBytes(146.87609239093715), "147 B");
  assert.equal(formatBytes(0.4), "0 B");
  assert.equal(formatBytes(1023.7), "1.0 KiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(1024 * 1024 - 1), "1.0 MiB");
  assert.equal(formatBytes(5 * 1024 ** 4), "5.0 TiB");
});

Deno.test("formatDuration: rounding never shows 60s or 60m", () => {
  assert.equal(formatDuration(999.6), "1s");
  assert.equal(formatDuration(59_960), "1m 0s");
  assert.equal(formatDuration(119_600), "2m 0s");
  assert.equal(formatDuration(3_599_700), "1h 0m");
  assert.equal(formatDuration(1500), "1.5s");
  assert.equal(formatDuration(2 * 60_000 + 3000), "2m 3s");
  assert.equal(formatDuration(250), "250ms");
});

Deno.test("Output: messages print control and bidi characters escaped, colour only from dtk", async () => {
  const { Output } = await import("./mod.ts");
  const err: string[] = [];
  const out = new Output({
    color: true,
    quiet: false,
    verbose: true,
    tty: false,
    stderr: (t) => err.push(t),
  });
  out.info("a\u001b[2Jb\nnext\tline");
  out.warn("name \u202ecod.exe");
  out.success("done\r");
  out.debug("x\u0007");
  const text = err.join("");
  assert.ok(text.includes("a\\u001b[2Jb\nnext\tline\n"), text);
  assert.ok(text.includes("name \\u202ecod.exe"), text);
  assert.ok(text.includes("done\\r"), text);
  assert.ok(text.includes("x\\u0007"), text);
  // The only escape sequences left are the colours dtk adds itself.
  assert.deepEqual(
    // deno-lint-ignore no-control-regex
    text.replace(/\u001b\[[0-9;]*m/g, "").match(/[\u0000-\u0008\u000b-\u001f\u202e]/g),
    null,
  );
});

Deno.test("table: 200,000 rows (a large store ls) do not overflow the stack", async () => {
  const { table } = await import("./mod.ts");
  const rows = Array.from({ length: 200_000 }, (_, i) => [`n${i}`, "x"]);
  const text = table(["NAME", "B"], rows);
  assert.ok(text.startsWith("NAME     B\nn0       x\n"), text.slice(0, 40));
});
