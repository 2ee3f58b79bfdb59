import assert from "node:assert/strict";
import { escapeText, q } from "./mod.ts";

Deno.test("q and escapeText: control, C1 and bidi characters are printed escaped", () => {
  // A right-to-left override makes "txt.exe" read as "exe.txt"; a newline forges a log line.
  assert.equal(q("a\u202eexe.txt"), '"a\\u202eexe.txt"');
  assert.equal(q("x\n[error] forged"), '"x\\n[error] forged"');
  assert.equal(q("\u009b31m\u2066\u2028"), '"\\u009b31m\\u2066\\u2028"');
  assert.equal(escapeText("ok: naïve 日本 😀"), "ok: naïve 日本 😀");
  assert.equal(escapeText("a\nb\r\tc\x1b[31m\x7f"), "a\\nb\\r\\tc\\u001b[31m\\u007f");
});
