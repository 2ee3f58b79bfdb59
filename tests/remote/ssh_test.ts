/**
 * `SshRemote` against a real OpenSSH server started by the test on 127.0.0.1.
 */
import { equal, match, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CommandError, TimeoutError } from "../../lib/errors/mod.ts";
import {
  fingerprint,
  HostKeyChangedError,
  HostKeyUnknownError,
  KnownHosts,
  scanHostKey,
  SshAuthError,
  SshRemote,
  type SshRemoteOptions,
  waitForSsh,
} from "../../lib/remote/mod.ts";
import { freePort, keygen, type Sshd, sshdUnavailable, startSshd } from "./_sshd.ts";

const unavailable = sshdUnavailable();

function skipName(name: string): string {
  return unavailable ? `${name} (skipped: ${unavailable})` : name;
}

async function pinned(sshd: Sshd, dir: string): Promise<string> {
  const path = join(dir, "known_hosts");
  await new KnownHosts(path).pin("127.0.0.1", sshd.port, sshd.hostKey, { node: "vm1" });
  return path;
}

function remoteFor(
  sshd: Sshd,
  dir: string,
  knownHostsFile: string,
  extra: Partial<SshRemoteOptions> = {},
) {
  return new SshRemote({
    node: "vm1",
    host: "127.0.0.1",
    port: sshd.port,
    identityFile: sshd.clientKey,
    knownHostsFile,
    controlDir: join(dir, "cm"),
    ...extra,
  });
}

async function modeOf(path: string): Promise<number> {
  return ((await Deno.stat(path)).mode ?? 0) & 0o7777;
}

Deno.test({
  name: skipName("SshRemote against a real sshd"),
  ignore: unavailable !== undefined,
  sanitizeResources: false,
  fn: async (t) => {
    const sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "dtk-remote-" });
    const remotes: SshRemote[] = [];
    const track = (r: SshRemote) => (remotes.push(r), r);
    try {
      const knownHosts = await pinned(sshd, dir);
      const remote = track(remoteFor(sshd, dir, knownHosts));
      await waitForSsh(remote, { timeoutMs: 10_000 });

      await t.step("exec: strings, quoted arrays, stdin, exit codes", async () => {
        equal((await remote.exec("echo hello; echo err >&2")).stdout, "hello\n");
        const words = ["printf", "%s|", "a b", "it's", "$HOME", "*"];
        equal((await remote.exec(words)).stdout, "a b|it's|$HOME|*|");
        equal((await remote.exec("cat", { stdin: "from stdin" })).stdout, "from stdin");
        const failed = await remote.exec("echo oops >&2; exit 3", { check: false });
        equal(failed.code, 3);
        await rejects(remote.exec("echo broken >&2; exit 4"), (e: unknown) => {
          ok(e instanceof CommandError);
          equal(e.code, 4);
          match(e.stderrTail, /broken/);
          match(e.message, /on node "vm1"/);
          return true;
        });
      });

      await t.step(
        "upload: many files in one round trip, exact modes and owners, atomic",
        async () => {
          const root = join(dir, "node");
          await Deno.mkdir(join(root, "etc"), { recursive: true });
          await Deno.writeTextFile(join(root, "etc", "old.conf"), "old\n");
          const oldInode = (await Deno.stat(join(root, "etc", "old.conf"))).ino;
          const before = sshd.logins();
          const long = join(root, "a".repeat(60), "b".repeat(60), "c".repeat(40) + ".yaml");
          await remote.upload([
            { path: join(root, "etc", "old.conf"), content: "new\n", mode: 0o644 },
            { path: join(root, "secret", "key.pem"), content: "KEY\n", mode: 0o600 },
            { path: join(root, "bin", "tool"), content: "#!/bin/sh\necho tool\n", mode: 0o755 },
            { path: join(root, "owned"), content: "x", mode: 0o640, owner: "nobody:nogroup" },
            { path: long, content: "long path\n", mode: 0o644 },
            { path: join(root, "empty"), content: "", mode: 0o644 },
          ]);
          equal(sshd.logins(), before, "the upload reused the shared connection");
          equal(await Deno.readTextFile(join(root, "etc", "old.conf")), "new\n");
          ok(
            (await Deno.stat(join(root, "etc", "old.conf"))).ino !== oldInode,
            "replaced by rename",
          );
          equal(await modeOf(join(root, "etc", "old.conf")), 0o644);
          equal(await modeOf(join(root, "secret", "key.pem")), 0o600);
          equal(await modeOf(join(root, "bin", "tool")), 0o755);
          equal(await modeOf(join(root, "owned")), 0o640);
          const nobody = (await remote.exec(["id", "-u", "nobody"])).stdout.trim();
          equal((await Deno.stat(join(root, "owned"))).uid, Number(nobody));
          equal(await Deno.readTextFile(long), "long path\n");
          equal(await Deno.readTextFile(join(root, "empty")), "");
          const leftovers = (await remote.exec(`find ${root} -name '.*dtk-*'`)).stdout;
          equal(leftovers, "", "no temp files left");

          // A failing upload (unknown owner) leaves the old file untouched and no temp file behind.
          await rejects(
            remote.upload([
              {
                path: join(root, "etc", "old.conf"),
                content: "half\n",
                mode: 0o644,
                owner: "no-such-user",
              },
            ]),
            CommandError,
          );
          equal(await Deno.readTextFile(join(root, "etc", "old.conf")), "new\n");
          equal((await remote.exec(`find ${root} -name '.*dtk-*'`)).stdout, "");
        },
      );

      await t.step("uploadFile and sha256: a 32 MiB binary arrives intact", async () => {
        const local = join(dir, "big.bin");
        const data = new Uint8Array(32 * 1024 * 1024);
        for (let i = 0; i < data.length; i += 65536) {
          crypto.getRandomValues(data.subarray(i, i + 65536));
        }
        await Deno.writeFile(local, data);
        const expected = createHash("sha256").update(data).digest("hex");
        const target = join(dir, "node", "usr", "local", "bin", "big");
        const started = performance.now();
        await remote.uploadFile(local, target, { mode: 0o755 });
        const ms = performance.now() - started;
        console.log(`uploadFile 32 MiB: ${ms.toFixed(0)} ms`);
        equal(await modeOf(target), 0o755);
        const sums = await remote.sha256([target, join(dir, "node", "missing")]);
        equal(sums.get(target), expected);
        equal(sums.get(join(dir, "node", "missing")), undefined);
        equal(sums.size, 2);
      });

      await t.step("multiplexing: ten commands over one connection", async () => {
        const fresh = track(remoteFor(sshd, dir, knownHosts, { controlDir: join(dir, "cm2") }));
        const before = sshd.logins();
        const started = performance.now();
        for (let i = 0; i < 10; i++) await fresh.exec(["true"]);
        const muxMs = performance.now() - started;
        equal(sshd.logins() - before, 1, "one login for ten commands");
        await fresh.close();
        await fresh.exec("true");
        equal(sshd.logins() - before, 2, "close() ended the shared connection");
        console.log(`10 multiplexed commands: ${muxMs.toFixed(0)} ms`);
      });

      await t.step(
        "a changed host key is refused, naming the node and both fingerprints",
        async () => {
          const other = await keygen(join(dir, "other_host"), "impostor");
          const path = join(dir, "known_hosts_changed");
          await new KnownHosts(path).pin("127.0.0.1", sshd.port, other, { node: "vm1" });
          const r = track(remoteFor(sshd, dir, path, { controlDir: join(dir, "cm3") }));
          const started = performance.now();
          await rejects(waitForSsh(r, { timeoutMs: 20_000 }), (e: unknown) => {
            ok(e instanceof HostKeyChangedError, String(e));
            match(e.message, /node "vm1"/);
            ok(e.message.includes(fingerprint(other)), e.message);
            ok(e.message.includes(fingerprint(sshd.hostKey)), e.message);
            ok(e.hint?.includes("ssh-keygen"));
            return true;
          });
          ok(performance.now() - started < 10_000, "not retried until the timeout");
          const unknown = track(
            remoteFor(sshd, dir, join(dir, "known_hosts_empty"), { controlDir: join(dir, "cm4") }),
          );
          await rejects(unknown.exec("true"), HostKeyUnknownError);
        },
      );

      await t.step("a key sshd does not accept is refused at once", async () => {
        const wrongKey = join(dir, "wrong_key");
        await keygen(wrongKey, "wrong");
        const r = track(
          remoteFor(sshd, dir, knownHosts, {
            identityFile: wrongKey,
            controlDir: join(dir, "cm5"),
          }),
        );
        await rejects(waitForSsh(r, { timeoutMs: 20_000 }), (e: unknown) => {
          ok(e instanceof SshAuthError, String(e));
          match(e.message, /refused the cluster's SSH key/);
          return true;
        });
      });

      await t.step("timeouts: a hung command and an absent sshd", async () => {
        let started = performance.now();
        await rejects(remote.exec("sleep 30", { timeoutMs: 500 }), (e: unknown) => {
          ok(e instanceof TimeoutError, String(e));
          match(e.message, /on node "vm1"/);
          return true;
        });
        ok(performance.now() - started < 5000);
        const port = freePort();
        const absent = track(
          new SshRemote({
            node: "vm9",
            host: "127.0.0.1",
            port,
            identityFile: sshd.clientKey,
            knownHostsFile: knownHosts,
            controlDir: join(dir, "cm6"),
          }),
        );
        started = performance.now();
        await rejects(waitForSsh(absent, { timeoutMs: 1500, intervalMs: 200 }), (e: unknown) => {
          ok(e instanceof TimeoutError, String(e));
          match(e.message, new RegExp(`ssh of node "vm9" at \\[127\\.0\\.0\\.1\\]:${port}`));
          return true;
        });
        ok(performance.now() - started < 6000);
      });

      await t.step("scanHostKey reads the key sshd offers", async () => {
        equal(await scanHostKey("127.0.0.1", sshd.port, { timeoutMs: 5000 }), sshd.hostKey);
      });
    } finally {
      for (const r of remotes) await r.close();
      await sshd.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
