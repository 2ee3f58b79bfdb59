import assert from "node:assert/strict";
import { ConfigError } from "../../lib/errors/mod.ts";
import { nspawnSettings } from "./nspawn_driver.ts";

const base = {
  cluster: { name: "c1" },
  source: { file: "/x/config.yaml", dir: "/x", builtIn: false },
};

Deno.test("nspawnSettings: defaults give a per-cluster state dir", () => {
  const a = nspawnSettings({ ...base, testNspawn: undefined });
  const b = nspawnSettings({
    ...base,
    source: { ...base.source, dir: "/y" },
    testNspawn: undefined,
  });
  assert.match(a.stateDir, /\/clusters\/c1-[0-9a-f]{8}$/);
  assert.notEqual(a.stateDir, b.stateDir);
  assert.equal(a.ownerPid, undefined);
  assert.equal(a.containers, false);
  assert.deepEqual(a.nspawnArgs, []);
});

Deno.test("nspawnSettings: reads kebab-case and camelCase keys", () => {
  const s = nspawnSettings({
    ...base,
    testNspawn: {
      "state-dir": "/tmp/s",
      "owner-pid": 42,
      "subnet-index": 7,
      "nspawn-args": ["--x"],
      containers: true,
    },
  });
  assert.deepEqual(s, {
    stateDir: "/tmp/s",
    ownerPid: 42,
    subnetIndex: 7,
    nspawnArgs: ["--x"],
    containers: true,
  });
  assert.equal(nspawnSettings({ ...base, testNspawn: { stateDir: "/tmp/t" } }).stateDir, "/tmp/t");
});

Deno.test("nspawnSettings: rejects wrong types with a config error naming the key", () => {
  for (
    const [raw, key] of [
      [{ "state-dir": 1 }, "test-nspawn.state-dir"],
      [{ "owner-pid": "1" }, "test-nspawn.owner-pid"],
      [{ "subnet-index": 251 }, "test-nspawn.subnet-index"],
      [{ "nspawn-args": "--x" }, "test-nspawn.nspawn-args"],
      [{ containers: "yes" }, "test-nspawn.containers"],
    ] as const
  ) {
    assert.throws(
      () => nspawnSettings({ ...base, testNspawn: raw as Record<string, unknown> }),
      (error: unknown) => error instanceof ConfigError && error.issues[0]?.path === key,
    );
  }
});
