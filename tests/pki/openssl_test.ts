/**
 * The certificate matrix read back by the real `openssl`: chain, strictness, purposes, subjects,
 * SANs and (extended) key usages.
 */
import assert from "node:assert/strict";
import { ensurePki } from "../../lib/pki/mod.ts";
import { sh, testConfig, testNodes } from "./_config.ts";

const hasOpenssl =
  (await sh(["sh", "-c", "command -v openssl"]).catch(() => ({ code: 1 }))).code === 0;

async function text(path: string): Promise<string> {
  const r = await sh(["openssl", "x509", "-in", path, "-noout", "-text", "-nameopt", "RFC2253"]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The line after an extension's title in `openssl x509 -text`. */
function extension(dump: string, title: string): string | undefined {
  const lines = dump.split("\n");
  const at = lines.findIndex((l) => l.trim().startsWith(title));
  return at < 0 ? undefined : `${lines[at]!.trim()} | ${lines[at + 1]!.trim()}`;
}

Deno.test({
  name: `openssl verifies the whole matrix${hasOpenssl ? "" : " (skipped: openssl not installed)"}`,
  ignore: !hasOpenssl,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-pki-openssl-" });
    try {
      const config = testConfig(dir, { nodes: 2, kubeProxy: true, clusterDomain: "corp.example" });
      const nodes = [{ name: "vm1", ip: "192.168.122.10" }, { name: "vm2", ip: "192.168.122.11" }];
      const { layout } = await ensurePki(config, nodes);

      const ca = await text(layout.caCert);
      assert.match(ca, /Issuer: CN=dev-ca,O=dtk/);
      assert.match(ca, /Subject: CN=dev-ca,O=dtk/);
      assert.match(ca, /ASN1 OID: prime256v1/);
      assert.equal(
        extension(ca, "X509v3 Basic Constraints"),
        "X509v3 Basic Constraints: critical | CA:TRUE",
      );
      assert.equal(
        extension(ca, "X509v3 Key Usage"),
        "X509v3 Key Usage: critical | Digital Signature, Certificate Sign, CRL Sign",
      );
      assert.ok(extension(ca, "X509v3 Subject Key Identifier"));

      const expected: Record<
        string,
        { subject: string; eku?: string; san?: string; purposes: string[] }
      > = {
        admin: {
          subject: "CN=admin,O=system:masters",
          eku: "TLS Web Client Authentication",
          purposes: ["sslclient"],
        },
        kubernetes: {
          subject: "CN=kubernetes",
          eku: "TLS Web Server Authentication, TLS Web Client Authentication",
          san: "DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, " +
            "DNS:kubernetes.default.svc.corp.example, DNS:vm1, IP Address:192.168.122.10, " +
            "IP Address:127.0.0.1, IP Address:10.32.0.1",
          purposes: ["sslserver", "sslclient"],
        },
        "service-account": { subject: "CN=service-account", purposes: [] },
        aggregator: {
          subject: "CN=aggregator,OU=system,O=k8s",
          eku: "TLS Web Client Authentication",
          purposes: ["sslclient"],
        },
        "kube-controller-manager": {
          subject: "CN=system:kube-controller-manager",
          eku: "TLS Web Client Authentication",
          purposes: ["sslclient"],
        },
        "kube-scheduler": {
          subject: "CN=system:kube-scheduler",
          eku: "TLS Web Client Authentication",
          purposes: ["sslclient"],
        },
        "kube-proxy": {
          subject: "CN=system:kube-proxy,O=system:node-proxier",
          eku: "TLS Web Client Authentication",
          purposes: ["sslclient"],
        },
        "kubelet-vm1": {
          subject: "CN=system:node:vm1,O=system:nodes",
          eku: "TLS Web Server Authentication, TLS Web Client Authentication",
          san: "DNS:vm1, IP Address:192.168.122.10",
          purposes: ["sslserver", "sslclient"],
        },
        "kubelet-vm2": {
          subject: "CN=system:node:vm2,O=system:nodes",
          eku: "TLS Web Server Authentication, TLS Web Client Authentication",
          san: "DNS:vm2, IP Address:192.168.122.11",
          purposes: ["sslserver", "sslclient"],
        },
      };
      for (const [identity, want] of Object.entries(expected)) {
        const path = layout.cert(identity);
        const verify = await sh([
          "openssl",
          "verify",
          "-x509_strict",
          "-CAfile",
          layout.caCert,
          path,
        ]);
        assert.equal(verify.code, 0, `${identity}: ${verify.stdout}${verify.stderr}`);
        for (const purpose of want.purposes) {
          const r = await sh([
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            layout.caCert,
            path,
          ]);
          assert.equal(r.code, 0, `${identity} ${purpose}: ${r.stdout}${r.stderr}`);
        }
        // A client-only certificate must not pass as a server (and the reverse).
        for (
          const purpose of ["sslserver", "sslclient"].filter((p) =>
            !want.purposes.includes(p) && want.eku
          )
        ) {
          const r = await sh([
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            layout.caCert,
            path,
          ]);
          assert.notEqual(r.code, 0, `${identity} must fail ${purpose}`);
        }
        const dump = await text(path);
        assert.match(
          dump,
          new RegExp(`Subject: ${want.subject.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\n`),
          identity,
        );
        assert.match(dump, /Signature Algorithm: ecdsa-with-SHA256/);
        assert.equal(
          extension(dump, "X509v3 Basic Constraints"),
          "X509v3 Basic Constraints: critical | CA:FALSE",
          identity,
        );
        assert.equal(
          extension(dump, "X509v3 Key Usage"),
          "X509v3 Key Usage: critical | Digital Signature",
          identity,
        );
        assert.ok(extension(dump, "X509v3 Authority Key Identifier"), identity);
        assert.equal(
          extension(dump, "X509v3 Extended Key Usage")?.split(" | ")[1],
          want.eku,
          identity,
        );
        assert.equal(
          extension(dump, "X509v3 Subject Alternative Name")?.split(" | ")[1],
          want.san,
          identity,
        );
        // The key is PKCS#8 (SEC1 for the service account key) and belongs to the certificate.
        const keyPem = await Deno.readTextFile(layout.key(identity));
        if (identity === "service-account") {
          assert.match(keyPem, /^-----BEGIN EC PRIVATE KEY-----\n/);
        } else assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
        const fromKey = await sh(["openssl", "pkey", "-in", layout.key(identity), "-pubout"]);
        const fromCert = await sh(["openssl", "x509", "-in", path, "-noout", "-pubkey"]);
        assert.equal(fromKey.stdout, fromCert.stdout, identity);
      }
      // A certificate of another cluster's CA does not verify against this one.
      const other = testConfig(`${dir}/other`, { nodes: 1 });
      const foreign = await ensurePki(other, testNodes(other));
      const cross = await sh([
        "openssl",
        "verify",
        "-CAfile",
        layout.caCert,
        foreign.layout.cert("admin"),
      ]);
      assert.notEqual(cross.code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
