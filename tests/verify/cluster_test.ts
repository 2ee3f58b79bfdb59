/**
 * `dtk verify` of a cluster on real nodes: two nspawn nodes of the harness (real systemd and
 * sshd, pinned host keys), provisioned the way `cluster create` does it (the same renderers,
 * `binaryCopies` from a real store, the real PKI, real Debian etcd/containerd/runc/CNI binaries
 * and the Kubernetes build when it is cached). Then: clean → 0; a node unreachable → 2; no state
 * → 2; the generated folder copied elsewhere without the store → still 0; one binary, one unit
 * file and one certificate tampered with → exactly those three, exit 1.
 *
 * What this does not run: the `cluster create` pipeline itself (the lead's e2e test does), and
 * started services (verify reads files and runs `--version`; it does not need them running).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../../lib/config/mod.ts";
import type { Config } from "../../lib/config/types.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { writeFileAtomic } from "../../lib/fs/mod.ts";
import { ensurePki, pkiLayout } from "../../lib/pki/mod.ts";
import { KnownHosts } from "../../lib/remote/mod.ts";
import {
  NODE_PATHS,
  type PkiSource,
  renderNodes,
  type RenderOverrides,
  renderStep,
  stepsForNode,
  updateEnvironment,
  updateHosts,
} from "../../lib/render/mod.ts";
import { StateStore } from "../../lib/pipeline/mod.ts";
import { binaryCopies } from "../../lib/cluster/mod.ts";
import { Nodes, pkiSourceFile } from "../../lib/cluster/mod.ts";
import { addFile, type Lockfile, openStore, serializeLock } from "../../store/mod.ts";
import { type ClusterReport, formatClusterReport, type VerifyItem } from "../../lib/verify/mod.ts";
import {
  freePort,
  K8S_COMPONENTS,
  K8S_VERSION,
  makeTestCa,
  nodeSupport,
  prepareArtifacts,
  startNodes,
  testLock,
} from "../harness/mod.ts";
import { dtkVerify } from "./_cli.ts";

const support = nodeSupport();
const runner = new LocalRunner();
const CLUSTER = "verify-test";
const OVERRIDES: RenderOverrides = { cgroupDriver: "cgroupfs", restrictOomScoreAdj: true };

/** Stand-ins for the kube-* binaries when the Kubernetes build is not cached: they say so. */
function standIn(component: string): string {
  return `#!/bin/sh
# dtk verify test STAND-IN for ${component} (the Kubernetes 1.20.2 build is not cached here)
if [ "\${1:-}" = "--version" ]; then echo "Kubernetes ${K8S_VERSION}"; exit 0; fi
echo "${component}: dtk test stand-in" >&2; exit 1
`;
}

async function makeLockAndStore(dir: string, storeDir: string) {
  const set = await prepareArtifacts({ runner });
  const lock: Lockfile = testLock(set, { mirrorUrl: "http://127.0.0.1:9/unused" });
  const store = openStore(storeDir);
  for (const a of set.artifacts) await addFile(store, join(set.dir, a.file), { name: a.file });
  let note = "Kubernetes binaries: the cached 1.20.2 build";
  if (!set.kubernetes) {
    note = "Kubernetes binaries: STAND-IN scripts (no cached 1.20.2 build)";
    const standIns = join(dir, "stand-ins");
    await Deno.mkdir(standIns);
    for (const c of K8S_COMPONENTS) {
      const path = join(standIns, c);
      await Deno.writeTextFile(path, standIn(c), { mode: 0o755 });
      const added = await addFile(store, path, { name: c });
      lock.artifacts[c] = {
        version: K8S_VERSION,
        kind: "binary",
        arch: "amd64",
        urls: ["http://127.0.0.1:9/unused/" + c],
        hash: `sha256:${added.hex}`,
        size: added.size,
        source: "computed",
        file: c,
      };
    }
  }
  return { lock, versions: set.versions, note };
}

function testConfig(dir: string, storeDir: string, versions: Config["versions"]): Config {
  const base = defaultConfig({ dir });
  return {
    ...base,
    cluster: { name: CLUSTER },
    versions,
    store: { path: storeDir, mirrors: [] },
    k8s: { ...base.k8s, containerizedCplane: [], kubeProxy: true },
    vms: ["node1", "node2"].map((name, i) => ({
      name,
      cpu: 1,
      mem: 1024,
      ip: undefined,
      disk: undefined,
      podCidr: `10.200.${i}.0/24`,
    })),
    testNspawn: { renderOverrides: OVERRIDES },
  };
}

function localPki(config: Config, source: PkiSource): string {
  return pkiSourceFile(pkiLayout(config), source);
}

/** Puts on each node what `cluster create` would: rendered files, binaries, PKI, host edits. */
async function provision(config: Config, lock: Lockfile, nodes: Nodes): Promise<void> {
  const list = renderNodes(config, nodes.ips());
  const source = {
    lock,
    storeDir: config.store.path!,
    cacheDir: join(pkiLayout(config).root, "cache", "unpacked"),
    runner,
  };
  await Promise.all(nodes.names.map(async (name) => {
    const remote = nodes.remote(name);
    const input = { config, nodes: list, node: name, overrides: OVERRIDES };
    for (const step of stepsForNode(input)) {
      const files = renderStep(step, input);
      const pki = [];
      for (const p of files.pki) {
        pki.push({
          path: p.path,
          content: await Deno.readTextFile(localPki(config, p.source)),
          mode: p.mode,
        });
      }
      await remote.upload([...files.files, ...pki]);
      for (const b of await binaryCopies(files.binaries, source)) {
        await remote.uploadFile(b.local, b.dest, { mode: b.mode });
      }
    }
    const hosts = (await remote.exec(`cat ${NODE_PATHS.hosts}`)).stdout;
    const env = (await remote.exec(`cat ${NODE_PATHS.environment} 2>/dev/null || true`)).stdout;
    await remote.upload([
      { path: NODE_PATHS.hosts, content: updateHosts(hosts, list), mode: 0o644 },
      { path: NODE_PATHS.environment, content: updateEnvironment(env), mode: 0o644 },
    ]);
  }));
}

function problems(report: ClusterReport): [string, VerifyItem][] {
  return report.nodes.flatMap((n) =>
    n.items.filter((i) => i.status !== "ok").map((i) => [n.node, i] as [string, VerifyItem])
  );
}

Deno.test({
  name: support.ok
    ? "verify: a cluster on real nodes is clean, then each tampered item is reported exactly"
    : `verify: a cluster on real nodes (skipped: ${support.reason})`,
  ignore: !support.ok,
  // The nspawn nodes and ssh masters are stopped explicitly (NodeSet.stop, Nodes.closeAll).
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const started = performance.now();
    const dir = await Deno.makeTempDir({ prefix: "dtk-verify-cluster-" });
    const nodeSet = await startNodes(2);
    let nodes: Nodes | undefined;
    try {
      const storeDir = join(dir, "store");
      const { lock, versions, note } = await makeLockAndStore(dir, storeDir);
      console.error(`[verify test] ${note}`);
      const config = testConfig(dir, storeDir, versions);
      await writeFileAtomic(join(dir, "dtk.lock"), serializeLock(lock));

      // The cluster's generated folder, as create leaves it: PKI, key, pinned host keys, state.
      const layout = pkiLayout(config);
      await ensurePki(config, nodeSet.nodes.map((n) => ({ name: n.name, ip: n.ip })));
      await Deno.mkdir(layout.sshDir, { recursive: true, mode: 0o700 });
      await Deno.copyFile(nodeSet.ssh.identity, layout.sshPrivateKey);
      await Deno.chmod(layout.sshPrivateKey, 0o600);
      // ssh offers the `.pub` beside the identity: it must be the harness key's too.
      await Deno.copyFile(`${nodeSet.ssh.identity}.pub`, layout.sshPublicKey);
      const known = new KnownHosts(join(layout.sshDir, "known_hosts"));
      const state = await StateStore.open(join(layout.root, "state.json"), CLUSTER);
      for (const n of nodeSet.nodes) {
        await known.pin(n.ip, 22, n.hostKey, { node: n.name });
        await state.recordNode(n.name, { ip: n.ip, ssh: { host: n.ip, port: 22 } });
      }
      nodes = new Nodes(config, { layout, state, runner });
      const t0 = performance.now();
      await provision(config, lock, nodes);
      await nodes.closeAll();
      console.error(
        `[verify test] provisioned 2 nodes in ${Math.round(performance.now() - t0)} ms`,
      );

      await t.step("clean cluster: every item ok, exit 0", async () => {
        const t1 = performance.now();
        const r = await dtkVerify(config, ["verify", "--json"]);
        console.error(`[verify test] clean verify took ${Math.round(performance.now() - t1)} ms`);
        assert.equal(r.code, 0, `${r.error?.message}\n${r.stdout}`);
        const report = JSON.parse(r.stdout) as ClusterReport;
        assert.equal(report.outcome, "clean");
        assert.deepEqual(problems(report), []);
        const [n1, n2] = report.nodes;
        const has = (n: typeof n1, kind: string, item: string) =>
          n?.items.some((i) => i.kind === kind && i.item === item && i.status === "ok");
        // The controller holds the control plane; the worker does not.
        assert.ok(has(n1, "binary", "/usr/local/bin/etcd"));
        assert.ok(has(n1, "binary", "/usr/local/bin/kube-apiserver"));
        assert.ok(!n2?.items.some((i) => i.item === "/usr/local/bin/etcd"));
        for (const n of [n1, n2]) {
          assert.ok(has(n, "binary", "/bin/containerd"));
          assert.ok(has(n, "binary", "/opt/cni/bin/bridge"));
          assert.ok(has(n, "file", "/etc/systemd/system/kubelet.service"));
          assert.ok(has(n, "file", NODE_PATHS.containerdConfig));
          assert.ok(has(n, "cert", NODE_PATHS.kubeletCert));
          assert.ok(has(n, "secret", NODE_PATHS.kubeletKey));
          assert.ok(has(n, "edited", NODE_PATHS.hosts));
          // Real --version output of Debian's binaries, matched against the lock.
          const containerd = n?.items.find((i) =>
            i.kind === "version" && i.item === "/bin/containerd"
          );
          assert.equal(containerd?.expected, versions.containerd);
          assert.match(
            containerd?.actual ?? "",
            new RegExp(`^${versions.containerd.replaceAll(".", "\\.")}`),
          );
          assert.ok(has(n, "version", "/usr/local/bin/runc"));
          assert.ok(has(n, "version", "/usr/local/bin/kubelet"));
        }
        assert.ok(has(n1, "version", "/usr/local/bin/etcd"));
        assert.ok(has(n1, "version", "/usr/local/bin/kube-apiserver"));
        // The text form of the same report (the CLI prints it when --json is not given).
        const text = formatClusterReport(report);
        assert.match(text, /^Node node1 \(10\.[0-9.]+:22\)$/m);
        assert.match(text, /^ITEM\s+STATUS\s+EXPECTED\s+ACTUAL$/m);
        assert.match(
          text,
          /^binary \/usr\/local\/bin\/kubelet\s+ok\s+[0-9a-f]{12}…\s+[0-9a-f]{12}…$/m,
        );
        assert.match(
          text,
          /Cluster verify-test matches the lock and the config: \d+ ok, 0 drifted, 0 missing, 0 unchecked/,
        );
      });

      await t.step("an unreachable node, or no state: exit 2", async () => {
        const statePath = join(layout.root, "state.json");
        const saved = await Deno.readTextFile(statePath);
        try {
          const data = JSON.parse(saved);
          data.nodes.node2.ssh.port = freePort();
          await writeFileAtomic(statePath, JSON.stringify(data, null, 2) + "\n");
          const r = await dtkVerify(config, ["verify"]);
          assert.equal(r.code, 2, r.error?.message);
          assert.match(
            r.stdout,
            /^Node node2 .*\n {2}could not check: Cannot reach ssh of node "node2"/m,
          );
          assert.match(r.error?.message ?? "", /^Could not check "node2" of cluster "verify-test"/);
        } finally {
          await writeFileAtomic(statePath, saved);
        }
        const other = { ...config, cluster: { name: "never-created" } };
        const none = await dtkVerify(other, ["verify"]);
        assert.equal(none.code, 2);
        assert.match(none.error?.message ?? "", /has no state file/);
      });

      await t.step(
        "the generated folder, lock and config elsewhere, without the store: exit 0",
        async () => {
          const elsewhere = join(dir, "elsewhere");
          await Deno.mkdir(join(elsewhere, "generated"), { recursive: true });
          await runner.run(["cp", "-a", layout.root, join(elsewhere, "generated", CLUSTER)]);
          await Deno.copyFile(join(dir, "dtk.lock"), join(elsewhere, "dtk.lock"));
          const moved = testConfig(elsewhere, join(elsewhere, "no-store"), versions);
          const r = await dtkVerify(moved, ["verify", "--json"]);
          assert.equal(r.code, 0, `${r.error?.message}\n${r.stdout}`);
          assert.equal(JSON.parse(r.stdout).outcome, "clean");
        },
      );

      await t.step(
        "one binary, one unit file and one certificate tampered: exactly those, exit 1",
        async () => {
          const n1 = nodeSet.at(0);
          const n2 = nodeSet.at(1);
          await n2.run(`printf '\\n# tampered\\n' >> /usr/local/bin/kubelet`);
          const kubeletSha =
            (await n2.run("sha256sum /usr/local/bin/kubelet")).stdout.split(" ")[0];
          await n1.run(`sed -i 's/--v=2/--v=9/' /etc/systemd/system/kubelet.service`);
          const foreign = await makeTestCa(join(dir, "foreign"), { cn: "not-the-cluster-ca" });
          const leaf = await foreign.issue("kubelet-node1", {
            cn: "system:node:node1",
            o: "system:nodes",
            ips: [n1.ip],
          });
          await n1.copyTo([leaf.cert], NODE_PATHS.kubeletCert);
          await n1.run(`chmod 644 ${NODE_PATHS.kubeletCert}`);

          const r = await dtkVerify(config, ["verify", "--json"]);
          assert.equal(r.code, 1, r.error?.message);
          const report = JSON.parse(r.stdout) as ClusterReport;
          assert.equal(report.outcome, "drifted");
          assert.deepEqual(report.counts.drifted, 3);
          assert.deepEqual(report.counts.missing + report.counts.unchecked, 0);
          const found = problems(report);
          assert.deepEqual(
            found.map(([node, i]) => [node, i.kind, i.item, i.status]).sort(),
            [
              ["node1", "cert", NODE_PATHS.kubeletCert, "drifted"],
              ["node1", "file", "/etc/systemd/system/kubelet.service", "drifted"],
              ["node2", "binary", "/usr/local/bin/kubelet", "drifted"],
            ],
          );
          const binary = found.find(([, i]) => i.kind === "binary")![1];
          assert.equal(binary.expected, lock.artifacts.kubelet!.hash.replace("sha256:", ""));
          assert.equal(binary.actual, kubeletSha);
          const unit = found.find(([, i]) => i.kind === "file")![1];
          assert.match(unit.diff ?? "", /^- {2}--v=2$/m);
          assert.match(unit.diff ?? "", /^\+ {2}--v=9$/m);
          const cert = found.find(([, i]) => i.kind === "cert")![1];
          assert.match(cert.detail ?? "", /differs from dtk's copy/);
          assert.match(
            cert.detail ?? "",
            /not signed by the cluster CA \(issuer CN=not-the-cluster-ca\)/,
          );

          const text = await dtkVerify(config, ["verify"]);
          assert.equal(text.code, 1);
          assert.match(
            text.error?.message ?? "",
            /^Cluster "verify-test" differs from the lock and the config: 3 drifted, 0 missing$/,
          );
          assert.match(
            text.stdout,
            /^ {2}drifted: binary \/usr\/local\/bin\/kubelet: content differs from artifact "kubelet" of the lock$/m,
          );
          assert.match(text.stdout, /^ {4}\+ {2}--v=9$/m);
          const notOk = text.stdout.split("\n").filter((l) => !/\s+ok\s+/.test(l));
          console.error(`[verify test] tampered cluster, rows not ok:\n${notOk.join("\n")}`);
        },
      );
    } finally {
      await nodes?.closeAll();
      await nodeSet.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      console.error(`[verify test] took ${Math.round(performance.now() - started)} ms`);
    }
  },
});
