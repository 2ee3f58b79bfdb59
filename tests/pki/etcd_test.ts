/**
 * A real two-member etcd (Debian `etcd-server`) serving and peering with the generated
 * `kubernetes` certificate under client-cert auth: the generated cert gets in, a cert of another
 * CA and no cert at all do not.
 */
import assert from "node:assert/strict";
import { ensurePki } from "../../lib/pki/mod.ts";
import { sh, testConfig } from "./_config.ts";
import { type Daemon, freePort, startDaemon, waitUntil } from "./_proc.ts";

const missing = [];
for (const tool of ["etcd", "etcdctl", "curl"]) {
  if ((await sh(["sh", "-c", `command -v ${tool}`])).code !== 0) missing.push(tool);
}

Deno.test({
  name: `a real etcd accepts the generated certs and refuses others${
    missing.length ? ` (skipped: ${missing.join(", ")} not installed)` : ""
  }`,
  ignore: missing.length > 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-pki-etcd-" });
    const daemons: Daemon[] = [];
    try {
      const config = testConfig(dir, { nodes: 1 });
      const { layout } = await ensurePki(config, [{ name: "vm1", ip: "127.0.0.1" }]);
      const other = testConfig(`${dir}/other`, { nodes: 1 });
      const foreign = await ensurePki(other, [{ name: "vm1", ip: "127.0.0.1" }]);

      const members = ["m1", "m2"].map((name) => ({ name, client: freePort(), peer: freePort() }));
      const initial = members.map((m) => `${m.name}=https://127.0.0.1:${m.peer}`).join(",");
      const tls = [
        `--cert-file=${layout.cert("kubernetes")}`,
        `--key-file=${layout.key("kubernetes")}`,
        `--peer-cert-file=${layout.cert("kubernetes")}`,
        `--peer-key-file=${layout.key("kubernetes")}`,
        `--trusted-ca-file=${layout.caCert}`,
        `--peer-trusted-ca-file=${layout.caCert}`,
        "--client-cert-auth",
        "--peer-client-cert-auth",
      ];
      for (const m of members) {
        daemons.push(
          await startDaemon(
            [
              "etcd",
              `--name=${m.name}`,
              `--data-dir=${dir}/${m.name}.etcd`,
              `--listen-client-urls=https://127.0.0.1:${m.client}`,
              `--advertise-client-urls=https://127.0.0.1:${m.client}`,
              `--listen-peer-urls=https://127.0.0.1:${m.peer}`,
              `--initial-advertise-peer-urls=https://127.0.0.1:${m.peer}`,
              `--initial-cluster=${initial}`,
              "--initial-cluster-state=new",
              "--initial-cluster-token=dtk-test",
              "--logger=zap",
              "--log-outputs=stderr",
            ].concat(tls),
            `${dir}/${m.name}.log`,
          ),
        );
      }
      const endpoints = members.map((m) => `https://127.0.0.1:${m.client}`).join(",");
      // Refusals surface as timeouts in etcdctl, so the timeouts are kept short.
      const etcdctl = (creds: string[], ...args: string[]) =>
        sh(
          [
            "etcdctl",
            `--endpoints=${endpoints}`,
            "--dial-timeout=1s",
            "--command-timeout=2s",
            ...creds,
            ...args,
          ],
          { env: { ETCDCTL_API: "3" } },
        );
      const ours = [
        `--cacert=${layout.caCert}`,
        `--cert=${layout.cert("kubernetes")}`,
        `--key=${layout.key("kubernetes")}`,
      ];
      // Both members healthy means the peers completed mutual TLS with the same certificate.
      await waitUntil("etcd members healthy", async () => {
        return (await etcdctl(ours, "endpoint", "health", "--cluster")).code === 0;
      }, { timeoutMs: 20_000, intervalMs: 200 }).catch(async (error) => {
        throw new Error(`${error.message}\n${await daemons[0]!.output()}`);
      });

      const list = await etcdctl(ours, "member", "list");
      assert.equal(list.code, 0, list.stderr);
      assert.equal(list.stdout.trim().split("\n").length, 2);
      const put = await etcdctl(ours, "put", "/dtk/test", "hello");
      assert.equal(put.code, 0, put.stderr);
      const get = await etcdctl(ours, "get", "/dtk/test", "--print-value-only");
      assert.equal(get.stdout.trim(), "hello");

      const theirs = [
        `--cacert=${layout.caCert}`,
        `--cert=${foreign.layout.cert("kubernetes")}`,
        `--key=${foreign.layout.key("kubernetes")}`,
      ];
      const [refused, anonymous, wrongCa] = await Promise.all([
        etcdctl(theirs, "get", "/dtk/test"),
        etcdctl([`--cacert=${layout.caCert}`], "get", "/dtk/test"),
        // The client checks the server's chain too: the other cluster's CA does not trust it.
        etcdctl(
          [
            `--cacert=${foreign.layout.caCert}`,
            `--cert=${layout.cert("kubernetes")}`,
            `--key=${layout.key("kubernetes")}`,
          ],
          "get",
          "/dtk/test",
        ),
      ]);
      assert.notEqual(refused.code, 0, "a certificate of another CA must be refused");
      assert.doesNotMatch(refused.stdout, /hello/);
      assert.notEqual(anonymous.code, 0, "a client without a certificate must be refused");
      assert.doesNotMatch(anonymous.stdout, /hello/);
      assert.notEqual(wrongCa.code, 0, "a server of another CA must not be trusted");
      // etcdctl reports refusals only as timeouts; curl shows they are TLS handshake failures.
      const version = `https://127.0.0.1:${members[0]!.client}/version`;
      const curl = (...args: string[]) =>
        sh(["curl", "-sS", "--max-time", "5", "--cacert", layout.caCert, ...args, version]);
      const good = await curl(
        "--cert",
        layout.cert("kubernetes"),
        "--key",
        layout.key("kubernetes"),
      );
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout, /"etcdserver":"3\./);
      const badCert = await curl(
        "--cert",
        foreign.layout.cert("kubernetes"),
        "--key",
        foreign.layout.key("kubernetes"),
      );
      assert.notEqual(badCert.code, 0);
      assert.doesNotMatch(badCert.stdout, /etcdserver/);
      // The server aborts the handshake; depending on timing curl sees the TLS alert or only the
      // closed connection (exit 35, 55 or 56).
      assert.match(badCert.stderr, /alert|certificate|handshake|not connected|reset by peer/i);
      // A client-only certificate of the right CA (admin) is accepted as an etcd client.
      const admin = await etcdctl(
        [
          `--cacert=${layout.caCert}`,
          `--cert=${layout.cert("admin")}`,
          `--key=${layout.key("admin")}`,
        ],
        "get",
        "/dtk/test",
        "--print-value-only",
      );
      assert.equal(admin.stdout.trim(), "hello", admin.stderr);
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
