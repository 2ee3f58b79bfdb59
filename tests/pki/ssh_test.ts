/**
 * The Ed25519 keys dtk writes, used by the real OpenSSH: `ssh-keygen -y` re-derives the public
 * key, and an sshd on loopback that serves a dtk-made host key lets the dtk-made client key in,
 * with strict host key checking against the pinned host key.
 */
import assert from "node:assert/strict";
import { ensureSshKey, generateHostKey, generateSshKeyPair } from "../../lib/pki/mod.ts";
import { sh, testConfig } from "./_config.ts";
import { type Daemon, freePort, startDaemon, waitUntil } from "./_proc.ts";

const SSHD = "/usr/sbin/sshd";
const missing: string[] = [];
for (const tool of ["ssh", "ssh-keygen", SSHD]) {
  if ((await sh(["sh", "-c", `command -v ${tool}`])).code !== 0) missing.push(tool);
}
const skip = missing.length ? ` (skipped: ${missing.join(", ")} not installed)` : "";

Deno.test({
  name: `ssh-keygen re-derives the public keys dtk writes${skip}`,
  ignore: missing.length > 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-pki-ssh-" });
    try {
      const config = testConfig(dir, { nodes: 1 });
      const key = await ensureSshKey(config);
      assert.equal((await Deno.stat(key.privateKeyPath)).mode! & 0o777, 0o600);
      const derived = await sh(["ssh-keygen", "-y", "-f", key.privateKeyPath]);
      assert.equal(derived.code, 0, derived.stderr);
      const fields = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(" ");
      assert.equal(fields(derived.stdout), fields(key.publicKey));
      assert.equal((await Deno.readTextFile(key.publicKeyPath)).trim(), key.publicKey);
      const fingerprint = await sh(["ssh-keygen", "-l", "-f", key.publicKeyPath]);
      assert.match(fingerprint.stdout, /^256 SHA256:\S+ dtk@dev \(ED25519\)/);
      // A second call keeps the key.
      const again = await ensureSshKey(config);
      assert.equal(again.publicKey, key.publicKey);
      assert.deepEqual(again.files.map((f) => f.action), ["kept", "kept"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `a real sshd with a dtk host key accepts the dtk client key${skip}`,
  ignore: missing.length > 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-pki-sshd-" });
    let sshd: Daemon | undefined;
    try {
      const user = (await sh(["id", "-un"])).stdout.trim();
      if (Deno.uid() === 0) {
        // sshd running as root wants its privilege separation folder (Debian's unit makes it).
        await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
      }
      const config = testConfig(dir, { nodes: 1 });
      const client = await ensureSshKey(config);
      const host = await generateHostKey("vm1");
      await Deno.writeTextFile(`${dir}/host_key`, host.privateKey, { mode: 0o600 });
      await Deno.writeTextFile(`${dir}/authorized_keys`, `${client.publicKey}\n`, { mode: 0o600 });
      const port = freePort();
      await Deno.writeTextFile(`${dir}/known_hosts`, `[127.0.0.1]:${port} ${host.publicKey}\n`);
      await Deno.writeTextFile(
        `${dir}/sshd_config`,
        [
          `Port ${port}`,
          "ListenAddress 127.0.0.1",
          `HostKey ${dir}/host_key`,
          `PidFile ${dir}/sshd.pid`,
          `AuthorizedKeysFile ${dir}/authorized_keys`,
          "PubkeyAuthentication yes",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "PermitRootLogin prohibit-password",
          "UsePAM no",
          // The temp folder sits in world-writable /tmp, which StrictModes rejects.
          "StrictModes no",
          `AllowUsers ${user}`,
          "",
        ].join("\n"),
      );
      const test = await sh([SSHD, "-t", "-f", `${dir}/sshd_config`]);
      assert.equal(test.code, 0, `sshd refuses the config or the dtk host key: ${test.stderr}`);
      sshd = await startDaemon([SSHD, "-D", "-e", "-f", `${dir}/sshd_config`], `${dir}/sshd.log`);
      await waitUntil(`sshd on port ${port}`, async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return true;
        } catch {
          return false;
        }
      }, { timeoutMs: 10_000 });
      const ssh = (identity: string, knownHosts: string) =>
        sh([
          "ssh",
          "-F",
          "/dev/null",
          "-p",
          String(port),
          "-i",
          identity,
          "-o",
          "BatchMode=yes",
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "IdentityAgent=none",
          "-o",
          "StrictHostKeyChecking=yes",
          "-o",
          `UserKnownHostsFile=${knownHosts}`,
          "-o",
          "ConnectTimeout=5",
          `${user}@127.0.0.1`,
          "echo",
          "dtk-login-ok",
        ]);
      const ok = await ssh(client.privateKeyPath, `${dir}/known_hosts`);
      assert.equal(ok.code, 0, `${ok.stderr}\n${await sshd.output()}`);
      assert.equal(ok.stdout.trim(), "dtk-login-ok");

      // Another key is refused.
      const stranger = await generateSshKeyPair("stranger");
      await Deno.writeTextFile(`${dir}/stranger`, stranger.privateKey, { mode: 0o600 });
      const refused = await ssh(`${dir}/stranger`, `${dir}/known_hosts`);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /Permission denied/);
      // A pinned host key that differs from the served one stops the client.
      const otherHost = await generateHostKey("vm2");
      await Deno.writeTextFile(
        `${dir}/known_hosts_wrong`,
        `[127.0.0.1]:${port} ${otherHost.publicKey}\n`,
      );
      const spoofed = await ssh(client.privateKeyPath, `${dir}/known_hosts_wrong`);
      assert.notEqual(spoofed.code, 0);
      assert.match(spoofed.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      await sshd?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
