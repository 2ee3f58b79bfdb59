/**
 * Kubeconfigs read by the real `kubectl`, their client certs verified by `openssl`, and the
 * `kubernetes` serving cert with the admin client cert in a real mutual-TLS handshake
 * (`openssl s_server` requiring a client cert, `curl` as the client).
 */
import assert from "node:assert/strict";
import { decodeBase64 } from "../../lib/pki/_base64.ts";
import { ensurePki } from "../../lib/pki/mod.ts";
import { sh, testConfig } from "./_config.ts";
import { type Daemon, freePort, startDaemon, waitUntil } from "./_proc.ts";

const missing: string[] = [];
for (const tool of ["kubectl", "openssl", "curl"]) {
  if ((await sh(["sh", "-c", `command -v ${tool}`])).code !== 0) missing.push(tool);
}
const skip = missing.length ? ` (skipped: ${missing.join(", ")} not installed)` : "";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "dtk-pki-kc-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface KubectlView {
  clusters: { name: string; cluster: { server: string; "certificate-authority-data": string } }[];
  users: { name: string; user: { "client-certificate-data": string; "client-key-data": string } }[];
  contexts: { name: string; context: { cluster: string; user: string } }[];
  "current-context": string;
}

Deno.test({
  name: `kubectl reads every kubeconfig and the embedded client certs verify${skip}`,
  ignore: missing.length > 0,
  async fn() {
    await withDir(async (dir) => {
      const config = testConfig(dir, { nodes: 2, kubeProxy: true });
      const nodes = [{ name: "vm1", ip: "192.168.122.10" }, { name: "vm2", ip: "192.168.122.11" }];
      const { layout } = await ensurePki(config, nodes);
      const identities = [
        "admin",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "kubelet-vm1",
        "kubelet-vm2",
      ];
      for (const identity of identities) {
        const r = await sh([
          "kubectl",
          "config",
          "view",
          "--raw",
          "-o",
          "json",
          "--kubeconfig",
          layout.kubeconfig(identity),
        ]);
        assert.equal(r.code, 0, `${identity}: ${r.stderr}`);
        const view = JSON.parse(r.stdout) as KubectlView;
        assert.equal(view["current-context"], "dev");
        assert.deepEqual(view.contexts, [{
          name: "dev",
          context: { cluster: "dev", user: `${identity}@dev` },
        }]);
        assert.equal(view.clusters[0]?.cluster.server, "https://192.168.122.10:6443");
        const decode = (b64: string) => new TextDecoder().decode(decodeBase64(b64));
        assert.equal(
          decode(view.clusters[0]!.cluster["certificate-authority-data"]),
          await Deno.readTextFile(layout.caCert),
        );
        const certPath = `${dir}/${identity}-embedded.pem`;
        await Deno.writeTextFile(certPath, decode(view.users[0]!.user["client-certificate-data"]));
        const verify = await sh([
          "openssl",
          "verify",
          "-x509_strict",
          "-purpose",
          "sslclient",
          "-CAfile",
          layout.caCert,
          certPath,
        ]);
        assert.equal(verify.code, 0, `${identity}: ${verify.stdout}${verify.stderr}`);
        const keyPath = `${dir}/${identity}-embedded-key.pem`;
        await Deno.writeTextFile(keyPath, decode(view.users[0]!.user["client-key-data"]));
        const fromKey = await sh(["openssl", "pkey", "-in", keyPath, "-pubout"]);
        const fromCert = await sh(["openssl", "x509", "-in", certPath, "-noout", "-pubkey"]);
        assert.equal(
          fromKey.stdout,
          fromCert.stdout,
          `${identity}: embedded key belongs to the cert`,
        );
      }
    });
  },
});

Deno.test({
  name: `admin kubeconfigs of two clusters merge without clashing${skip}`,
  ignore: missing.length > 0,
  async fn() {
    await withDir(async (dir) => {
      const dev = testConfig(dir, { name: "dev", nodes: 1 });
      const prod = testConfig(dir, { name: "prod", nodes: 1 });
      const a = await ensurePki(dev, [{ name: "vm1", ip: "10.0.0.1" }]);
      const b = await ensurePki(prod, [{ name: "vm1", ip: "10.0.0.2" }]);
      const env = { KUBECONFIG: `${a.layout.kubeconfig("admin")}:${b.layout.kubeconfig("admin")}` };
      const contexts = await sh(["kubectl", "config", "get-contexts", "-o", "name"], { env });
      assert.deepEqual(contexts.stdout.trim().split("\n").sort(), ["dev", "prod"]);
      for (const [name, result] of [["dev", a], ["prod", b]] as const) {
        const r = await sh([
          "kubectl",
          "config",
          "view",
          "--raw",
          "--minify",
          "--context",
          name,
          "-o",
          "json",
        ], { env });
        const view = JSON.parse(r.stdout) as KubectlView;
        assert.equal(view.users[0]?.name, `admin@${name}`);
        const cert = new TextDecoder().decode(
          decodeBase64(view.users[0]!.user["client-certificate-data"]),
        );
        assert.equal(cert, await Deno.readTextFile(result.layout.cert("admin")));
      }
    });
  },
});

Deno.test({
  name:
    `a TLS server with the kubernetes cert accepts the admin client cert, refuses others${skip}`,
  ignore: missing.length > 0,
  async fn() {
    await withDir(async (dir) => {
      const config = testConfig(dir, { nodes: 1 });
      const { layout } = await ensurePki(config, [{ name: "vm1", ip: "127.0.0.1" }]);
      const other = testConfig(`${dir}/other`, { nodes: 1 });
      const foreign = await ensurePki(other, [{ name: "vm1", ip: "127.0.0.1" }]);
      const port = freePort();
      let server: Daemon | undefined;
      try {
        server = await startDaemon([
          "openssl",
          "s_server",
          "-accept",
          `127.0.0.1:${port}`,
          "-www",
          "-naccept",
          "20",
          "-cert",
          layout.cert("kubernetes"),
          "-key",
          layout.key("kubernetes"),
          "-CAfile",
          layout.caCert,
          "-Verify",
          "1",
          "-verify_return_error",
        ], `${dir}/s_server.log`);
        await waitUntil(`openssl s_server on port ${port}`, async () => {
          try {
            (await Deno.connect({ hostname: "127.0.0.1", port })).close();
            return true;
          } catch {
            return false;
          }
        }, { timeoutMs: 10_000 });
        const curl = (host: string, ...args: string[]) =>
          sh([
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "--cacert",
            layout.caCert,
            "--resolve",
            `${host}:${port}:127.0.0.1`,
            ...args,
            `https://${host}:${port}/`,
          ]);
        const admin = ["--cert", layout.cert("admin"), "--key", layout.key("admin")];
        // By IP and by each DNS name the apiserver is reached by, the server cert verifies.
        for (
          const host of ["127.0.0.1", "kubernetes", "kubernetes.default.svc.cluster.local", "vm1"]
        ) {
          const ok = await curl(host, ...admin);
          assert.equal(ok.code, 0, `${host}: ${ok.stderr}`);
          assert.match(ok.stdout, /s_server/);
        }
        const wrongName = await curl("kubernetes.example.com", ...admin);
        assert.notEqual(wrongName.code, 0, "a name outside the SANs must fail");
        const noCert = await curl("127.0.0.1");
        assert.notEqual(noCert.code, 0, "a request without a client cert must be refused");
        const foreignCert = await curl(
          "127.0.0.1",
          "--cert",
          foreign.layout.cert("admin"),
          "--key",
          foreign.layout.key("admin"),
        );
        assert.notEqual(foreignCert.code, 0, "a client cert of another CA must be refused");
        // The kubernetes cert is a client too (apiserver to etcd and to kubelets).
        const kubelet = await curl(
          "127.0.0.1",
          "--cert",
          layout.cert("kubernetes"),
          "--key",
          layout.key("kubernetes"),
        );
        assert.equal(kubelet.code, 0, kubelet.stderr);
      } finally {
        await server?.stop();
      }
    });
  },
});
