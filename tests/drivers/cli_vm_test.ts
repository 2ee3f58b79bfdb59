import assert from "node:assert/strict";
import { Command } from "commander";
import { defaultConfig } from "../../lib/config/mod.ts";
import type { Config } from "../../lib/config/types.ts";
import type { CliContext } from "../../lib/cli/context.ts";
import { parseTimeout, registerVmCommands } from "../../lib/cli/vm.ts";
import { Output } from "../../lib/ui/mod.ts";
import { CommandError } from "../../lib/errors/mod.ts";
import { fakeHost } from "./_fake.ts";

async function setup(options: { failing?: string } = {}) {
  const fake = await fakeHost();
  const config: Config = defaultConfig({ dir: fake.state });
  config.virt = "virtualbox";
  config.vbox = {
    ...config.vbox,
    hostOnlyNetwork: "192.168.56",
    hostNetworkInterface: undefined,
    vboxdir: fake.state,
  };
  config.vms = config.vms.slice(0, 2);
  const data: string[] = [];
  const messages: string[] = [];
  const ctx: CliContext = {
    runner: {
      // A command whose argv holds `failing` fails at once, as a broken tool would.
      run: (argv, o) =>
        options.failing !== undefined && argv.includes(options.failing)
          ? Promise.reject(
            new CommandError(`${argv[0]} failed with exit code 3`, {
              command: argv,
              code: 3,
              stderrTail: "VBoxManage: error: it broke",
            }),
          )
          : fake.runner.run(argv, o),
    },
    out: new Output({
      color: false,
      quiet: false,
      verbose: false,
      tty: false,
      stdout: (t) => data.push(t),
      stderr: (t) => messages.push(t),
    }),
    cwd: fake.state,
    env: () => undefined,
    loadConfig: () => Promise.resolve(config),
  };
  const program = new Command("dtk").option("--json").exitOverride();
  const cluster = program.command("cluster").exitOverride();
  registerVmCommands(cluster as unknown as Command, ctx);
  const run = async (...args: string[]) => {
    data.length = 0;
    messages.length = 0;
    await program.parseAsync(["cluster", ...args], { from: "user" });
  };
  return { fake, config, data, messages, run, program };
}

Deno.test("dtk cluster up|pause|resume|down|delete drive every VM and summarise", async () => {
  const { fake, config, data, messages, run, program } = await setup();
  try {
    const names = config.vms.map((v) => v.name);
    await assert.rejects(run("up"), /No such VM: "vm1", "vm2"/);
    for (const n of [...names, config.vm.templateVmname]) {
      await fake.runner.run(["VBoxManage", "createvm", "--name", n]);
    }
    Object.assign(fake.env, { FAKE_IF1: "enp0s8", FAKE_IP1: "192.168.56.200" });
    await run("up", "--timeout", "5s");
    assert.match(
      data.join(""),
      /^VM\s+ACTION\s+STATE\s+IP\nvm1\s+started\s+running\s+192\.168\.56\.200\nvm2\s+started/,
    );
    assert.match(messages.join(""), /Started 2 VM\(s\) in/);
    await run("pause");
    assert.match(data.join(""), /vm1\s+paused\s+paused/);
    await run("resume");
    assert.match(data.join(""), /vm2\s+resumed\s+running/);
    await run("down", "--timeout", "2s");
    assert.match(data.join(""), /vm1\s+stopped\s+stopped/);
    await run("delete");
    assert.match(data.join(""), /vm1\s+deleted\s+absent\nvm2\s+deleted/);
    assert.equal(
      await fake.runner.run(["VBoxManage", "showvminfo", config.vm.templateVmname]).then(() =>
        true
      ),
      true,
    );
    await run("delete", "--template");
    assert.match(
      data.join(""),
      /vm1\s+not present\s+absent\nvm2\s+not present\s+absent\nalma9\.7\s+deleted\s+absent/,
    );
    data.length = 0;
    await program.parseAsync(["--json", "cluster", "down"], { from: "user" });
    assert.deepEqual(JSON.parse(data.join("")), [
      { name: "vm1", action: "not present", state: "absent" },
      { name: "vm2", action: "not present", state: "absent" },
    ]);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("--timeout accepts seconds, minutes and hours, and refuses junk", () => {
  assert.equal(parseTimeout("90"), 90_000);
  assert.equal(parseTimeout("90s"), 90_000);
  assert.equal(parseTimeout("5m"), 300_000);
  assert.equal(parseTimeout("1h"), 3_600_000);
  assert.equal(parseTimeout("250ms"), 250);
  assert.throws(() => parseTimeout("soon"), /Invalid timeout "soon"/);
  assert.throws(() => parseTimeout("0"), /Invalid timeout/);
});

Deno.test("dtk cluster up|down|delete write a run log: each VM a step, each command under it", async () => {
  const { fake, config, run, messages } = await setup({ failing: "unregistervm" });
  try {
    for (const n of config.vms.map((v) => v.name)) {
      await fake.runner.run(["VBoxManage", "createvm", "--name", n]);
    }
    Object.assign(fake.env, { FAKE_IF1: "enp0s8", FAKE_IP1: "192.168.56.200" });
    await run("up", "--timeout", "5s");
    const logs = `${fake.state}/generated/${config.cluster.name}/logs`;
    const upLog = (await Array.fromAsync(Deno.readDir(logs))).map((e) => e.name);
    assert.equal(upLog.length, 1);
    assert.match(upLog[0]!, /^\d{8}T\d{6}Z-up\.log$/);
    const text = await Deno.readTextFile(`${logs}/${upLog[0]}`);
    assert.match(text, /step start up\/vm1/);
    assert.match(text, /run \[up\/vm1\] VBoxManage startvm vm1 .*\n.*→ exit 0 in/);
    assert.match(text, /step done {2}up\/vm2 in/);
    assert.match(text, /result: ok in/);
    await run("down", "--timeout", "2s");
    await assert.rejects(run("delete"));
    const names = (await Array.fromAsync(Deno.readDir(logs))).map((e) => e.name).sort();
    const deleteLog = names.find((n) => n.endsWith("-delete.log"))!;
    const failed = await Deno.readTextFile(`${logs}/${deleteLog}`);
    assert.match(failed, /step FAILED delete\/vm1/);
    assert.match(failed, /failed command: VBoxManage unregistervm vm1/);
    assert.match(failed, /result: FAILED/);
    assert.ok(messages.join("").includes(`The log of this run: ${logs}/${deleteLog}`));
  } finally {
    await fake.cleanup();
  }
});
