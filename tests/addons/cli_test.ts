/**
 * `dtk install-addon`, `dtk addons list` end to end through commander, against the recording
 * fakes of helm and kubectl, a real lock and store layout, and the cluster's token file; and the
 * node-step script run for real by `sh`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Command } from "commander";
import { registerAddonsCommands } from "../../lib/cli/addons.ts";
import type { CliContext } from "../../lib/cli/context.ts";
import { loadConfig } from "../../lib/config/mod.ts";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";
import { nodeStepScript, stepNodes } from "../../lib/addons/mod.ts";
import { parseLog, type Sandbox, sandbox, TEST_TOKEN } from "./_fixtures.ts";

const NODES = {
  items: [
    {
      metadata: { name: "vm2", labels: { "node-role.kubernetes.io/worker": "" } },
      status: { addresses: [{ type: "InternalIP", address: "10.9.0.12" }] },
    },
    {
      metadata: { name: "vm1", labels: { "node-role.kubernetes.io/controller": "" } },
      status: {
        addresses: [{ type: "InternalIP", address: "10.9.0.11" }, {
          type: "Hostname",
          address: "vm1",
        }],
      },
    },
  ],
};

async function project(
  box: Sandbox,
): Promise<{ dir: string; data: string[]; info: string[]; ctx: CliContext }> {
  const dir = join(box.dir, "project");
  const store = join(box.dir, "store");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(
    join(dir, "config.yaml"),
    `cluster:\n  name: c1\nstore:\n  path: ${store}\naddons:\n  - name: cilium\n    enabled: true\n  - name: coredns\n    enabled: true\n  - name: nginx-gateway-fabric\n    enabled: false\n  - name: headlamp\n    enabled: false\nvms:\n  - name: vm1\n  - name: vm2\n`,
  );
  const cluster = join(dir, "generated", "c1");
  await Deno.mkdir(join(cluster, "kubeconfig"), { recursive: true });
  await Deno.writeTextFile(
    join(cluster, "kubeconfig", "admin.kubeconfig"),
    "apiVersion: v1\nkind: Config\n",
  );
  await Deno.mkdir(join(cluster, "secrets"), { recursive: true });
  await Deno.writeTextFile(
    join(cluster, "secrets", "static-token.csv"),
    `${TEST_TOKEN},admin,1000,"system:masters"\n`,
  );
  const chart = "fake cilium chart\n";
  const hex = createHash("sha256").update(chart).digest("hex");
  await Deno.mkdir(join(store, "objects", "sha256"), { recursive: true });
  await Deno.writeTextFile(join(store, "objects", "sha256", hex), chart);
  await Deno.writeTextFile(
    join(dir, "dtk.lock"),
    JSON.stringify({
      version: 1,
      artifacts: {
        "chart-cilium": {
          version: "1.18.5",
          kind: "chart",
          arch: "noarch",
          urls: ["https://helm.cilium.io/cilium-1.18.5.tgz"],
          hash: `sha256:${hex}`,
          size: chart.length,
          source: "pinned",
        },
      },
    }),
  );
  const nodesFile = join(box.dir, "nodes.json");
  await Deno.writeTextFile(nodesFile, JSON.stringify(NODES));
  box.env.FAKE_NODES_JSON = nodesFile;
  const local = new LocalRunner();
  const runner: Runner = {
    run: (argv, options = {}) =>
      local.run(argv, { ...options, env: { ...box.env, ...options.env } }),
  };
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
    runner,
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
  return { dir, data, info, ctx };
}

function program(ctx: CliContext): Command {
  const p = new Command("dtk").option("--json").option("-c, --config <path>").exitOverride();
  registerAddonsCommands(p, ctx);
  return p;
}

Deno.test("cli: install-addon cilium uses the lock's store path, the cluster's nodes and kubeconfig", async () => {
  const box = await sandbox({ FAKE_HELM_LIST: "[]" });
  try {
    const { dir, info, ctx } = await project(box);
    await program(ctx).parseAsync(["install-addon", "cilium"], { from: "user" });
    const calls = parseLog(await box.readLog());
    const kubeconfig = join(dir, "generated", "c1", "kubeconfig", "admin.kubeconfig");
    assert.deepEqual(calls[0]!.slice(0, 3), ["kubectl", "--kubeconfig", kubeconfig]);
    assert.deepEqual(calls[1]!.slice(0, 2), ["helm", "list"]);
    const helm = calls[2]!;
    assert.equal(helm[3], "cilium");
    assert.match(helm[4]!, new RegExp(`${box.dir}/store/objects/sha256/[0-9a-f]{64}$`));
    const values = await Deno.readTextFile(
      join(dir, "generated", "c1", "addons", "cilium", "values.yaml"),
    );
    assert.match(
      values,
      /k8sServiceHost: 10\.9\.0\.11/,
      "the labelled controller, not the first node listed",
    );
    assert.ok(info.some((l) => l.includes(`Add-on "cilium" (chart 1.18.5) ready`)), info.join(""));
    // The config file was not touched.
    assert.doesNotMatch(await Deno.readTextFile(join(dir, "config.yaml")), /admin-kubeconfig/);
    // The run is logged: every command with its exit code.
    const logs = join(dir, "generated", "c1", "logs");
    const [name] = (await Array.fromAsync(Deno.readDir(logs))).map((e) => e.name);
    assert.match(name!, /^\d{8}T\d{6}Z-install-addon\.log$/);
    const log = await Deno.readTextFile(join(logs, name!));
    assert.match(log, /run helm list .*\n.*→ exit 0 in/);
    assert.match(log, /run helm upgrade --install cilium .*\n.*→ exit 0 in/);
    assert.match(log, /result: ok in/);
  } finally {
    await box.cleanup();
  }
});

Deno.test("cli: install-addon refuses a missing prerequisite unless --force, and an unlocked chart", async () => {
  const box = await sandbox({
    FAKE_HELM_LIST: JSON.stringify([{
      name: "cilium",
      namespace: "cilium",
      chart: "cilium-1.18.5",
      status: "deployed",
    }]),
  });
  try {
    const { ctx } = await project(box);
    await assert.rejects(
      program(ctx).parseAsync(["install-addon", "headlamp"], { from: "user" }),
      /needs "nginx-gateway-fabric", which is not installed/,
    );
    await assert.rejects(
      program(ctx).parseAsync(["install-addon", "headlamp", "--force"], { from: "user" }),
      /has no "chart-headlamp" for add-on "headlamp"/,
    );
    await assert.rejects(
      program(ctx).parseAsync(["install-addon", "flannel"], { from: "user" }),
      /Unknown add-on "flannel"/,
    );
    assert.ok(!(await box.readLog()).includes("upgrade"), "helm never ran");
  } finally {
    await box.cleanup();
  }
});

Deno.test("cli: addons list shows version, enabled and installed", async () => {
  const box = await sandbox({
    FAKE_HELM_LIST: JSON.stringify([{
      name: "cilium",
      namespace: "cilium",
      chart: "cilium-1.18.5",
      status: "deployed",
    }]),
  });
  try {
    const { data, ctx } = await project(box);
    await program(ctx).parseAsync(["addons", "list"], { from: "user" });
    const text = data.join("");
    assert.match(text, /^cilium\s+1\.18\.5\s+yes\s+yes \(deployed\)\s+cilium$/m);
    assert.match(text, /^coredns\s+1\.45\.0\s+yes\s+no\s+kube-system$/m);
    assert.match(text, /^vcluster\s+0\.30\.4\s+no\s+no\s+vcluster$/m);
    assert.equal(text.trim().split("\n").length, 15);
    data.length = 0;
    await program(ctx).parseAsync(["--json", "addons", "list", "--no-cluster"], { from: "user" });
    const rows = JSON.parse(data.join(""));
    assert.equal(rows.length, 14);
    assert.equal(rows[0].installed, null);
  } finally {
    await box.cleanup();
  }
});

Deno.test("node step script: files written atomically with their mode, then the commands, by sh", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-nodestep-" });
  try {
    const step = {
      id: "t/x",
      description: "test",
      on: "controller" as const,
      files: [{
        path: join(dir, "etc", "conf.d", "a.conf"),
        content: "x='1'\nünïcode\n",
        mode: 0o640,
      }],
      commands: [
        `echo done > ${join(dir, "marker")}`,
        "false",
        `echo never > ${join(dir, "never")}`,
      ],
    };
    const result = await new Deno.Command("sh", {
      args: ["-s"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    const writer = result.stdin.getWriter();
    await writer.write(new TextEncoder().encode(nodeStepScript(step)));
    await writer.close();
    const status = await result.output();
    assert.equal(status.code, 1, "stops at the first failing command");
    assert.equal(await Deno.readTextFile(step.files[0]!.path), step.files[0]!.content);
    assert.equal((await Deno.stat(step.files[0]!.path)).mode! & 0o777, 0o640);
    assert.equal(await Deno.readTextFile(join(dir, "marker")), "done\n");
    await assert.rejects(Deno.stat(join(dir, "never")));
    const nodes = [{ name: "a", controller: false }, { name: "b", controller: true }];
    assert.deepEqual(stepNodes(step, nodes).map((n) => n.name), ["b"]);
    assert.deepEqual(stepNodes({ ...step, on: "all" }, nodes).map((n) => n.name), ["a", "b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node step script: a file larger than one base64 chunk, with multi-byte text, arrives whole", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // 44,000 bytes of UTF-8: more than the 32 KiB the encoder takes at a time, cut inside a char.
    const content = "ñ€😀x\n".repeat(4000);
    const path = join(dir, "big.conf");
    const step = {
      id: "test/big",
      description: "big",
      on: "all" as const,
      files: [{ path, content, mode: 0o600 }],
      commands: [],
    };
    const out = await new Deno.Command("sh", { args: ["-c", nodeStepScript(step)] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(await Deno.readTextFile(path), content);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
