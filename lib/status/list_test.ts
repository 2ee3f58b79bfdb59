import assert from "node:assert/strict";
import { join } from "node:path";
import { aggregateVms, clusterFolders, readEntry } from "./mod.ts";

async function writeState(dir: string, data: unknown) {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "state.json"), JSON.stringify(data));
}

Deno.test("cluster list: folders from cluster roots, lock roots and the cwd; gone ones listed", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const projA = join(tmp, "a");
    const projB = join(tmp, "b");
    await Deno.writeTextFile(join(await Deno.mkdir(projA).then(() => projA), "config.yaml"), "");
    await writeState(join(projA, "generated", "one"), {
      version: 1,
      cluster: "one",
      steps: {},
      nodes: {},
      meta: {
        config: join(projA, "config.yaml"),
        configDir: projA,
        virt: "kvm",
        kubernetes: "v1.35.0",
        nodes: ["vm1", "vm2"],
        createdAt: "2026-12-03T10:00:00.000Z",
        lastCreate: { result: "ok", at: "2026-12-03T10:05:00.000Z" },
      },
    });
    await writeState(join(projB, "generated", "two"), {
      version: 1,
      cluster: "two",
      steps: {},
      nodes: { vm1: { ip: "10.0.0.2", ssh: { host: "10.0.0.2", port: 22 } } },
      meta: {
        config: join(projB, "gone.yaml"),
        configDir: projB,
        virt: "virtualbox",
        nodes: ["vm1"],
      },
    });
    // A folder without a state file is not a cluster.
    await Deno.mkdir(join(projB, "generated", "junk"), { recursive: true });
    const dirs = await clusterFolders({
      roots: [
        { path: join(projA, "dtk.lock"), kind: "lock" },
        { path: join(tmp, "deleted", "generated", "three"), kind: "cluster" },
      ],
      extraDirs: [projB],
    });
    assert.deepEqual(dirs, [
      join(projA, "generated", "one"),
      join(projB, "generated", "two"),
      join(tmp, "deleted", "generated", "three"),
    ]);
    const [one, two, three] = await Promise.all(dirs.map(readEntry));
    assert.equal(one!.name, "one");
    assert.equal(one!.configState, "present");
    assert.deepEqual(one!.nodes, ["vm1", "vm2"]);
    assert.equal(one!.lastCreate?.result, "ok");
    assert.equal(two!.configState, "gone");
    assert.equal(two!.driver, "virtualbox");
    assert.equal(three!.folder, "gone");
    assert.equal(three!.name, "three");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cluster list: VM states as one word", () => {
  assert.equal(aggregateVms(["running", "running"]), "running");
  assert.equal(aggregateVms(["stopped", "stopped"]), "stopped");
  assert.equal(aggregateVms(["absent"]), "missing");
  assert.equal(aggregateVms(["running", "stopped", "running"]), "partial (2/3 running)");
  assert.equal(aggregateVms([]), "unknown");
});
