import assert from "node:assert/strict";
import { checkPki, ensurePki, listCerts, parseKubeconfig, readAdminToken } from "./mod.ts";
import { snapshot, testConfig, testNodes } from "../../tests/pki/_config.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-pki-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function changed(before: Map<string, Uint8Array>, after: Map<string, Uint8Array>): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  const equal = (a?: Uint8Array, b?: Uint8Array) =>
    a !== undefined && b !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);
  return [...names].filter((n) => !equal(before.get(n), after.get(n))).sort();
}

Deno.test("ensurePki makes the full set of files with the right modes", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 2 });
    const result = await ensurePki(config, testNodes(config));
    const files = await snapshot(result.layout.root);
    assert.deepEqual(
      [...files.keys()].sort(),
      [
        "kubeconfig/admin.kubeconfig",
        "kubeconfig/kube-controller-manager.kubeconfig",
        "kubeconfig/kube-proxy.kubeconfig",
        "kubeconfig/kube-scheduler.kubeconfig",
        "kubeconfig/kubelet-vm1.kubeconfig",
        "kubeconfig/kubelet-vm2.kubeconfig",
        ...[
          "admin",
          "aggregator",
          "ca",
          "kube-controller-manager",
          "kube-proxy",
          "kube-scheduler",
          "kubelet-vm1",
          "kubelet-vm2",
          "kubernetes",
          "service-account",
        ].flatMap((id) => [`pki/${id}-key.pem`, `pki/${id}.pem`]),
        "secrets/encryption-config.yaml",
        "secrets/static-token.csv",
        "ssh/id_ed25519",
        "ssh/id_ed25519.pub",
      ].sort(),
    );
    for (const name of files.keys()) {
      const mode = (await Deno.stat(`${result.layout.root}/${name}`)).mode! & 0o777;
      const secret = /-key\.pem$|\.kubeconfig$|^secrets\/|id_ed25519$/.test(name);
      assert.equal(mode, secret ? 0o600 : 0o644, name);
    }
    assert.ok(result.files.every((f) => f.action === "created"));
    assert.match(result.adminToken, /^[0-9a-f]{64}$/);
    assert.equal(await readAdminToken(config), result.adminToken);
    assert.equal(result.server, "https://127.0.0.1:6443");
  });
});

Deno.test("a second run over an unchanged config leaves every file byte-identical", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 3 });
    const first = await ensurePki(config, testNodes(config));
    const before = await snapshot(first.layout.root);
    const second = await ensurePki(config, testNodes(config));
    assert.deepEqual(changed(before, await snapshot(first.layout.root)), []);
    assert.ok(second.files.every((f) => f.action === "kept"), JSON.stringify(second.files));
    assert.equal(second.adminToken, first.adminToken);
  });
});

Deno.test("a worker's new IP replaces only its kubelet files", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 3 });
    const nodes = testNodes(config);
    const { layout } = await ensurePki(config, nodes);
    const before = await snapshot(layout.root);
    const moved = nodes.map((n) => n.name === "vm2" ? { ...n, ip: "192.168.122.99" } : n);
    const result = await ensurePki(config, moved);
    assert.deepEqual(changed(before, await snapshot(layout.root)), [
      "kubeconfig/kubelet-vm2.kubeconfig",
      "pki/kubelet-vm2-key.pem",
      "pki/kubelet-vm2.pem",
    ]);
    const replaced = result.files.find((f) => f.file === "pki/kubelet-vm2.pem");
    assert.equal(replaced?.action, "replaced");
    assert.match(
      replaced?.reason ?? "",
      /IP addresses are "192.168.122.11", needs "192.168.122.99"/,
    );
  });
});

Deno.test("a moved controller replaces its kubelet and kubernetes certs and every kubeconfig", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 2, kubeProxy: false });
    const nodes = testNodes(config);
    const { layout } = await ensurePki(config, nodes);
    const before = await snapshot(layout.root);
    await ensurePki(config, [{ name: "vm1", ip: "10.9.9.9" }, nodes[1]!]);
    assert.deepEqual(changed(before, await snapshot(layout.root)), [
      "kubeconfig/admin.kubeconfig",
      "kubeconfig/kube-controller-manager.kubeconfig",
      "kubeconfig/kube-scheduler.kubeconfig",
      "kubeconfig/kubelet-vm1.kubeconfig",
      "kubeconfig/kubelet-vm2.kubeconfig",
      "pki/kubelet-vm1-key.pem",
      "pki/kubelet-vm1.pem",
      "pki/kubernetes-key.pem",
      "pki/kubernetes.pem",
    ]);
    const admin = parseKubeconfig(await Deno.readTextFile(layout.kubeconfig("admin")));
    assert.equal(admin.server, "https://10.9.9.9:6443");
  });
});

Deno.test("a changed service CIDR replaces only the kubernetes cert", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 1 });
    const { layout } = await ensurePki(config, testNodes(config));
    const before = await snapshot(layout.root);
    await ensurePki(
      { ...config, k8s: { ...config.k8s, serviceCidr: "10.96.0.0/12" } },
      testNodes(config),
    );
    assert.deepEqual(changed(before, await snapshot(layout.root)), [
      "pki/kubernetes-key.pem",
      "pki/kubernetes.pem",
    ]);
    const { certs } = await listCerts(config);
    const kubernetes = certs.find((c) => c.file === "pki/kubernetes.pem");
    assert.ok(kubernetes?.ipAddresses.includes("10.96.0.1"));
    assert.ok(!kubernetes?.ipAddresses.includes("10.32.0.1"));
  });
});

Deno.test("dropping kube-proxy or a node removes its files; check then passes", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 3, kubeProxy: true });
    const { layout } = await ensurePki(config, testNodes(config));
    const smaller = { ...testConfig(dir, { nodes: 2, kubeProxy: false }) };
    const result = await ensurePki(smaller, testNodes(smaller));
    const removed = result.files.filter((f) => f.action === "removed").map((f) => f.file).sort();
    assert.deepEqual(removed, [
      "kubeconfig/kube-proxy.kubeconfig",
      "kubeconfig/kubelet-vm3.kubeconfig",
      "pki/kube-proxy-key.pem",
      "pki/kube-proxy.pem",
      "pki/kubelet-vm3-key.pem",
      "pki/kubelet-vm3.pem",
    ]);
    const files = await snapshot(layout.root);
    assert.ok(![...files.keys()].some((f) => f.includes("vm3") || f.includes("kube-proxy")));
    assert.deepEqual((await checkPki(smaller)).problems, []);
  });
});

Deno.test("a corrupt, foreign or expiring certificate is replaced; the CA is kept", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 1 });
    const now = new Date("2030-01-01T00:00:00Z");
    const { layout } = await ensurePki(config, testNodes(config), { now, leafValidityDays: 100 });
    const caBefore = await Deno.readFile(layout.caCert);
    await Deno.writeTextFile(layout.cert("admin"), "not a certificate");
    // A cert of another cluster's CA, with its own matching key.
    const other = testConfig(`${dir}/other`, { nodes: 1 });
    const foreign = await ensurePki(other, testNodes(other), { now });
    await Deno.copyFile(foreign.layout.cert("kube-scheduler"), layout.cert("kube-scheduler"));
    await Deno.copyFile(foreign.layout.key("kube-scheduler"), layout.key("kube-scheduler"));
    const later = new Date(now.getTime() + 80 * 24 * 3600 * 1000);
    const result = await ensurePki(config, testNodes(config), {
      now: later,
      leafValidityDays: 100,
    });
    const byFile = new Map(result.files.map((f) => [f.file, f]));
    assert.match(byFile.get("pki/admin.pem")?.reason ?? "", /unreadable certificate/);
    assert.equal(byFile.get("pki/kube-scheduler.pem")?.reason, "not signed by the cluster CA");
    // 100-day certs with 20 days left fall inside the renewal window (a third of the validity).
    assert.match(byFile.get("pki/kubernetes.pem")?.reason ?? "", /^expires in 20 days/);
    assert.equal(byFile.get("pki/ca.pem")?.action, "kept");
    assert.deepEqual(await Deno.readFile(layout.caCert), caBefore);
    assert.deepEqual((await checkPki(config, { now: later })).problems, []);
  });
});

Deno.test("a lost CA key replaces the CA and therefore every certificate", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 1 });
    const { layout } = await ensurePki(config, testNodes(config));
    await Deno.remove(layout.caKey);
    const result = await ensurePki(config, testNodes(config));
    const replaced = result.files.filter((f) => f.action === "replaced").map((f) => f.file);
    assert.ok(replaced.includes("pki/ca.pem"));
    for (const id of ["admin", "kubernetes", "kubelet-vm1", "service-account"]) {
      assert.ok(replaced.includes(`pki/${id}.pem`), id);
    }
    // Secrets and the SSH key do not depend on the CA.
    for (
      const f of ["secrets/static-token.csv", "secrets/encryption-config.yaml", "ssh/id_ed25519"]
    ) {
      assert.equal(result.files.find((x) => x.file === f)?.action, "kept", f);
    }
  });
});

Deno.test("checkPki reports problems and never writes", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 2 });
    const { layout } = await ensurePki(config, testNodes(config));
    await Deno.chmod(layout.key("admin"), 0o644);
    await Deno.remove(layout.kubeconfig("kube-scheduler"));
    await Deno.writeTextFile(
      layout.staticToken,
      '18bb628a-9f6c-4cc6-aae3-3bf15a89ff62,admin,1000,"system:masters"\n',
    );
    await Deno.copyFile(layout.key("kube-proxy"), layout.key("aggregator"));
    const before = await snapshot(layout.root);
    const result = await checkPki(config, {
      nodes: [{ name: "vm1", ip: "127.0.0.1" }, { name: "vm2", ip: "192.168.122.50" }],
    });
    assert.deepEqual(changed(before, await snapshot(layout.root)), []);
    assert.deepEqual(
      result.problems.map((p) => `${p.file}: ${p.problem}`).sort(),
      [
        "kubeconfig/kube-scheduler.kubeconfig: missing",
        "pki/admin-key.pem: mode is 644, must be 600",
        "pki/aggregator.pem: key does not match the certificate",
        'pki/kubelet-vm2.pem: IP addresses are "192.168.122.11", needs "192.168.122.50"',
        "secrets/static-token.csv: not a static token file with a random admin token",
      ].sort(),
    );
    // Inferred addresses: consistent files pass apart from the damage above.
    const inferred = await checkPki(config);
    assert.ok(inferred.nodesInferred);
    assert.deepEqual(inferred.nodes, testNodes(config));
    assert.equal(inferred.problems.length, 4);
  });
});

Deno.test("two clusters get different CAs, tokens, encryption keys and SSH keys", async () => {
  await withDir(async (dir) => {
    const a = testConfig(dir, { name: "a", nodes: 1 });
    const b = testConfig(dir, { name: "b", nodes: 1 });
    const ra = await ensurePki(a, testNodes(a));
    const rb = await ensurePki(b, testNodes(b));
    for (const path of ["pki/ca.pem", "secrets/encryption-config.yaml", "ssh/id_ed25519.pub"]) {
      assert.notEqual(
        await Deno.readTextFile(`${ra.layout.root}/${path}`),
        await Deno.readTextFile(`${rb.layout.root}/${path}`),
        path,
      );
    }
    assert.notEqual(ra.adminToken, rb.adminToken);
    const ka = parseKubeconfig(await Deno.readTextFile(ra.layout.kubeconfig("admin")));
    assert.equal(ka.clusterName, "a");
    assert.equal(ka.userName, "admin@a");
  });
});

Deno.test("ensurePki refuses node lists that do not match the config", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 2 });
    await assert.rejects(
      ensurePki(config, [{ name: "vm1", ip: "10.0.0.1" }]),
      /No address given for node "vm2"/,
    );
    await assert.rejects(
      ensurePki(config, [{ name: "vm2", ip: "10.0.0.2" }, { name: "vm1", ip: "10.0.0.1" }]),
      /first node must be the controller "vm1"/,
    );
    await assert.rejects(
      ensurePki(config, [{ name: "vm1", ip: "10.0.0.1" }, { name: "vm2", ip: "10.0.0.300" }]),
      /Address "10.0.0.300" of node "vm2" is not an IP address/,
    );
  });
});

Deno.test("IPv6 node addresses are canonical in certs and bracketed in the server URL", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 1, serviceCidr: "fd00:10:96::/108" });
    const result = await ensurePki(config, [{ name: "vm1", ip: "FD00:0:0:0:0:0:0:10" }]);
    assert.equal(result.server, "https://[fd00::10]:6443");
    const { certs } = await listCerts(config);
    const kubernetes = certs.find((c) => c.file === "pki/kubernetes.pem");
    assert.deepEqual(kubernetes?.ipAddresses, ["fd00::10", "127.0.0.1", "fd00:10:96::1"]);
    const again = await ensurePki(config, [{ name: "vm1", ip: "fd00::10" }]);
    assert.ok(again.files.every((f) => f.action === "kept"));
  });
});

Deno.test("the service account key is SEC1; a PKCS#8 one from before is replaced", async () => {
  await withDir(async (dir) => {
    const config = testConfig(dir, { nodes: 1 });
    const { layout } = await ensurePki(config, testNodes(config));
    const sec1 = await Deno.readTextFile(layout.key("service-account"));
    assert.match(sec1, /^-----BEGIN EC PRIVATE KEY-----\n/);
    assert.match(await Deno.readTextFile(layout.key("admin")), /^-----BEGIN PRIVATE KEY-----\n/);
    const { createPrivateKey } = await import("node:crypto");
    const pkcs8 = createPrivateKey(sec1).export({ type: "pkcs8", format: "pem" });
    await Deno.writeTextFile(layout.key("service-account"), String(pkcs8));
    const result = await ensurePki(config, testNodes(config));
    const entry = result.files.find((f) => f.file === "pki/service-account.pem");
    assert.equal(entry?.reason, "key is PKCS#8, needs SEC1");
    assert.match(
      await Deno.readTextFile(layout.key("service-account")),
      /^-----BEGIN EC PRIVATE KEY-----\n/,
    );
  });
});
