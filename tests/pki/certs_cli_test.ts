/** `dtk certs generate|list|check` through commander, with a captured output. */
import assert from "node:assert/strict";
import { Command } from "commander";
import { registerCertsCommands } from "../../lib/cli/certs.ts";
import type { CliContext } from "../../lib/cli/context.ts";
import type { Config } from "../../lib/config/types.ts";
import { type DtkError, UsageError } from "../../lib/errors/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";
import { testConfig } from "./_config.ts";

function harness(config: Config) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const ctx: CliContext = {
    runner: new LocalRunner(),
    out: new Output({
      color: false,
      quiet: false,
      verbose: false,
      tty: false,
      stdout: (t) => stdout.push(t),
      stderr: (t) => stderr.push(t),
    }),
    cwd: config.source.dir,
    env: () => undefined,
    loadConfig: () => Promise.resolve(config),
  };
  const run = async (...args: string[]) => {
    stdout.length = 0;
    stderr.length = 0;
    const program = new Command("dtk").option("--json").option("-c, --config <path>")
      .exitOverride();
    program.configureOutput({ writeOut: () => {}, writeErr: () => {} });
    registerCertsCommands(program as unknown as Parameters<typeof registerCertsCommands>[0], ctx);
    for (const sub of program.commands) {
      sub.exitOverride();
      for (const leaf of sub.commands) {
        leaf.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
      }
    }
    await program.parseAsync(args, { from: "user" });
    return { stdout: stdout.join(""), stderr: stderr.join("") };
  };
  return { run };
}

Deno.test("dtk certs generate, list and check", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-pki-cli-" });
  try {
    const config = testConfig(dir, { nodes: 2, kubeProxy: false });
    const { run } = harness(config);

    await assert.rejects(
      run("certs", "list"),
      (e: DtkError) => /No certificates for cluster "dev"/.test(e.message),
    );
    await assert.rejects(run("certs", "check"), (e: DtkError) => /No certificates/.test(e.message));
    await assert.rejects(run("certs", "generate", "--node-ip", "vm1"), UsageError);

    const made = await run(
      "certs",
      "generate",
      "--node-ip",
      "vm2=10.1.0.3",
      "--node-ip",
      "vm1=10.1.0.2",
    );
    assert.match(made.stderr, /created +pki\/ca\.pem/);
    assert.match(made.stderr, /✔ 27 of 27 files written/);

    const list = await run("certs", "list");
    const lines = list.stdout.trim().split("\n");
    assert.match(lines[0]!, /^FILE +SUBJECT +SANS +USAGE +EXPIRES$/);
    assert.match(lines[1]!, /^pki\/ca\.pem +O=dtk, CN=dev-ca +- +CA +\d{4}-\d\d-\d\d \(36\d\dd\)$/);
    assert.ok(
      lines.some((l) =>
        /^pki\/kubelet-vm2\.pem +O=system:nodes, CN=system:node:vm2 +vm2,10\.1\.0\.3 +serverAuth,clientAuth/
          .test(l)
      ),
    );
    assert.ok(
      lines.some((l) => /^kubeconfig\/admin\.kubeconfig +O=system:masters, CN=admin/.test(l)),
    );
    assert.equal(lines.length, 1 + 1 + 8 + 5);

    const json = JSON.parse((await run("--json", "certs", "list")).stdout);
    assert.equal(json.certs.length, 14);
    assert.deepEqual(json.errors, []);

    const check = await run("certs", "check");
    assert.match(
      check.stderr,
      /read from the kubelet certificates: vm1=10\.1\.0\.2 vm2=10\.1\.0\.3/,
    );
    assert.match(check.stderr, /✔ 27 files verified for cluster "dev"/);

    await assert.rejects(
      run("certs", "check", "--node-ip", "vm1=10.1.0.2", "--node-ip", "vm2=10.1.0.9"),
      (e: DtkError) => e.exitCode === 1 && e.message === "Certificate check found 1 problem",
    );
    // check wrote nothing; generate replaces what names the moved node.
    const fixed = await run(
      "certs",
      "generate",
      "--node-ip",
      "vm1=10.1.0.2",
      "--node-ip",
      "vm2=10.1.0.9",
    );
    assert.match(
      fixed.stderr,
      /replaced +pki\/kubelet-vm2\.pem: IP addresses are "10\.1\.0\.3", needs "10\.1\.0\.9"/,
    );
    assert.match(fixed.stderr, /✔ 3 of 27 files written/);
    await run("certs", "check", "--node-ip", "vm1=10.1.0.2", "--node-ip", "vm2=10.1.0.9");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
