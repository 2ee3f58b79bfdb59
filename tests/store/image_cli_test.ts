/**
 * Images through the CLI as a subprocess: `dtk fetch` of a lock with a hand-written image entry
 * (ref + hash only) from a registry of the tests' own, `fetch --offline`, `store ls --json`
 * (media types), `store verify NAME` (every blob), `store export --oci`, and `store gc`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { imageArtifactName, ObjectStore } from "../../store/mod.ts";
import { OCI_INDEX, TestRegistry } from "./_registry.ts";

const ENTRY = new URL("./_dtk.ts", import.meta.url).pathname;

/** The environment of a dtk subprocess over the store in `dir`: quick retries, no colour. */
function cliEnv(dir: string) {
  return {
    DTK_STORE: join(dir, "store"),
    DTK_BACKOFF_MS: "20",
    DTK_STALL_TIMEOUT_MS: "5000",
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
  };
}

Deno.test("dtk fetch, store ls|verify|export --oci|gc with an image entry of ref and hash only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-image-cli-" });
  const registry = new TestRegistry();
  registry.faults.auth = true;
  const env = cliEnv(dir);
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ENTRY, ...args],
      cwd: dir,
      env,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  try {
    const built = registry.add("team/app", "v2", { layers: 3, layerSize: 40_000 });
    const ref = `${registry.host}/team/app:v2`;
    const name = imageArtifactName(ref);
    await Deno.writeTextFile(
      join(dir, "dtk.lock"),
      JSON.stringify({ artifacts: { [name]: { ref, hash: built.top } } }),
    );
    const offline = await run(["fetch", "--offline", "--lock", "dtk.lock"]);
    assert.equal(offline.code, 1);
    assert.match(offline.stderr, new RegExp(`missing: ${name.replaceAll("+", "\\+")} v2`));
    const fetched = await run(["fetch", "--lock", "dtk.lock"]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stderr, /1 artifacts ready \(6 objects\): 6 fetched/);
    assert.equal((await run(["fetch", "--offline", "--lock", "dtk.lock"])).code, 0);

    const rows = JSON.parse((await run(["--json", "store", "ls"])).stdout) as {
      hash: string;
      mediaType?: string;
      locks: string[];
    }[];
    assert.equal(rows.length, 6);
    assert.equal(rows.find((r) => r.hash === built.top)?.mediaType, OCI_INDEX);
    assert.ok(rows.every((r) => r.locks.length === 1), "every blob is used by the lock");

    const verify = await run(["--json", "store", "verify", name, "--lock", "dtk.lock"]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(JSON.parse(verify.stdout).length, 6, "the image name covers all its blobs");
    // A corrupt layer is found by naming the image.
    const store = new ObjectStore(env.DTK_STORE);
    const layer = store.objectPath(built.blobs[1]!.slice(7));
    await Deno.chmod(layer, 0o644);
    await Deno.writeFile(layer, new Uint8Array(40_000));
    await Deno.chmod(layer, 0o444);
    const bad = await run(["store", "verify", name, "--lock", "dtk.lock"]);
    assert.equal(bad.code, 4, bad.stderr);
    assert.match(bad.stderr, /corrupt/);
    assert.equal((await run(["store", "verify", "--repair", name, "--lock", "dtk.lock"])).code, 0);

    const out = join(dir, "export");
    const exported = await run(["store", "export", "--oci", "--lock", "dtk.lock", out]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stderr, /OCI layout of 1 image/);
    const index = JSON.parse(await Deno.readTextFile(join(out, "index.json")));
    assert.equal(index.manifests[0].digest, built.top);
    assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], ref);
    assert.ok(await Deno.stat(join(out, "blobs", "sha256", built.blobs[0]!.slice(7))));

    const gc = await run(["--json", "store", "gc"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(JSON.parse(gc.stdout).removed.length, 0, "gc keeps every blob of the image");
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dtk fetch of an image killed mid-layer resumes that layer from where it stopped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-image-resume-" });
  const registry = new TestRegistry();
  const env = cliEnv(dir);
  const spawn = () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ENTRY, "fetch", "--lock", "dtk.lock"],
      cwd: dir,
      env,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
  try {
    const built = registry.add("big", "1", { layers: 1, layerSize: 8 << 20, lone: true });
    const ref = `${registry.host}/big:1`;
    await Deno.writeTextFile(
      join(dir, "dtk.lock"),
      JSON.stringify({ artifacts: { [imageArtifactName(ref)]: { ref, hash: built.top } } }),
    );
    registry.faults.throttle = { chunk: 64 << 10, delayMs: 30 };
    const layer = built.blobs[1]!.slice(7);
    const partial = join(env.DTK_STORE, "tmp", `${layer}.partial`);
    const first = spawn();
    const deadline = Date.now() + 30_000;
    while ((await Deno.stat(partial).then((s) => s.size, () => 0)) < (1 << 20)) {
      assert.ok(Date.now() < deadline, "the layer download started");
      await new Promise((r) => setTimeout(r, 20));
    }
    first.kill("SIGKILL");
    await first.output();
    const kept = (await Deno.stat(partial)).size;
    assert.ok(kept > 0 && kept < 8 << 20, `a partial layer was left (${kept} bytes)`);
    registry.faults.throttle = undefined;
    const second = await spawn().output();
    const stderr = new TextDecoder().decode(second.stderr);
    assert.equal(second.code, 0, stderr);
    assert.match(stderr, /resuming at byte \d+/);
    const ranged = registry.log.filter((r) => r.path.endsWith(layer) && r.status === 206);
    assert.equal(ranged.length, 1, "the layer was asked for from where it stopped");
    assert.equal(await new ObjectStore(env.DTK_STORE).check(layer, 8 << 20), "present");
  } finally {
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});
