/**
 * `dtk lock --why IMAGE` through commander: which part of the config needs an image, as a table
 * or JSON, exit 1 with a hint when nothing does, and nothing written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Command } from "commander";
import type { CliContext } from "../../lib/cli/context.ts";
import { registerStoreCommands } from "../../lib/cli/store.ts";
import { loadConfig } from "../../lib/config/mod.ts";
import { DtkError, ExitCode } from "../../lib/errors/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";

async function project(config: string) {
  const dir = await Deno.makeTempDir({ prefix: "dtk-why-" });
  await Deno.writeTextFile(
    join(dir, "config.yaml"),
    `cluster:\n  name: c1\nstore:\n  path: ${join(dir, "store")}\n${config}`,
  );
  const data: string[] = [];
  const info: string[] = [];
  const out = new Output({
    color: false,
    quiet: false,
    verbose: false,
    tty: false,
    stdout: (t) => data.push(t),
    stderr: (t) => info.push(t),
  });
  const ctx: CliContext = {
    runner: new LocalRunner(),
    out,
    cwd: dir,
    env: () => undefined,
    loadConfig: async (g) =>
      (await loadConfig({
        path: g.config ?? join(dir, "config.yaml"),
        cwd: dir,
        env: () => undefined,
      })).config,
  };
  const program = new Command("dtk").option("--json").option("-c, --config <path>")
    .exitOverride();
  registerStoreCommands(program, ctx);
  const run = (args: string[]) => program.parseAsync(args, { from: "user" });
  return { dir, data, info, run, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

const ADDONS =
  "addons:\n  - name: cilium\n    enabled: true\n  - name: coredns\n    enabled: true\n" +
  "  - name: cert-manager\n    enabled: true\n";

Deno.test("lock --why: the add-on, the pinned digest and how the image is pulled", async () => {
  const p = await project(ADDONS);
  try {
    await p.run(["lock", "--why", "quay.io/jetstack/cert-manager-acmesolver:v1.19.2"]);
    const text = p.data.join("");
    assert.match(text, /^NEEDED BY\s+IMAGE\s+HOW\n/);
    assert.match(
      text,
      /cert-manager\s+quay\.io\/jetstack\/cert-manager-acmesolver:v1\.19\.2\s+controller flag --acme-http01-solver-image/,
    );
    p.data.length = 0;
    await p.run(["lock", "--why", "coredns/coredns:1.13.1"]);
    assert.match(p.data.join(""), /coredns\s+docker\.io\/coredns\/coredns:1\.13\.1\s+chart/);
    p.data.length = 0;
    await p.run(["--json", "lock", "--why", "registry.k8s.io/pause:3.10"]);
    assert.deepEqual(JSON.parse(p.data.join("")), {
      image: "registry.k8s.io/pause:3.10",
      neededBy: [{ addon: "sandbox", ref: "registry.k8s.io/pause:3.10" }],
    });
    p.data.length = 0;
    await p.run(["--json", "lock", "--why", "quay.io/cilium/cilium:v1.18.5"]);
    assert.deepEqual(JSON.parse(p.data.join("")).neededBy, [{
      addon: "cilium",
      ref: "quay.io/cilium/cilium:v1.18.5",
      digest: "sha256:2c92fb05962a346eaf0ce11b912ba434dc10bd54b9989e970416681f4a069628",
    }]);
    // --why only reads: no lock, no store.
    assert.deepEqual([...Deno.readDirSync(p.dir)].map((e) => e.name), ["config.yaml"]);
  } finally {
    await p.cleanup();
  }
});

Deno.test("lock --why: an image nothing needs exits 1 with a hint; JSON still says so", async () => {
  const p = await project(ADDONS);
  try {
    const error = await p.run(["lock", "--why", "docker.io/library/nginx:1.27"]).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(error instanceof DtkError, String(error));
    assert.equal(error.exitCode, ExitCode.failure);
    assert.match(
      error.message,
      /No part of the config needs image "docker\.io\/library\/nginx:1\.27"/,
    );
    assert.match(error.hint ?? "", /enable the add-on/);
    assert.equal(p.data.join(""), "");
    // A disabled add-on's image is not needed either.
    const json = await p.run([
      "--json",
      "lock",
      "--why",
      "registry.k8s.io/ingress-nginx/controller:v1.14.1",
    ]).then(() => undefined, (e) => e);
    assert.ok(json instanceof DtkError);
    assert.deepEqual(JSON.parse(p.data.join("")), {
      image: "registry.k8s.io/ingress-nginx/controller:v1.14.1",
      neededBy: [],
    });
  } finally {
    await p.cleanup();
  }
});

Deno.test("lock --why: an add-on version without a list is named, not silently skipped", async () => {
  const p = await project(
    "addons:\n  - name: cilium\n    enabled: true\n    chart-version: 1.18.4\n" +
      "  - name: coredns\n    enabled: true\n",
  );
  try {
    const error = await p.run(["lock", "--why", "quay.io/cilium/cilium:v1.18.4"]).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(error instanceof DtkError);
    assert.match(p.info.join(""), /add-on "cilium" chart "1\.18\.4" has no image list/);
  } finally {
    await p.cleanup();
  }
});
