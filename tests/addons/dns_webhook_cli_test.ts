/**
 * `dtk dns-webhook` as a real process: where it listens by default, the token file it makes,
 * and SIGTERM while it is busy with a large batch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { WEBHOOK_MEDIA_TYPE } from "../../lib/dnswebhook/mod.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

interface Running {
  child: Deno.ChildProcess;
  url: string;
  output: () => string;
}

/** Starts dtk dns-webhook in `dir` and waits (bounded) for its "DNS webhook on" line. */
async function start(dir: string, args: string[]): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "dns-webhook", "--port", "0", ...args],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk);
  };
  void pump(child.stdout);
  void pump(child.stderr);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const m = /DNS webhook on (http:\/\/\S+?),/.exec(text);
    if (m) return { child, url: m[1]!, output: () => text };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  await child.status;
  throw new Error(`dtk dns-webhook did not start within 60 s:\n${text}`);
}

Deno.test("dtk dns-webhook: loopback by default, a 0600 token per cluster, SIGTERM while busy stops it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-dnswebhook-cli-" });
  const hosts = join(dir, "hosts");
  await Deno.writeTextFile(hosts, "127.0.0.1 localhost\n");
  // VirtualBox, without VBoxManage here: no VM network known, so loopback (with KVM, a running
  // libvirt would give its network's address).
  await Deno.writeTextFile(join(dir, "config.yaml"), "virt: virtualbox\n");
  try {
    const run = await start(dir, [
      "--hosts-file",
      hosts,
      "--domains",
      "dtk.io",
      "--cluster-ip",
      "10.1.2.3",
    ]);
    let status: Deno.CommandStatus | undefined;
    try {
      assert.match(run.url, /^http:\/\/127\.0\.0\.1:\d+$/, run.output());
      const tokenFile = join(dir, "generated", "dtk", "dns-webhook.token");
      assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);
      const token = (await Deno.readTextFile(tokenFile)).trim();
      assert.match(token, /^[0-9a-f]{64}$/);
      assert.ok(!run.output().includes(token), "the token is never printed");
      const unauthorized = await fetch(`${run.url}/`);
      assert.equal(unauthorized.status, 401);
      await unauthorized.body?.cancel();

      const batch = JSON.stringify(
        Array.from({ length: 20_000 }, (_, i) => ({ dnsName: `h${i}.dtk.io`, targets: ["x"] })),
      );
      const busy = fetch(`${run.url}/adjustendpoints`, {
        method: "POST",
        body: batch,
        headers: { "content-type": WEBHOOK_MEDIA_TYPE, authorization: `Bearer ${token}` },
      }).then((r) => r.body?.cancel(), () => {});
      await new Promise((r) => setTimeout(r, 20));
      run.child.kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      status = await Promise.race([
        run.child.status,
        new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 10_000)),
      ]);
      clearTimeout(timer);
      await busy;
      // The original scanned every hosts line for every name: 20,000 names kept it busy for
      // minutes, and the signal waited behind them.
      assert.ok(status !== undefined, `still running 10 s after SIGTERM:\n${run.output()}`);
      assert.equal(status.code, 0, run.output());
      assert.match(run.output(), /DNS webhook stopped/);
    } finally {
      if (status === undefined) {
        run.child.kill("SIGKILL");
        await run.child.status;
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dtk dns-webhook: --domains are checked as domain names", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-dnswebhook-cli-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", MAIN, "dns-webhook", "--port", "0", "--domains", "*.com"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, /--domains: Not a managed domain: "\*\.com"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dtk dns-webhook: listens on dns.host-ip, the address the guests are given", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-dnswebhook-cli-" });
  try {
    // 127.0.0.2 stands in for the VM network's host address: a loopback alias, bindable here.
    await Deno.writeTextFile(join(dir, "config.yaml"), "dns:\n  host-ip: 127.0.0.2\n");
    const run = await start(dir, ["--hosts-file", join(dir, "hosts")]);
    try {
      assert.match(run.url, /^http:\/\/127\.0\.0\.2:\d+$/, run.output());
      // Not on 127.0.0.1: not every interface.
      const port = new URL(run.url).port;
      await assert.rejects(() => fetch(`http://127.0.0.1:${port}/`));
    } finally {
      run.child.kill("SIGTERM");
      await run.child.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
