import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { formatVersion, VERSION, versionInfo } from "./version.ts";

Deno.test("version: from source it is deno.json's version with -dev, never a release", async () => {
  assert.equal(VERSION, `${denoJson.version}-dev`);
  const info = await versionInfo({ commit: () => Promise.resolve(null) });
  assert.equal(info.version, `${denoJson.version}-dev`);
  assert.equal(info.commit, null);
  assert.equal(info.buildDate, null);
  assert.equal(info.target, Deno.build.target);
  assert.equal(info.deno, Deno.version.deno);
  assert.match(formatVersion(info), /unknown commit, not a release build/);
});

Deno.test("version: a stamped build reports the stamp's version, commit and date", async () => {
  const build = { version: "1.2.3", commit: "a".repeat(40), date: "2026-01-02T03:04:05Z" };
  const info = await versionInfo({ build, commit: () => Promise.reject(new Error("not called")) });
  assert.deepEqual(
    { version: info.version, commit: info.commit, buildDate: info.buildDate },
    { version: "1.2.3", commit: build.commit, buildDate: build.date },
  );
  assert.equal(
    formatVersion(info),
    `dtk 1.2.3 (aaaaaaaaaaaa, built 2026-01-02T03:04:05Z, ${Deno.build.target}, deno ${Deno.version.deno}; follows Desktop Kubernetes ${info.upstream})`,
  );
});

const head = await new Deno.Command("git", {
  args: ["-C", new URL(".", import.meta.url).pathname, "rev-parse", "HEAD"],
  stdout: "piped",
  stderr: "null",
}).output().catch(() => undefined);
const headCommit = head?.success ? new TextDecoder().decode(head.stdout).trim() : undefined;

Deno.test({
  name: `version: from this checkout the commit is git's HEAD${
    headCommit ? "" : " (skipped: not a git checkout, or no git)"
  }`,
  ignore: !headCommit,
  fn: async () => assert.equal((await versionInfo()).commit, headCommit),
});
