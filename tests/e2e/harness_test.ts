/**
 * Self-tests of the real-node harness (issue 6): the harness is real, not a mock.
 *
 * Node tier (runs in `deno task test`): nodes boot real systemd + sshd, pinned host keys, the
 * test driver's lifecycle, teardown leaves nothing, sweepStale cleans a killed run, artifacts and
 * the loopback mirror.
 * Control-plane tier (`deno task e2e`, or whenever the Kubernetes build is cached): a 3-member mTLS
 * etcd from the mirror, then kube-apiserver 1.20.2 against it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { parseLock } from "../../store/lockfile.ts";
import {
  createNspawnDriver,
  k8sStatus,
  leftovers,
  makeTestCa,
  type Node,
  nodeSupport,
  prepareArtifacts,
  SshClient,
  startArtifactMirror,
  startNodes,
  sweepStale,
  testLock,
  waitFor,
} from "../harness/mod.ts";

const runner = new LocalRunner();
const support = nodeSupport();
const e2e = Deno.env.get("DTK_E2E") === "1";
const k8s = k8sStatus();
const tierStart = performance.now();
globalThis.addEventListener("unload", () => {
  const tier = e2e
    ? "e2e (nodes + control plane)"
    : k8s.ok
    ? "test (nodes + control plane: the Kubernetes build is cached)"
    : "test (nodes)";
  console.error(
    `[harness] tier ${tier}: harness_test.ts took ${
      ((performance.now() - tierStart) / 1000).toFixed(1)
    } s`,
  );
});

function nodeTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  Deno.test({
    name: support.ok ? name : `${name} (skipped: ${support.reason})`,
    ignore: !support.ok,
    // ssh control masters and detached nspawn processes are cleaned up explicitly and asserted.
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

function assertNothingLeft(left: Awaited<ReturnType<typeof leftovers>>): void {
  assert.deepEqual(left, {
    pids: [],
    netns: [],
    mounts: [],
    bridge: [],
    stateDir: [],
    cgroups: [],
  });
}

nodeTest(
  "nodes: 3 nodes boot systemd and sshd, reach each other, and leave nothing behind",
  async () => {
    const nodes = await startNodes(3);
    let snapshot;
    try {
      assert.equal(nodes.nodes.length, 3);
      for (const node of nodes.nodes) {
        const hostname = await node.run("hostname");
        assert.equal(hostname.stdout.trim(), node.name);
        const state = await node.run("timeout 30 systemctl is-system-running --wait", {
          check: false,
        });
        const failed = state.stdout.trim() === "running"
          ? ""
          : (await node.run("systemctl --failed --no-legend", { check: false })).stdout;
        assert.equal(
          state.stdout.trim(),
          "running",
          `systemd on ${node.name}: failed units: ${failed}`,
        );
        const pid1 = await node.run("cat /proc/1/comm");
        assert.equal(pid1.stdout.trim(), "systemd");
        const addr = await node.run("ip -4 -o addr show dev eth0");
        assert.match(addr.stdout, new RegExp(` ${node.ip.replaceAll(".", "\\.")}/24 `));
        for (const other of nodes.nodes.filter((n) => n !== node)) {
          // ping is not in the node image; an SSH banner over TCP proves the route both ways.
          const banner = await node.run(
            `timeout 5 bash -c 'exec 3<>/dev/tcp/${other.ip}/22; head -c 7 <&3'`,
          );
          assert.equal(banner.stdout, "SSH-2.0", `${node.name} → ${other.name}`);
        }
      }
      // Host keys really are pinned: a known_hosts with another key makes ssh refuse.
      const node1 = nodes.at(0);
      const node2 = nodes.at(1);
      assert.notEqual(node1.hostKey, node2.hostKey);
      const wrong = await Deno.makeTempFile({ prefix: "dtk-known-hosts-" });
      try {
        await Deno.writeTextFile(wrong, `${node1.ip} ${node2.hostKey}\n`);
        const refused = await runner.run([
          "ssh",
          ...nodes.ssh.commonOptions().map((o) =>
            o.startsWith("UserKnownHostsFile=") ? `UserKnownHostsFile=${wrong}` : o
          ).map((o) => o.startsWith("ControlPath=") ? "ControlPath=none" : o),
          `root@${node1.ip}`,
          "true",
        ], { check: false });
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /host key|HOST IDENTIFICATION/i);
      } finally {
        await Deno.remove(wrong);
      }
      snapshot = await nodes.snapshot();
      assert.ok(
        snapshot.pids.length >= 6,
        `expected nspawn + systemd + sshd PIDs, got ${snapshot.pids}`,
      );
      assert.equal(snapshot.mounts.length, 3);
    } finally {
      await nodes.stop();
    }
    assertNothingLeft(await leftovers(snapshot, runner));
  },
);

nodeTest(
  "nodes: with containers, runc and containerd from the mirror run containers inside a node",
  async () => {
    const set = await prepareArtifacts({ runner });
    const byName = Object.fromEntries(set.artifacts.map((a) => [a.name, a]));
    const nodes = await startNodes(1, { names: ["box1"], containers: true });
    let snapshot;
    try {
      const node = nodes.at(0);
      await node.copyTo(
        [join(set.dir, byName.runc!.file), join(set.dir, byName.containerd!.file)],
        "/root/",
      );
      // A container rootfs made of the node's own dash, id and cat, with their libraries.
      const run = await node.run(
        `set -e
install -m755 /root/runc.amd64 /usr/local/bin/runc
mkdir -p /c/rootfs/bin && cd /c
cp /bin/dash rootfs/bin/sh && cp /usr/bin/id /usr/bin/cat rootfs/bin/
for lib in $(ldd /bin/dash /usr/bin/id /usr/bin/cat | grep -o '/[^ :]*' | sort -u); do cp --parents "$lib" rootfs/; done
runc spec
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"sh", "-c", "echo hello-from-runc; id -u; cat \\/proc\\/self\\/cgroup"/' config.json
runc run dtk-test-1`,
        { timeoutMs: 60_000, check: false },
      );
      assert.equal(run.code, 0, `runc in the node failed: ${run.stderr}`);
      const lines = run.stdout.trim().split("\n");
      assert.equal(lines[0], "hello-from-runc");
      assert.equal(lines[1], "0");
      assert.match(
        run.stdout,
        /memory:\/.*dtk-test-1/,
        "runc put the container in its own memory cgroup",
      );

      const unit = `[Unit]
Description=containerd (dtk harness self-test)
[Service]
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
[Install]
WantedBy=multi-user.target
`;
      await node.run(
        `tar -xzf /root/${
          byName.containerd!.file
        } -C /usr/local && cat >/etc/systemd/system/containerd.service`,
        { stdin: unit },
      );
      await node.run("systemctl daemon-reload && systemctl enable --now containerd", {
        timeoutMs: 60_000,
      });
      const version = await node.run("ctr version");
      assert.match(
        version.stdout,
        new RegExp(
          `Server:[\\s\\S]*Version:\\s+v?${set.versions.containerd.replaceAll(".", "\\.")}`,
        ),
      );
      // An OCI image made from the same rootfs (no registry here), imported and run by
      // containerd with its default overlayfs snapshotter: what the kubelet will do.
      const image = await node.run(
        String.raw`set -e
cd /c && mkdir -p img/blobs/sha256 && tar -C rootfs -cf layer.tar .
blob() { h=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1"); mv "$1" "img/blobs/sha256/$h"; echo "$h $s"; }
set -- $(blob layer.tar); L=$1; LS=$2
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh","-c","echo hello-from-containerd"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $L >cfg.json
set -- $(blob cfg.json); C=$1; CS=$2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' $C $CS $L $LS >man.json
set -- $(blob man.json); M=$1; MS=$2
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"dtk.test/box:1","org.opencontainers.image.ref.name":"1"}}]}' $M $MS >img/index.json
printf '{"imageLayoutVersion":"1.0.0"}' >img/oci-layout
tar -C img -cf box.tar .
ctr -n k8s.io images import box.tar >/dev/null
ctr -n k8s.io images ls -q
ctr -n k8s.io run --rm dtk.test/box:1 dtk-test-2`,
        { timeoutMs: 90_000, check: false },
      );
      assert.equal(image.code, 0, `containerd run failed: ${image.stderr}`);
      assert.match(image.stdout, /dtk\.test\/box:1/);
      assert.match(image.stdout, /hello-from-containerd/);
      snapshot = await nodes.snapshot();
      // Everything the node's containerd made is inside the node's own cgroup subtree.
      const meta = await nodes.driver.nodeMeta("box1");
      assert.ok(meta?.cgroup);
      assert.ok(
        snapshot.cgroups.some((d) => d.endsWith(`/cpu/${meta.cgroup}`)),
        `${snapshot.cgroups}`,
      );
      const inNode = await node.run("ls /sys/fs/cgroup/cpu");
      assert.match(inNode.stdout, /^k8s\.io$/m);
      const cpuDir = snapshot.cgroups.find((d) => d.endsWith(`/cpu/${meta.cgroup}`))!;
      assert.ok((await Deno.stat(join(cpuDir, "k8s.io"))).isDirectory, "seen from the host");
    } finally {
      await nodes.stop();
    }
    assertNothingLeft(await leftovers(snapshot!, runner));
  },
);

nodeTest("driver: test-nspawn lifecycle through createNspawnDriver", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "dtk-nspawn-driver-", dir: "/var/tmp" });
  const driver = createNspawnDriver({
    cluster: { name: "drvtest" },
    source: { file: "<built-in>", dir: stateDir, builtIn: true },
    testNspawn: { "state-dir": stateDir, "owner-pid": Deno.pid },
  }, { runner });
  const keyDir = await Deno.makeTempDir({ prefix: "dtk-driver-key-" });
  try {
    assert.deepEqual(await driver.preflight(), []);
    await runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(keyDir, "id")]);
    const authorizedKey = (await Deno.readTextFile(join(keyDir, "id.pub"))).trim();
    assert.equal(await driver.status("vm1"), "absent");
    await driver.createTemplate({ name: "tmpl", authorizedKey, media: {}, workDir: keyDir }, {
      timeoutMs: 20 * 60_000,
    });
    assert.ok(await driver.exists("tmpl"));
    // A host key made up front (as dtk does) is the one the node serves.
    await runner.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(keyDir, "hk")]);
    const hostKey = {
      privateKey: await Deno.readTextFile(join(keyDir, "hk")),
      publicKey: (await Deno.readTextFile(join(keyDir, "hk.pub"))).trim(),
    };
    await driver.clone({
      name: "vm1",
      template: "tmpl",
      cpu: 1,
      mem: 512,
      disk: undefined,
      staticIp: undefined,
      hostKey,
      authorizedKey,
      workDir: keyDir,
    }, { timeoutMs: 10_000 });
    assert.equal(await driver.status("vm1"), "stopped");
    await driver.start("vm1", { timeoutMs: 60_000 });
    assert.equal(await driver.status("vm1"), "running");
    const address = await driver.address("vm1", { timeoutMs: 5_000 });
    assert.match(address.ip, /^\d+\.\d+\.\d+\.\d+$/);
    const scan = await runner.run(["ssh-keyscan", "-t", "ed25519", address.ip]);
    assert.equal(
      scan.stdout.trim().split(" ").slice(1, 3).join(" "),
      hostKey.publicKey.split(" ").slice(0, 2).join(" "),
    );

    await driver.pause("vm1");
    assert.equal(await driver.status("vm1"), "paused");
    // A frozen sshd accepts TCP (the kernel does) but never sends its banner.
    const frozen = await runner.run(["ssh-keyscan", "-T", "2", "-t", "ed25519", address.ip], {
      check: false,
    });
    assert.equal(frozen.stdout.trim(), "");
    await driver.resume("vm1");
    assert.equal(await driver.status("vm1"), "running");
    await waitFor("sshd after resume", async () => {
      const again = await runner.run(["ssh-keyscan", "-T", "2", "-t", "ed25519", address.ip], {
        check: false,
      });
      return again.stdout.includes("ssh-ed25519") ? true : undefined;
    }, { timeoutMs: 10_000 });

    assert.deepEqual(await driver.list(), [{ name: "vm1", state: "running" }]);
    const ssh = new SshClient({
      runner,
      identity: join(keyDir, "id"),
      knownHosts: join(keyDir, "known_hosts"),
      controlDir: keyDir,
    });
    await ssh.pin(address.ip, hostKey.publicKey);
    await ssh.run(address.ip, "echo persisted >/root/marker && sync");
    await ssh.close();
    await driver.stop("vm1", { timeoutMs: 15_000 });
    assert.equal(await driver.status("vm1"), "stopped");
    // A restart keeps the node's disk (its overlay upper layer).
    await driver.start("vm1", { timeoutMs: 60_000 });
    assert.equal((await ssh.run(address.ip, "cat /root/marker")).stdout, "persisted\n");
    await ssh.close();
    const { index } = JSON.parse(await Deno.readTextFile(join(stateDir, "net.json")));
    assert.equal(await driver.delete("vm1", { timeoutMs: 15_000 }), true);
    assert.equal(await driver.status("vm1"), "absent");
    assert.equal(await driver.delete("vm1", { timeoutMs: 15_000 }), false);
    // The last node took the bridge and its namespace with it.
    assert.equal(
      (await runner.run(["ip", "link", "show", `dtkbr${index}`], { check: false })).code,
      1,
    );
    const namespaces = (await Array.fromAsync(Deno.readDir("/run/netns"))).map((e) => e.name);
    assert.deepEqual(namespaces.filter((n) => n.startsWith(`dtkt${index}-`)), []);
  } finally {
    await driver.destroy({ timeoutMs: 15_000 });
    await Deno.remove(keyDir, { recursive: true });
  }
  await assert.rejects(Deno.stat(stateDir), Deno.errors.NotFound);
});

nodeTest("sweepStale: removes the nodes of a killed run", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", join(import.meta.dirname!, "../harness/_stale_child.ts")],
    stdout: "piped",
    stderr: "inherit",
    env: { RUST_BACKTRACE: "0" },
  }).spawn();
  let killed = false;
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const line = await waitFor("the child to start its node", async () => {
      const { value, done } = await reader.read();
      if (done) throw new Error(`child exited early: ${text}`);
      text += value;
      return text.includes("\n") ? text.split("\n")[0] : undefined;
    }, { timeoutMs: 120_000, intervalMs: 0 });
    const { snapshot } = JSON.parse(line!);
    child.kill("SIGKILL");
    killed = true;
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const before = await leftovers(snapshot, runner, { settleMs: 0 });
    assert.ok(before.pids.length > 0, "the killed run should have left its node running");
    assert.equal(before.netns.length, 1);
    const report = await sweepStale(runner);
    assert.ok(report.dirs.includes(snapshot.stateDir));
    assertNothingLeft(await leftovers(snapshot, runner));
  } finally {
    if (!killed) {
      // The child may have ended on its own (that is the failure being reported): no kill then.
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await sweepStale(runner);
    }
  }
});

Deno.test({
  name: "artifacts: upstream layouts, loopback mirror with Range, and a valid test lock",
  sanitizeResources: false,
  fn: async () => {
    const set = await prepareArtifacts({ runner });
    const byName = Object.fromEntries(set.artifacts.map((a) => [a.name, a]));
    for (const name of ["etcd", "containerd", "runc", "crictl", "cni-plugins"]) {
      assert.ok(byName[name], `artifact ${name}`);
    }
    if (set.kubernetes) {
      for (
        const c of [
          "kube-apiserver",
          "kube-controller-manager",
          "kube-scheduler",
          "kubelet",
          "kube-proxy",
        ]
      ) {
        assert.equal(byName[c]?.file, c);
      }
      const kubectl = await runner.run([
        join(set.dir, "kubectl"),
        "version",
        "--client",
        "--short",
      ]);
      assert.equal(kubectl.stdout.trim(), "Client Version: v1.20.2");
    }
    const list = async (file: string) =>
      (await runner.run(["tar", "-tzf", join(set.dir, file)])).stdout.trim().split("\n").sort();
    const etcdDir = `etcd-${set.versions.etcd}-linux-amd64`;
    assert.equal(byName.etcd!.file, `${etcdDir}.tar.gz`);
    assert.deepEqual(await list(byName.etcd!.file), [
      `${etcdDir}/`,
      `${etcdDir}/etcd`,
      `${etcdDir}/etcdctl`,
    ]);
    assert.equal(
      byName.containerd!.file,
      `containerd-static-${set.versions.containerd}-linux-amd64.tar.gz`,
    );
    assert.ok((await list(byName.containerd!.file)).includes("bin/containerd-shim-runc-v2"));
    assert.equal(byName.runc!.file, "runc.amd64");
    assert.equal(
      byName["cni-plugins"]!.file,
      `cni-plugins-linux-amd64-${set.versions.cniPlugins}.tgz`,
    );
    const cni = await list(byName["cni-plugins"]!.file);
    assert.ok(
      cni.includes("./bridge") && cni.includes("./host-local") && cni.includes("./loopback"),
    );
    assert.deepEqual(await list(byName.crictl!.file), ["crictl"]);

    // Cached: a second call finds the same files instead of repacking.
    const again = await prepareArtifacts({ runner });
    assert.deepEqual(again.artifacts.map((a) => a.sha256), set.artifacts.map((a) => a.sha256));

    await using mirror = startArtifactMirror(set);
    const lock = parseLock(JSON.parse(JSON.stringify(testLock(set, { mirrorUrl: mirror.url }))));
    const runcEntry = lock.artifacts.runc!;
    assert.equal(runcEntry.urls[0], `${mirror.url}/runc.amd64`);
    const whole = new Uint8Array(await (await fetch(runcEntry.urls[0]!)).arrayBuffer());
    assert.equal(whole.length, runcEntry.size);
    assert.equal(`sha256:${createHash("sha256").update(whole).digest("hex")}`, runcEntry.hash);
    const byHash = await fetch(`${mirror.url}/sha256/${byName.runc!.sha256}`);
    assert.equal(byHash.status, 200);
    await byHash.body?.cancel();
    const partial = await fetch(runcEntry.urls[0]!, {
      headers: { range: "bytes=100-", "if-range": `"${byName.runc!.sha256}"` },
    });
    assert.equal(partial.status, 206);
    assert.equal(
      partial.headers.get("content-range"),
      `bytes 100-${whole.length - 1}/${whole.length}`,
    );
    assert.deepEqual(new Uint8Array(await partial.arrayBuffer()), whole.subarray(100));
    const stale = await fetch(runcEntry.urls[0]!, {
      headers: { range: "bytes=100-", "if-range": `"0000"` },
    });
    assert.equal(stale.status, 200, "a stale If-Range gets the whole file");
    await stale.body?.cancel();
    const missing = await fetch(`${mirror.url}/nothing-here`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    assert.ok(mirror.requests.length >= 5);
  },
});

/** Fetches an artifact from the mirror by its lock URL, checks its hash, saves it. */
async function fetchLocked(
  lock: ReturnType<typeof testLock>,
  name: string,
  dir: string,
): Promise<string> {
  const entry = lock.artifacts[name];
  assert.ok(entry, `lock entry ${name}`);
  const response = await fetch(entry.urls[0]!);
  assert.equal(response.status, 200);
  const bytes = new Uint8Array(await response.arrayBuffer());
  assert.equal(`sha256:${createHash("sha256").update(bytes).digest("hex")}`, entry.hash);
  const path = join(dir, entry.file ?? name);
  await Deno.writeFile(path, bytes, { mode: 0o755 });
  return path;
}

const cpReason = !support.ok
  ? support.reason
  : !e2e && !k8s.ok
  ? "control-plane tier: set DTK_E2E=1 (deno task e2e) or build tests/harness/build_k8s.sh"
  : "";

Deno.test({
  name: cpReason
    ? `control plane: mTLS etcd on 3 nodes and kube-apiserver 1.20.2 from the mirror (skipped: ${cpReason})`
    : "control plane: mTLS etcd on 3 nodes and kube-apiserver 1.20.2 from the mirror",
  ignore: cpReason !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const work = await Deno.makeTempDir({ prefix: "dtk-cp-test-" });
    const set = await prepareArtifacts({ runner });
    await using mirror = startArtifactMirror(set);
    const lock = testLock(set, { mirrorUrl: mirror.url });
    const nodes = await startNodes(3);
    let snapshot;
    try {
      const ca = await makeTestCa(join(work, "pki"));
      const client = await ca.issue("etcd-client", { cn: "etcd-client", usage: "client" });
      const endpoints = nodes.nodes.map((n) => `https://${n.ip}:2379`).join(",");
      const etcdctl = join(work, "etcd", `etcd-${set.versions.etcd}-linux-amd64`, "etcdctl");

      const etcdOk = await t.step("etcd: 3 members with mTLS, healthy from the host", async () => {
        const tarball = await fetchLocked(lock, "etcd", work);
        await Deno.mkdir(join(work, "etcd"));
        await runner.run(["tar", "-xzf", tarball, "-C", join(work, "etcd")]);
        const bin = join(work, "etcd", `etcd-${set.versions.etcd}-linux-amd64`);
        const cluster = nodes.nodes.map((n) => `${n.name}=https://${n.ip}:2380`).join(",");
        const started = performance.now();
        await Promise.all(nodes.nodes.map(async (node: Node) => {
          const server = await ca.issue(`etcd-${node.name}`, {
            cn: node.name,
            ips: [node.ip, "127.0.0.1"],
          });
          await node.run("mkdir -p /etc/etcd /var/lib/etcd && chmod 700 /var/lib/etcd");
          await node.copyTo([join(bin, "etcd"), join(bin, "etcdctl")], "/usr/local/bin/");
          await node.copyTo([ca.cert, server.cert, server.key], "/etc/etcd/");
          const unit = `[Unit]
Description=etcd (dtk harness self-test)
[Service]
Type=notify
ExecStart=/usr/local/bin/etcd --name ${node.name} --data-dir /var/lib/etcd \\
  --listen-client-urls https://${node.ip}:2379,https://127.0.0.1:2379 --advertise-client-urls https://${node.ip}:2379 \\
  --listen-peer-urls https://${node.ip}:2380 --initial-advertise-peer-urls https://${node.ip}:2380 \\
  --initial-cluster ${cluster} --initial-cluster-token dtk-harness --initial-cluster-state new \\
  --client-cert-auth --trusted-ca-file /etc/etcd/ca.pem \\
  --cert-file /etc/etcd/etcd-${node.name}.pem --key-file /etc/etcd/etcd-${node.name}-key.pem \\
  --peer-client-cert-auth --peer-trusted-ca-file /etc/etcd/ca.pem \\
  --peer-cert-file /etc/etcd/etcd-${node.name}.pem --peer-key-file /etc/etcd/etcd-${node.name}-key.pem
Restart=on-failure
RestartSec=2
[Install]
WantedBy=multi-user.target
`;
          await node.run("cat >/etc/systemd/system/etcd.service", { stdin: unit });
          // --no-block: a member's start only completes once a quorum is up.
          await node.run(
            "systemctl daemon-reload && systemctl enable etcd && systemctl start --no-block etcd",
          );
        }));
        const health = await waitFor("3 healthy etcd members", async () => {
          const out = await runner.run([
            etcdctl,
            `--endpoints=${endpoints}`,
            `--cacert=${ca.cert}`,
            `--cert=${client.cert}`,
            `--key=${client.key}`,
            "--dial-timeout=2s",
            "--command-timeout=3s",
            "endpoint",
            "health",
          ], { check: false, timeoutMs: 20_000 });
          return out.success && (out.stdout + out.stderr).match(/is healthy/g)?.length === 3
            ? out
            : undefined;
        }, { timeoutMs: 90_000, intervalMs: 500 });
        console.error(
          `[harness] etcd: 3 members healthy ${
            ((performance.now() - started) / 1000).toFixed(1)
          } s after start`,
        );
        assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);
        const members = await runner.run([
          etcdctl,
          `--endpoints=${endpoints}`,
          `--cacert=${ca.cert}`,
          `--cert=${client.cert}`,
          `--key=${client.key}`,
          "member",
          "list",
        ]);
        assert.equal(members.stdout.trim().split("\n").length, 3);
        const state = await nodes.at(0).run("systemctl is-active etcd");
        assert.equal(state.stdout.trim(), "active");
        // Without a client certificate the cluster refuses.
        const anonymous = await runner.run([
          etcdctl,
          `--endpoints=${endpoints}`,
          `--cacert=${ca.cert}`,
          "--dial-timeout=2s",
          "--command-timeout=3s",
          "endpoint",
          "health",
        ], { check: false, timeoutMs: 30_000 });
        assert.notEqual(anonymous.code, 0);
      });

      await t.step({
        name: k8s.ok && etcdOk
          ? "kube-apiserver 1.20.2: /livez is 200 with a client cert of the CA, refused without"
          : `kube-apiserver 1.20.2 (skipped: ${k8s.ok ? "etcd failed" : k8s.reason})`,
        ignore: !k8s.ok || !etcdOk,
        fn: async () => {
          const node = nodes.at(0);
          const binary = await fetchLocked(lock, "kube-apiserver", work);
          const version = await runner.run([binary, "--version"]);
          assert.equal(version.stdout.trim(), "Kubernetes v1.20.2");
          const server = await ca.issue("kubernetes", {
            cn: "kubernetes",
            ips: [node.ip, "127.0.0.1", "10.32.0.1"],
            dns: ["kubernetes", "kubernetes.default", "kubernetes.default.svc"],
          });
          const admin = await ca.issue("admin", {
            cn: "admin",
            o: "system:masters",
            usage: "client",
          });
          const foreign = await makeTestCa(join(work, "foreign"), { cn: "not-the-cluster-ca" });
          const intruder = await foreign.issue("intruder", {
            cn: "admin",
            o: "system:masters",
            usage: "client",
          });
          // 1.20 reads the service-account key file only as PUBLIC KEY or SEC1 (EC PRIVATE KEY),
          // not as PKCS#8: "data does not contain any valid RSA or ECDSA public keys".
          const saKey = join(work, "pki", "service-account-key.pem");
          const saPub = join(work, "pki", "service-account.pub");
          await runner.run([
            "openssl",
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            saKey,
          ]);
          await runner.run(["openssl", "ec", "-in", saKey, "-pubout", "-out", saPub]);
          await node.run("mkdir -p /var/lib/kubernetes");
          await node.copyTo([binary], "/usr/local/bin/");
          await node.copyTo(
            [ca.cert, server.cert, server.key, client.cert, client.key, saKey, saPub],
            "/var/lib/kubernetes/",
          );
          const k = "/var/lib/kubernetes";
          // --anonymous-auth=false: otherwise /livez is public (system:public-info-viewer) and
          // "refused without a client cert" would prove nothing.
          const unit = `[Unit]
Description=kube-apiserver (dtk harness self-test)
[Service]
ExecStart=/usr/local/bin/kube-apiserver --advertise-address=${node.ip} --bind-address=0.0.0.0 \\
  --secure-port=6443 --insecure-port=0 --anonymous-auth=false --authorization-mode=Node,RBAC \\
  --client-ca-file=${k}/ca.pem --tls-cert-file=${k}/kubernetes.pem --tls-private-key-file=${k}/kubernetes-key.pem \\
  --etcd-servers=${endpoints} --etcd-cafile=${k}/ca.pem --etcd-certfile=${k}/etcd-client.pem --etcd-keyfile=${k}/etcd-client-key.pem \\
  --service-cluster-ip-range=10.32.0.0/24 --service-account-issuer=https://kubernetes.default.svc \\
  --service-account-key-file=${k}/service-account.pub --service-account-signing-key-file=${k}/service-account-key.pem \\
  --kubelet-preferred-address-types=InternalIP --allow-privileged=true --v=1
Restart=on-failure
RestartSec=5
[Install]
WantedBy=multi-user.target
`;
          await node.run("cat >/etc/systemd/system/kube-apiserver.service", { stdin: unit });
          const started = performance.now();
          await node.run("systemctl daemon-reload && systemctl enable --now kube-apiserver");
          const url = `https://${node.ip}:6443/livez`;
          const curl = (extra: string[]) =>
            runner.run([
              "curl",
              "-s",
              "-o",
              "/dev/null",
              "-w",
              "%{http_code}",
              "--max-time",
              "5",
              "--cacert",
              ca.cert,
              ...extra,
              url,
            ], {
              check: false,
              timeoutMs: 15_000,
            });
          try {
            await waitFor("kube-apiserver /livez to answer 200", async () => {
              const out = await curl(["--cert", admin.cert, "--key", admin.key]);
              return out.stdout === "200" ? true : undefined;
            }, { timeoutMs: 120_000, intervalMs: 500 });
          } catch (error) {
            const journal = await node.run("journalctl -u kube-apiserver --no-pager | tail -n 40", {
              check: false,
            });
            throw new Error(`${error}\n--- kube-apiserver journal ---\n${journal.stdout}`);
          }
          console.error(
            `[harness] kube-apiserver: /livez 200 ${
              ((performance.now() - started) / 1000).toFixed(1)
            } s after start`,
          );
          const body = await runner.run([
            "curl",
            "-s",
            "--cacert",
            ca.cert,
            "--cert",
            admin.cert,
            "--key",
            admin.key,
            url,
          ]);
          assert.equal(body.stdout.trim(), "ok");
          assert.equal((await curl([])).stdout, "401", "no client certificate");
          assert.equal(
            (await curl(["--cert", intruder.cert, "--key", intruder.key])).stdout,
            "401",
            "a foreign CA's cert",
          );
          // The data really is in the etcd cluster. The apiserver's bootstrap controller writes
          // the default namespace after /livez already answers, later on a loaded machine.
          const keys = await waitFor("the default namespace in etcd", async () => {
            const r = await runner.run([
              etcdctl,
              `--endpoints=${endpoints}`,
              `--cacert=${ca.cert}`,
              `--cert=${client.cert}`,
              `--key=${client.key}`,
              "get",
              "/registry/namespaces/default",
              "--keys-only",
            ]);
            return r.stdout.trim() === "" ? undefined : r;
          }, { timeoutMs: 30_000, intervalMs: 500 });
          assert.equal(keys.stdout.trim(), "/registry/namespaces/default");
        },
      });
      snapshot = await nodes.snapshot();
    } finally {
      await nodes.stop();
      await Deno.remove(work, { recursive: true });
    }
    assertNothingLeft(await leftovers(snapshot!, runner));
  },
});
