// `dtk doctor` / `dtk check-tools` through the real command tree, on the fake host.
import assert from "node:assert/strict";
import { buildProgram } from "../../lib/cli/mod.ts";
import type { CliContext } from "../../lib/cli/context.ts";
import type { Config } from "../../lib/config/types.ts";
import { DtkError, ExitCode } from "../../lib/errors/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";
import { FakeHost, virshScript } from "./_fake_host.ts";

interface Run {
  /** The exit code main.ts would set: 0, or the thrown DtkError's. */
  code: number;
  stdout: string;
  stderr: string;
  error?: DtkError;
}

// The registry's port: one free port on loopback for every run (no firewalld on the fake PATH).
const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const registry = {
  endpoint: { listen: "127.0.0.1", reach: "127.0.0.1" },
  port: (probe.addr as Deno.NetAddr).port,
  needed: false,
};
probe.close();

async function dtk(
  host: FakeHost,
  args: string[],
  options: { config?: (c: Config) => void; color?: boolean } = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const ctx: CliContext = {
    runner: new LocalRunner(),
    out: new Output({
      color: options.color ?? false,
      quiet: false,
      verbose: false,
      tty: false,
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
    }),
    cwd: host.dir,
    env: host.env(),
    loadConfig: () => Promise.resolve(host.config(options.config)),
  };
  const program = buildProgram(ctx, { doctor: { root: host.root, registry } });
  try {
    await program.parseAsync(args, { from: "user" });
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (!(error instanceof DtkError)) throw error;
    return { code: error.exitCode, stdout, stderr, error };
  }
}

async function withHost(
  make: () => Promise<FakeHost>,
  fn: (host: FakeHost) => Promise<void>,
): Promise<void> {
  const host = await make();
  try {
    await fn(host);
  } finally {
    await host.dispose();
  }
}

Deno.test("cli: dtk doctor on a healthy host prints the table and exits 0", async () => {
  await withHost(FakeHost.healthyKvm, async (host) => {
    const r = await dtk(host, ["doctor"]);
    assert.equal(r.code, 0, r.error?.message);
    const lines = r.stdout.split("\n");
    assert.match(lines[0] ?? "", /^CHECK\s+STATUS\s+FOUND\s+REQUIRED$/);
    assert.match(r.stdout, /^ssh\s+ok\s+9\.2p1\s+>= 7\.6$/m);
    assert.match(r.stdout, /^libvirt network default\s+ok\s+active \(virbr0\)\s+active$/m);
    assert.match(r.stdout, /^17 ok, 0 warnings, 0 blocking problems$/m);
    assert.doesNotMatch(r.stdout, /fix:/);
    // Columns line up: STATUS starts at the same offset on every row.
    const offset = lines[0]?.indexOf("STATUS");
    for (const line of lines.slice(1, 16)) {
      assert.match(line.slice(offset), /^(ok|warn|fail)\s/, line);
    }
  });
});

Deno.test("cli: a blocking problem is exit 3, with the fix under its row", async () => {
  await withHost(FakeHost.healthyKvm, async (host) => {
    await host.tool(
      "virsh",
      virshScript({ network: "default", uri: "qemu:///system", active: "no" }),
    );
    await host.removeTool("helm");
    const r = await dtk(host, ["doctor"]);
    assert.equal(r.code, ExitCode.prerequisite);
    assert.equal(
      r.error?.message,
      'The host lacks a prerequisite: "libvirt network default" (inactive)',
    );
    assert.equal(
      r.error?.hint,
      "Try: virsh -c qemu:///system net-start default && virsh -c qemu:///system net-autostart default",
    );
    const lines = r.stdout.split("\n");
    const row = lines.findIndex((l) => l.startsWith("libvirt network default"));
    assert.match(lines[row] ?? "", /\sfail\s+inactive\s+active$/);
    assert.equal(
      lines[row + 1],
      "    fix: virsh -c qemu:///system net-start default && virsh -c qemu:///system net-autostart default",
    );
    const helm = lines.findIndex((l) => l.startsWith("helm "));
    assert.match(lines[helm] ?? "", /\swarn\s+not found\s+>= 3\.8\.0$/);
    assert.equal(
      lines[helm + 1],
      "    fix: curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash",
    );
    assert.equal(
      lines[helm + 2],
      "         (Ubuntu: sudo snap install helm --classic; Fedora: sudo dnf install helm)",
    );
    assert.match(
      r.stdout,
      /^15 ok, 1 warning, 1 blocking problem \(these stop "dtk cluster create"\)$/m,
    );
  });
});

Deno.test("cli: warnings alone exit 0", async () => {
  await withHost(FakeHost.healthyKvm, async (host) => {
    await host.removeTool("kubectl");
    const r = await dtk(host, ["doctor"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^kubectl\s+warn\s+not found/m);
    assert.ok(
      r.stdout.split("\n").includes(
        "    dtk writes an admin kubeconfig; kubectl is how you use it",
      ),
    );
  });
});

Deno.test("cli: dtk check-tools is the same command; --json is stable data", async () => {
  await withHost(FakeHost.healthyVbox, async (host) => {
    await host.removeTool("ssh");
    const asVbox = (c: Config) => {
      c.virt = "virtualbox";
    };
    const a = await dtk(host, ["check-tools", "--json"], { config: asVbox });
    const b = await dtk(host, ["doctor", "--json"], { config: asVbox });
    assert.equal(a.code, ExitCode.prerequisite);
    assert.equal(a.stdout, b.stdout);
    const data = JSON.parse(a.stdout);
    assert.equal(data.virt, "virtualbox");
    assert.equal(data.ok, false);
    assert.equal(data.failures, 1);
    assert.deepEqual(Object.keys(data.checks[0]), [
      "id",
      "title",
      "status",
      "found",
      "required",
      "blocking",
      "fix",
    ]);
    assert.deepEqual(data.checks[0], {
      id: "ssh",
      title: "ssh",
      status: "fail",
      found: "not found",
      required: ">= 7.6",
      blocking: true,
      fix: "sudo apt install openssh-client\n(Fedora: sudo dnf install openssh-clients)",
    });
    assert.equal(data.checks[2].id, "vboxmanage");
  });
});

Deno.test("cli: colour paints the status only and keeps the columns", async () => {
  await withHost(FakeHost.healthyKvm, async (host) => {
    await host.removeTool("helm");
    const plain = await dtk(host, ["doctor"]);
    const color = await dtk(host, ["doctor"], { color: true });
    // deno-lint-ignore no-control-regex
    assert.match(color.stdout, /\x1b\[33mwarn\s*\x1b\[0m/);
    // deno-lint-ignore no-control-regex
    assert.equal(color.stdout.replace(/\x1b\[\d+m/g, ""), plain.stdout);
  });
});
