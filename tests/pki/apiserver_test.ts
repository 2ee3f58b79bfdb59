/**
 * The generated PKI run by a real kube-apiserver (1.20.2, built from Debian's source package by
 * `tests/harness/build_k8s.sh`) over a real etcd: every kubeconfig identity authenticates as the
 * user the matrix intends, the random static token logs in as admin, secrets are encrypted at
 * rest with the generated key, and service account tokens are signed with the generated ECDSA key.
 */
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { ensurePki, type EnsurePkiResult } from "../../lib/pki/mod.ts";
import { sh, testConfig } from "./_config.ts";
import { type Daemon, freePort, startDaemon, waitUntil } from "./_proc.ts";

// DTK_TEST_K8S_BIN points at another folder holding kube-apiserver (e.g. a build in progress).
const K8S_BIN = Deno.env.get("DTK_TEST_K8S_BIN") ??
  `${Deno.env.get("DTK_TEST_CACHE") ?? "/var/cache/dtk-test"}/k8s-1.20.2/bin`;

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const tool of ["etcd", "etcdctl", "kubectl", "curl"]) {
    if ((await sh(["sh", "-c", `command -v ${tool}`])).code !== 0) missing.push(tool);
  }
  try {
    if (!Deno.env.get("DTK_TEST_K8S_BIN")) await Deno.stat(`${K8S_BIN}/../.complete`);
    await Deno.stat(`${K8S_BIN}/kube-apiserver`);
  } catch {
    missing.push(`${K8S_BIN}/kube-apiserver (run tests/harness/build_k8s.sh)`);
  }
  return missing;
}
const missing = await missingTools();

const b64url = (data: string | Uint8Array) =>
  btoa(typeof data === "string" ? data : String.fromCharCode(...data))
    .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");

/** A bound service account token (the claims kube-apiserver 1.20 itself issues), ES256-signed. */
function signServiceAccountToken(
  keyPem: string,
  claims: { issuer: string; namespace: string; name: string; uid: string },
): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "ES256", typ: "JWT" }));
  const payload = b64url(JSON.stringify({
    iss: claims.issuer,
    aud: [claims.issuer],
    sub: `system:serviceaccount:${claims.namespace}:${claims.name}`,
    iat: now,
    nbf: now - 60,
    exp: now + 600,
    "kubernetes.io": {
      namespace: claims.namespace,
      serviceaccount: { name: claims.name, uid: claims.uid },
    },
  }));
  const signature = sign("sha256", new TextEncoder().encode(`${header}.${payload}`), {
    key: createPrivateKey(keyPem),
    dsaEncoding: "ieee-p1363",
  });
  return `${header}.${payload}.${b64url(new Uint8Array(signature))}`;
}

async function startEtcd(
  dir: string,
  pki: EnsurePkiResult,
): Promise<{ daemon: Daemon; url: string }> {
  const { layout } = pki;
  const client = freePort();
  const peer = freePort();
  const daemon = await startDaemon([
    "etcd",
    "--name=vm1",
    `--data-dir=${dir}/etcd`,
    `--listen-client-urls=https://127.0.0.1:${client}`,
    `--advertise-client-urls=https://127.0.0.1:${client}`,
    `--listen-peer-urls=https://127.0.0.1:${peer}`,
    `--initial-advertise-peer-urls=https://127.0.0.1:${peer}`,
    `--initial-cluster=vm1=https://127.0.0.1:${peer}`,
    `--cert-file=${layout.cert("kubernetes")}`,
    `--key-file=${layout.key("kubernetes")}`,
    `--peer-cert-file=${layout.cert("kubernetes")}`,
    `--peer-key-file=${layout.key("kubernetes")}`,
    `--trusted-ca-file=${layout.caCert}`,
    `--peer-trusted-ca-file=${layout.caCert}`,
    "--client-cert-auth",
    "--peer-client-cert-auth",
  ], `${dir}/etcd.log`);
  return { daemon, url: `https://127.0.0.1:${client}` };
}

Deno.test({
  name: `a real kube-apiserver runs on the generated PKI${
    missing.length ? ` (skipped: missing ${missing.join(", ")})` : ""
  }`,
  ignore: missing.length > 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-pki-apiserver-" });
    const daemons: Daemon[] = [];
    try {
      const config = testConfig(dir, { nodes: 2, kubeProxy: true, serviceCidr: "10.96.0.0/24" });
      const pki = await ensurePki(config, [{ name: "vm1", ip: "127.0.0.1" }, {
        name: "vm2",
        ip: "192.168.122.11",
      }]);
      const { layout } = pki;
      const etcd = await startEtcd(dir, pki);
      daemons.push(etcd.daemon);
      const port = freePort();
      const lib = layout.pkiDir;
      const apiserver = await startDaemon([
        `${K8S_BIN}/kube-apiserver`,
        "--advertise-address=127.0.0.1",
        "--bind-address=127.0.0.1",
        `--secure-port=${port}`,
        "--insecure-port=0",
        `--cert-dir=${dir}/apiserver-certs`,
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        `--client-ca-file=${layout.caCert}`,
        "--enable-admission-plugins=NamespaceLifecycle,NodeRestriction,LimitRanger,ServiceAccount,DefaultStorageClass,ResourceQuota",
        `--encryption-provider-config=${layout.encryptionConfig}`,
        `--etcd-cafile=${layout.caCert}`,
        `--etcd-certfile=${lib}/kubernetes.pem`,
        `--etcd-keyfile=${lib}/kubernetes-key.pem`,
        `--etcd-servers=${etcd.url}`,
        `--kubelet-certificate-authority=${layout.caCert}`,
        `--kubelet-client-certificate=${lib}/kubernetes.pem`,
        `--kubelet-client-key=${lib}/kubernetes-key.pem`,
        `--proxy-client-cert-file=${lib}/aggregator.pem`,
        `--proxy-client-key-file=${lib}/aggregator-key.pem`,
        "--requestheader-allowed-names=aggregator",
        `--requestheader-client-ca-file=${layout.caCert}`,
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        "--service-account-issuer=https://kubernetes.default.svc",
        `--service-account-key-file=${lib}/service-account-key.pem`,
        `--service-account-signing-key-file=${lib}/service-account-key.pem`,
        `--service-cluster-ip-range=${config.k8s.serviceCidr}`,
        `--tls-cert-file=${lib}/kubernetes.pem`,
        `--tls-private-key-file=${lib}/kubernetes-key.pem`,
        `--token-auth-file=${layout.staticToken}`,
        "--v=1",
      ], `${dir}/apiserver.log`);
      daemons.push(apiserver);
      const server = `https://127.0.0.1:${port}`;
      const curl = (...args: string[]) =>
        sh([
          "curl",
          "-sS",
          "--max-time",
          "5",
          "--cacert",
          layout.caCert,
          "-o",
          "/dev/stdout",
          "-w",
          "\n%{http_code}",
          ...args,
        ]);
      const admin = ["--cert", layout.cert("admin"), "--key", layout.key("admin")];
      await waitUntil("kube-apiserver /livez with the admin cert", async () => {
        const r = await curl(...admin, `${server}/livez`);
        return r.stdout.endsWith("\n200");
      }, { timeoutMs: 90_000, intervalMs: 500, daemon: apiserver }).catch(async (error) => {
        throw new Error(`${error.message}\n${(await apiserver.output()).slice(-3000)}`);
      });
      // RBAC's bootstrap roles appear shortly after /livez; the scheduler's binding is one of them.
      const kubectl = (identity: string, ...args: string[]) =>
        sh(["kubectl", "--kubeconfig", layout.kubeconfig(identity), "--server", server, ...args]);
      await waitUntil("RBAC bootstrap roles", async () => {
        return (await kubectl("kube-scheduler", "auth", "can-i", "create", "bindings")).stdout
          .trim() === "yes";
      }, { timeoutMs: 30_000, intervalMs: 500, daemon: apiserver });

      // Each identity is the user the matrix intends: admin may do anything, the others only theirs.
      const can = async (identity: string, ...args: string[]) =>
        // The Node authorizer appends a reason ("no - No Object name found").
        (await kubectl(identity, "auth", "can-i", ...args)).stdout.trim().split(" ")[0];
      assert.equal(await can("admin", "*", "*"), "yes");
      assert.equal(await can("kube-controller-manager", "*", "*"), "no");
      assert.equal(await can("kube-controller-manager", "create", "serviceaccounts/token"), "yes");
      assert.equal(await can("kube-scheduler", "create", "bindings"), "yes");
      assert.equal(await can("kube-scheduler", "create", "secrets"), "no");
      assert.equal(await can("kube-proxy", "list", "endpoints"), "yes");
      assert.equal(await can("kube-proxy", "list", "secrets"), "no");
      // The Node authorizer recognises system:node:<name> in group system:nodes.
      assert.equal(await can("kubelet-vm1", "get", "nodes/vm1"), "yes");
      assert.equal(await can("kubelet-vm1", "list", "secrets"), "no");

      // The random static token logs in as admin; any other token is refused.
      const bearer = (token: string) =>
        curl("-H", `Authorization: Bearer ${token}`, `${server}/api/v1/namespaces`);
      assert.match((await bearer(pki.adminToken)).stdout, /"kind": "NamespaceList"[\s\S]*\n200$/);
      assert.match((await bearer("18bb628a-9f6c-4cc6-aae3-3bf15a89ff62")).stdout, /\n401$/);
      assert.match((await curl(`${server}/api/v1/namespaces`)).stdout, /\n(401|403)$/);

      // Secrets are stored encrypted with the generated AES-CBC key.
      const created = await kubectl(
        "admin",
        "create",
        "secret",
        "generic",
        "probe",
        "--from-literal=k=dtk-plaintext",
      );
      assert.equal(created.code, 0, created.stderr);
      const raw = await sh([
        "etcdctl",
        `--endpoints=${etcd.url}`,
        `--cacert=${layout.caCert}`,
        `--cert=${layout.cert("kubernetes")}`,
        `--key=${layout.key("kubernetes")}`,
        "get",
        "/registry/secrets/default/probe",
        "--print-value-only",
      ], { env: { ETCDCTL_API: "3" } });
      assert.equal(raw.code, 0, raw.stderr);
      assert.match(raw.stdout, /^k8s:enc:aescbc:v1:key1:/);
      assert.doesNotMatch(raw.stdout, /dtk-plaintext/);
      const readBack = await kubectl("admin", "get", "secret", "probe", "-o", "jsonpath={.data.k}");
      assert.equal(atob(readBack.stdout), "dtk-plaintext");

      // A service account token signed with the generated key authenticates: the apiserver reads
      // the public half from the same (SEC1) file and verifies ES256. The token is signed here
      // because TokenRequest answers with an empty reply on this 1.20.2 build (with RSA keys too).
      assert.equal((await kubectl("admin", "create", "serviceaccount", "probe")).code, 0);
      const uid =
        (await kubectl("admin", "get", "serviceaccount", "probe", "-o", "jsonpath={.metadata.uid}"))
          .stdout;
      assert.match(uid, /^[0-9a-f-]{36}$/);
      const token = signServiceAccountToken(
        await Deno.readTextFile(layout.key("service-account")),
        {
          issuer: "https://kubernetes.default.svc",
          namespace: "default",
          name: "probe",
          uid,
        },
      );
      const probe = await bearer(token);
      assert.match(
        probe.stdout,
        /\n403$/,
        `a valid SA token is authenticated, not authorised: ${probe.stdout}`,
      );
      assert.match(probe.stdout, /system:serviceaccount:default:probe/);
      const otherKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
        type: "sec1",
        format: "pem",
      });
      const forged = signServiceAccountToken(String(otherKey), {
        issuer: "https://kubernetes.default.svc",
        namespace: "default",
        name: "probe",
        uid,
      });
      assert.match(
        (await bearer(forged)).stdout,
        /\n401$/,
        "a token signed by another key is refused",
      );
    } finally {
      for (const d of daemons.reverse()) await d.stop(5000);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
