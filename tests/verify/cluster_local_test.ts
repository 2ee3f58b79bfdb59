/**
 * `verifyCluster` without root or nodes: the node is a folder, reached through a `Remote` that
 * runs verify's real probe script with `sh` on this machine, every path moved under the folder.
 * Covers what the real-node test does not: missing files, mode drift, a binary that reports
 * another version, a missing local copy (unchecked), and certificate expiry.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { defaultConfig } from "../../lib/config/mod.ts";
import type { Config } from "../../lib/config/types.ts";
import { LocalRunner, type RunResult } from "../../lib/exec/mod.ts";
import { ensurePki, pkiLayout } from "../../lib/pki/mod.ts";
import type { ExecOptions, Remote } from "../../lib/remote/mod.ts";
import {
  NODE_PATHS,
  type PkiSource,
  renderNodes,
  renderStep,
  stepsForNode,
  updateEnvironment,
  updateHosts,
} from "../../lib/render/mod.ts";
import { StateStore } from "../../lib/pipeline/mod.ts";
import { binaryCopies } from "../../lib/cluster/mod.ts";
import { type ClusterReport, verifyCluster, type VerifyItem } from "../../lib/verify/mod.ts";
import { addFile, type Lockfile, openStore } from "../../store/mod.ts";

const runner = new LocalRunner();
const VERSIONS = {
  kubernetes: "v1.33.1",
  etcd: "v3.5.21",
  containerd: "2.1.1",
  runc: "v1.3.0",
  crictl: "v1.33.0",
  cniPlugins: "v1.7.1",
  guestAdditions: "",
};

/** A node that is a folder: commands run here, with node paths moved under `root`. */
class FolderRemote implements Remote {
  readonly node = "vm1";
  readonly address = "folder";
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  async exec(command: string | readonly string[], options: ExecOptions = {}): Promise<RunResult> {
    const stdin = String(options.stdin ?? "").replace(/^(\w) \//gm, `$1 ${this.root}/`);
    const r = await runner.run(["sh", "-c", String(command)], {
      stdin,
      timeoutMs: options.timeoutMs,
    });
    return { ...r, stdout: r.stdout.replaceAll(`\t${this.root}/`, "\t/") };
  }
  upload(): Promise<void> {
    throw new Error("not used");
  }
  uploadFile(): Promise<void> {
    throw new Error("not used");
  }
  pipe(): Promise<void> {
    throw new Error("not used");
  }
  sha256(): Promise<Map<string, string | undefined>> {
    throw new Error("not used");
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function script(line: string): string {
  return `#!/bin/sh\necho "${line}"\n`;
}

async function tarball(dir: string, name: string, files: Record<string, string>): Promise<string> {
  const stage = join(dir, `stage-${name}`);
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(dirname(join(stage, path)), { recursive: true });
    await Deno.writeTextFile(join(stage, path), content, { mode: 0o755 });
  }
  const out = join(dir, name);
  await runner.run(["tar", "-czf", out, "-C", stage, ...Object.keys(files)]);
  return out;
}

async function fixture(dir: string) {
  const config: Config = {
    ...defaultConfig({ dir }),
    cluster: { name: "local" },
    versions: VERSIONS,
    vms: [{
      name: "vm1",
      cpu: 1,
      mem: 1024,
      ip: undefined,
      disk: undefined,
      podCidr: "10.200.0.0/24",
    }],
  };
  config.k8s = { ...config.k8s, containerizedCplane: [], kubeProxy: true };
  const art = join(dir, "artifacts");
  await Deno.mkdir(art);
  const plain = async (name: string, content: string) => {
    await Deno.writeTextFile(join(art, name), content, { mode: 0o755 });
    return join(art, name);
  };
  const k8s = (c: string) => plain(c, script(`Kubernetes ${VERSIONS.kubernetes}`));
  const files: Record<string, string> = {
    etcd: await tarball(art, "etcd.tar.gz", {
      "etcd-v3.5.21-linux-amd64/etcd": script("etcd Version: 3.5.21"),
      "etcd-v3.5.21-linux-amd64/etcdctl": script("etcdctl version: 3.5.21"),
    }),
    containerd: await tarball(art, "containerd.tar.gz", {
      "bin/containerd": script("containerd github.com/containerd/containerd/v2 v2.1.1 abc"),
      "bin/ctr": script("ctr github.com/containerd/containerd/v2 v2.1.1"),
    }),
    runc: await plain("runc.amd64", script("runc version 1.3.0")),
    crictl: await tarball(art, "crictl.tar.gz", { crictl: script("crictl version v1.33.0") }),
    "cni-plugins": await tarball(art, "cni.tgz", {
      "./bridge": script("CNI bridge plugin v1.7.1"),
      "./loopback": script("CNI loopback plugin v1.7.1"),
    }),
    kubelet: await k8s("kubelet"),
    "kube-proxy": await k8s("kube-proxy"),
    "kube-apiserver": await k8s("kube-apiserver"),
    "kube-controller-manager": await k8s("kube-controller-manager"),
    "kube-scheduler": await k8s("kube-scheduler"),
  };
  const storeDir = join(dir, "store");
  const store = openStore(storeDir);
  const lock: Lockfile = { version: 1, artifacts: {} };
  for (const [name, path] of Object.entries(files)) {
    const added = await addFile(store, path, { name });
    const version = name === "cni-plugins"
      ? VERSIONS.cniPlugins
      : name.startsWith("kube")
      ? VERSIONS.kubernetes
      : VERSIONS[name as "etcd"];
    lock.artifacts[name] = {
      version,
      kind: path.includes(".t") ? "tarball" : "binary",
      arch: "amd64",
      urls: [`https://example.invalid/${name}`],
      hash: `sha256:${added.hex}`,
      size: added.size,
      source: "computed",
    };
  }
  await ensurePki(config, [{ name: "vm1", ip: "10.0.0.2" }]);
  const layout = pkiLayout(config);
  const state = await StateStore.open(join(layout.root, "state.json"), "local");
  await state.recordNode("vm1", { ip: "10.0.0.2", ssh: { host: "10.0.0.2", port: 22 } });

  // Install into the node folder exactly what the renderers and binaryCopies say.
  const root = join(dir, "node");
  const put = async (path: string, content: string | Uint8Array, mode: number) => {
    await Deno.mkdir(dirname(join(root, path)), { recursive: true });
    await Deno.writeFile(
      join(root, path),
      typeof content === "string" ? new TextEncoder().encode(content) : content,
    );
    await Deno.chmod(join(root, path), mode);
  };
  const local = (s: PkiSource) =>
    s.kind === "ca-cert"
      ? layout.caCert
      : s.kind === "ca-key"
      ? layout.caKey
      : s.kind === "cert"
      ? layout.cert(s.identity)
      : s.kind === "key"
      ? layout.key(s.identity)
      : s.kind === "kubeconfig"
      ? layout.kubeconfig(s.identity)
      : s.kind === "encryption-config"
      ? layout.encryptionConfig
      : layout.staticToken;
  const nodes = renderNodes(config, { vm1: "10.0.0.2" });
  const input = { config, nodes, node: "vm1" };
  const source = { lock, storeDir, cacheDir: join(layout.root, "cache", "unpacked"), runner };
  for (const step of stepsForNode(input)) {
    const s = renderStep(step, input);
    for (const f of s.files) await put(f.path, f.content, f.mode);
    for (const p of s.pki) await put(p.path, await Deno.readFile(local(p.source)), p.mode);
    for (const b of await binaryCopies(s.binaries, source)) {
      await put(b.dest, await Deno.readFile(b.local), b.mode);
    }
  }
  await put(NODE_PATHS.hosts, updateHosts("127.0.0.1 localhost\n", nodes), 0o644);
  await put(NODE_PATHS.environment, updateEnvironment(""), 0o644);
  return { config, lock, storeDir, root, layout };
}

function notOk(report: ClusterReport): VerifyItem[] {
  return report.nodes.flatMap((n) => n.items.filter((i) => i.status !== "ok"));
}

Deno.test("verifyCluster on a folder node: clean, then missing, mode, version, unchecked and expiry", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-verify-local-" });
  try {
    const { config, lock, storeDir, root, layout } = await fixture(dir);
    const remote = new FolderRemote(root);
    const verify = (extra: Partial<Parameters<typeof verifyCluster>[1]> = {}) =>
      verifyCluster(config, { lock, runner, storeDir, remote: () => remote, ...extra });

    const clean = await verify();
    assert.deepEqual(notOk(clean), []);
    assert.equal(clean.outcome, "clean");
    const versions = clean.nodes[0]!.items.filter((i) => i.kind === "version");
    assert.deepEqual(
      versions.map((i) => [i.item, i.expected, i.actual]),
      [
        ["/bin/containerd", "2.1.1", "2.1.1"],
        ["/usr/local/bin/runc", "v1.3.0", "1.3.0"],
        ["/usr/local/bin/crictl", "v1.33.0", "1.33.0"],
        ["/usr/local/bin/kubelet", "v1.33.1", "1.33.1"],
        ["/usr/local/bin/kube-proxy", "v1.33.1", "1.33.1"],
        ["/usr/local/bin/etcd", "v3.5.21", "3.5.21"],
        ["/usr/local/bin/kube-apiserver", "v1.33.1", "1.33.1"],
        ["/usr/local/bin/kube-controller-manager", "v1.33.1", "1.33.1"],
        ["/usr/local/bin/kube-scheduler", "v1.33.1", "1.33.1"],
      ],
    );

    const loopback = await Deno.readFile(join(root, "opt/cni/bin/loopback"));
    await Deno.remove(join(root, "opt/cni/bin/loopback"));
    await Deno.chmod(join(root, NODE_PATHS.apiserverKey.slice(1)), 0o644);
    await Deno.writeTextFile(join(root, "usr/local/bin/runc"), script("runc version 1.2.9"));
    await Deno.remove(layout.encryptionConfig);
    await Deno.writeTextFile(
      join(root, NODE_PATHS.hosts.slice(1)),
      "127.0.0.1 localhost\n10.9.9.9 vm1\n",
    );
    const drifted = await verify();
    assert.equal(drifted.outcome, "drifted");
    assert.deepEqual(
      notOk(drifted).map((i) => [i.kind, i.item, i.status]),
      [
        ["binary", "/usr/local/bin/runc", "drifted"],
        ["binary", "/opt/cni/bin/loopback", "missing"],
        ["secret", NODE_PATHS.apiserverKey, "drifted"],
        ["secret", NODE_PATHS.encryptionConfig, "unchecked"],
        ["edited", NODE_PATHS.hosts, "drifted"],
        ["version", "/usr/local/bin/runc", "drifted"],
      ],
    );
    const by = (kind: string, item: string) =>
      notOk(drifted).find((i) => i.kind === kind && i.item === item)!;
    assert.equal(by("secret", NODE_PATHS.apiserverKey).detail, "mode is 644, expected 600");
    assert.match(
      by("secret", NODE_PATHS.encryptionConfig).detail ?? "",
      /dtk's copy .* is missing/,
    );
    assert.equal(by("version", "/usr/local/bin/runc").actual, "1.2.9");
    assert.match(by("edited", NODE_PATHS.hosts).diff ?? "", /^-10\.0\.0\.2 vm1$/m);
    assert.deepEqual(drifted.counts, {
      ok: drifted.counts.ok,
      drifted: 4,
      missing: 1,
      unchecked: 1,
    });

    // Nothing drifted but something could not be checked: outcome unchecked (exit 2).
    await Deno.writeFile(
      join(root, "usr/local/bin/runc"),
      await Deno.readFile(join(dir, "artifacts/runc.amd64")),
    );
    await Deno.writeFile(join(root, "opt/cni/bin/loopback"), loopback, { mode: 0o755 });
    await Deno.chmod(join(root, "opt/cni/bin/loopback"), 0o755);
    await Deno.chmod(join(root, NODE_PATHS.apiserverKey.slice(1)), 0o600);
    await Deno.writeTextFile(
      join(root, NODE_PATHS.hosts.slice(1)),
      updateHosts("127.0.0.1 localhost\n", renderNodes(config, { vm1: "10.0.0.2" })),
    );
    const partial = await verify();
    assert.deepEqual(notOk(partial).map((i) => [i.item, i.status]), [
      [NODE_PATHS.encryptionConfig, "unchecked"],
    ]);
    assert.equal(partial.outcome, "unchecked");

    // Certificates that expire within the warning window are drift, with the date.
    const expiring = await verify({ expiryWarningDays: 100_000 });
    const certs = notOk(expiring).filter((i) => i.kind === "cert");
    assert.ok(certs.length >= 4, `expected every certificate, got ${certs.length}`);
    for (const c of certs) assert.match(c.detail ?? "", /^expires in \d+ days \(\d{4}-/);
    const future = await verify({ now: new Date(Date.now() + 100 * 365 * 86_400_000) });
    for (const c of notOk(future).filter((i) => i.kind === "cert")) {
      assert.match(c.detail ?? "", /^expired on \d{4}-/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A folder node whose `ctr` is a script answering from the given containers. */
async function fakeCtr(dir: string, containers: { id: string; image: string; digest: string }[]) {
  const bin = join(dir, "bin");
  await Deno.mkdir(bin, { recursive: true });
  const images = containers.map((c) =>
    `${c.image} application/vnd.oci.image.index.v1+json ${c.digest} 1.0 MiB linux/amd64 -`
  );
  const tasks = containers.map((c, i) => `${c.id} ${100 + i} RUNNING`);
  const infos = containers.map((c) =>
    `  ${c.id}) echo '${
      JSON.stringify({
        Image: c.image,
        Labels: {
          "io.kubernetes.pod.namespace": "default",
          "io.kubernetes.pod.name": c.id,
          "io.kubernetes.container.name": "main",
        },
      })
    }' ;;`
  );
  await Deno.writeTextFile(
    join(bin, "ctr"),
    [
      "#!/bin/sh",
      'while [ "$1" = -n ] || [ "$1" = -a ]; do shift 2; done',
      'case "$1 $2" in',
      `  "images ls") echo 'REF TYPE DIGEST SIZE PLATFORMS LABELS'; printf '%s\\n' ${
        images.map((l) => `'${l}'`).join(" ")
      } ;;`,
      `  "tasks ls") echo 'TASK PID STATUS'; printf '%s\\n' ${
        tasks.map((l) => `'${l}'`).join(" ")
      } 'stopped1 0 STOPPED' ;;`,
      '  "containers info") case "$3" in',
      ...infos,
      "  esac ;;",
      "esac",
      "",
    ].join("\n"),
  );
  await Deno.chmod(join(bin, "ctr"), 0o755);
  return bin;
}

Deno.test("verifyCluster: every running container's image digest against the lock's pin", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-verify-images-" });
  try {
    const { config, lock, storeDir, root } = await fixture(dir);
    const pinned = `sha256:${"a".repeat(64)}`;
    (lock.artifacts as Record<string, unknown>)["registry.k8s.io-pause-3.10"] = {
      kind: "image",
      ref: "registry.k8s.io/pause:3.10",
      hash: pinned,
      manifest: `sha256:${"b".repeat(64)}`,
      arch: "amd64",
      urls: [],
      size: null,
      source: "registry",
      version: "3.10",
    };
    const withCtr = async (containers: { id: string; image: string; digest: string }[]) => {
      const bin = await fakeCtr(join(dir, crypto.randomUUID()), containers);
      const base = new FolderRemote(root);
      const remote: Remote = Object.assign(Object.create(base), {
        exec: (command: string | readonly string[], options: ExecOptions = {}) =>
          base.exec(`PATH=${bin}:$PATH; ${String(command)}`, options),
      });
      return await verifyCluster(config, { lock, runner, storeDir, remote: () => remote });
    };
    const clean = await withCtr([{
      id: "pause1",
      image: "registry.k8s.io/pause:3.10",
      digest: pinned,
    }]);
    assert.deepEqual(notOk(clean), []);
    const images = clean.nodes[0]!.items.filter((i) => i.kind === "image");
    assert.deepEqual(images.map((i) => [i.item, i.status]), [
      ["default/pause1/main (registry.k8s.io/pause:3.10)", "ok"],
    ]);
    const foreign = `sha256:${"c".repeat(64)}`;
    const drifted = await withCtr([
      { id: "pause1", image: "registry.k8s.io/pause:3.10", digest: pinned },
      { id: "intruder", image: "dtk.test/other:1", digest: foreign },
    ]);
    assert.equal(drifted.outcome, "drifted");
    const bad = notOk(drifted);
    assert.equal(bad.length, 1);
    assert.equal(bad[0]!.kind, "image");
    assert.equal(bad[0]!.actual, foreign);
    assert.match(bad[0]!.detail!, /dtk\.test\/other:1 .* is not in the lock/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
