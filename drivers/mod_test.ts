import assert from "node:assert/strict";
import { defaultConfig } from "../lib/config/mod.ts";
import { LocalRunner } from "../lib/exec/mod.ts";
import { createDriver, type Driver } from "./mod.ts";

Deno.test("createDriver picks the driver the config names", () => {
  const runner = new LocalRunner();
  const config = defaultConfig();
  assert.equal(createDriver(config, { runner }).name, "kvm");
  assert.equal(createDriver({ ...config, virt: "virtualbox" }, { runner }).name, "virtualbox");
  assert.throws(
    () => createDriver({ ...config, virt: "test-nspawn" }, { runner }),
    /exists only in dtk's tests/,
  );
  const fake = { name: "test-nspawn" } as Driver;
  assert.equal(
    createDriver({ ...config, virt: "test-nspawn" }, { runner, testDriver: () => fake }),
    fake,
  );
});
