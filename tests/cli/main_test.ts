// The real entry point as a subprocess: exit codes, help and version without a config.
import assert from "node:assert/strict";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function dtk(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: output.code, stdout: d.decode(output.stdout), stderr: d.decode(output.stderr) };
}

async function withBrokenConfigDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-main-" });
  try {
    await Deno.writeTextFile(`${dir}/config.yaml`, "virt: [broken\n");
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("main: help and version work even when ./config.yaml is broken", async () => {
  await withBrokenConfigDir(async (dir) => {
    for (const args of [["help"], ["--help"], ["version"], ["--version"], []]) {
      const r = await dtk(args, { cwd: dir });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.ok(r.stdout.length > 0);
    }
  });
});

Deno.test("main: a broken ./config.yaml is exit 2 with file:line:column", async () => {
  await withBrokenConfigDir(async (dir) => {
    const r = await dtk(["config", "check"], { cwd: dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: Invalid config: Invalid YAML/m);
    // Where the "[" opened, not where the file ends.
    assert.match(r.stderr, /config\.yaml:1:7/);
    assert.match(r.stderr, /^hint: /m);
  });
});

Deno.test("main: config check --json reports issues as data", async () => {
  await withBrokenConfigDir(async (dir) => {
    const r = await dtk(["config", "check", "--json"], { cwd: dir });
    assert.equal(r.code, 2);
    const data = JSON.parse(r.stdout);
    assert.equal(data.valid, false);
    assert.equal(data.issues[0].line, 1);
    assert.equal(data.issues[0].column, 7);
  });
});

Deno.test("main: unknown command and option are usage errors (exit 2)", async () => {
  const a = await dtk(["frobnicate"]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /^error: Unknown command "frobnicate"$/m);
  const b = await dtk(["config", "show", "--frob"]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /Unknown option "--frob"/);
});

Deno.test("main: a missing explicit config is an error, not the default", async () => {
  const r = await dtk(["config", "show", "--config", "/nonexistent/dtk.yaml"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Config file not found: "\/nonexistent\/dtk.yaml"/);
  const e = await dtk(["config", "show"], { env: { DTK_CONFIG: "/nonexistent/x.yaml" } });
  assert.equal(e.code, 2);
});

Deno.test("main: config show prints the built-in default when there is no ./config.yaml", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await dtk(["config", "show", "--json"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const data = JSON.parse(r.stdout);
    assert.equal(data.virt, "kvm");
    assert.equal(data.vms.length, 3);
    const flagAfter = await dtk(["--json", "config", "show"], { cwd: dir });
    assert.deepEqual(JSON.parse(flagAfter.stdout), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: completion scripts for bash, zsh and fish", async () => {
  for (const shell of ["bash", "zsh", "fish"]) {
    const r = await dtk(["completion", shell]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /config/);
  }
  const bash = await dtk(["completion", "bash"]);
  const check = await new Deno.Command("bash", { args: ["-n", "-c", bash.stdout] }).output();
  assert.equal(check.code, 0, "bash completion script does not parse");
  const bad = await dtk(["completion", "tcsh"]);
  assert.equal(bad.code, 2);
});

Deno.test("main: a reader gone before the error is printed keeps the command's exit code", async () => {
  // `dtk doctor 2>&1 | head`: the error goes to a closed pipe; the exit code must still be the
  // command's own, not a crash's.
  await withBrokenConfigDir(async (dir) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MAIN, "config", "check"],
      cwd: dir,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await child.stdout.cancel();
    await child.stderr.cancel();
    const { code } = await child.status;
    assert.equal(code, 2);
  });
});
