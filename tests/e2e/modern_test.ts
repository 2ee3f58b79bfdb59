/**
 * The modern tier (issue 17): the files dtk renders for its default versions, run by real
 * modern binaries on harness nodes: Debian sid's containerd 2.1.9, runc 1.3.6, CNI plugins 1.9.1,
 * etcd 3.5.30 and kubectl 1.36.4, served from the harness mirror, pinned in a test lock and
 * fetched into a store by dtk's own `ensureLock`, then installed with dtk's own step renderers
 * and binary list (`renderStep`, `binaryCopies`).
 *
 * What is the test's and not dtk's: the `sid-libs` loader runc needs on bookworm nodes
 * (see tests/harness/modern.ts); the containerd unit without `OOMScoreAdjust=-999`, which the
 * nodes refuse (the only override; config.toml is exactly the default render); static routes
 * between the nodes' pod CIDRs (dtk leaves that to the CNI add-on); etcd's `--initial-cluster`
 * listing three members (dtk renders one) and certificates from the harness CA with each
 * member's address.
 *
 * Runs in `deno task e2e` (DTK_E2E=1) when the modern set is built (`tests/harness/build_modern.sh`,
 * which `.ci/run` calls) and nodes can start. By hand, under the shared lock:
 * `DTK_E2E=1 flock /tmp/dtk-harness.lock deno test -A tests/e2e/modern_test.ts`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../../lib/config/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import {
  etcdFlags,
  etcdGateCommand,
  NODE_PATHS,
  renderContainerdConfig,
  type RenderInput,
  type RenderNode,
  renderStep,
  type StepFiles,
  type StepName,
} from "../../lib/render/mod.ts";
import { flagArgs } from "../../lib/render/_text.ts";
import { binaryCopies, type BinarySource } from "../../lib/cluster/_binaries.ts";
import { pkiSourceFile } from "../../lib/cluster/_nodes.ts";
import { ensurePki } from "../../lib/pki/mod.ts";
import { artifactPath, ensureLock, type Lockfile, openStore } from "../../store/mod.ts";
import { hostPort, lockIndex, startRegistry } from "../../lib/registry/mod.ts";
import { imageArtifacts, seedStore, testLayout } from "../registry/_images.ts";
import {
  BOX_IMAGE,
  k8sStatus,
  loadModernSet,
  makeTestCa,
  modernStatus,
  type Node,
  nodeSupport,
  prepareArtifacts,
  startArtifactMirror,
  startNodes,
  testLock,
  waitFor,
  writeTestImages,
} from "../harness/mod.ts";

const runner = new LocalRunner();
const support = nodeSupport();
const modern = modernStatus();
const e2e = Deno.env.get("DTK_E2E") === "1";
const reason = !e2e
  ? "modern tier: set DTK_E2E=1 (deno task e2e)"
  : !support.ok
  ? support.reason
  : !modern.ok
  ? modern.reason
  : "";

function modernTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  Deno.test({
    name: reason ? `${name} (skipped: ${reason})` : name,
    ignore: reason !== "",
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

/** The fetched lock, a store holding it, and dtk's default config at the set's versions. */
async function setUp(work: string) {
  const set = await loadModernSet();
  const mirror = startArtifactMirror(set);
  const lock = testLock(set, { mirrorUrl: mirror.url });
  const storeDir = join(work, "store");
  await ensureLock(lock, { store: openStore(storeDir) });
  const base = defaultConfig({ dir: work });
  const config = {
    ...base,
    versions: {
      ...base.versions,
      containerd: set.versions.containerd,
      runc: set.versions.runc,
      cniPlugins: set.versions.cniPlugins,
      etcd: set.versions.etcd,
    },
  };
  const source: BinarySource = { lock, storeDir, cacheDir: join(work, "unpacked"), runner };
  return { set, mirror, lock, storeDir, config, source };
}

/** Puts one step's files, folders and binaries on a node, as `cluster create` does. */
async function applyStep(node: Node, step: StepFiles, source: BinarySource): Promise<void> {
  for (const d of step.dirs) await node.run(`install -d -m ${d.mode.toString(8)} '${d.path}'`);
  for (const f of step.files) {
    await node.run(
      `mkdir -p "$(dirname '${f.path}')" && cat >'${f.path}.tmp' && chmod ${
        f.mode.toString(8)
      } '${f.path}.tmp' && mv '${f.path}.tmp' '${f.path}'`,
      { stdin: f.content },
    );
  }
  for (const c of await binaryCopies(step.binaries, source)) {
    await node.run(`mkdir -p "$(dirname '${c.dest}')"`);
    await node.copyTo([c.local], `${c.dest}.tmp`);
    const sum = await node.run(
      `chmod ${
        c.mode.toString(8)
      } '${c.dest}.tmp' && mv '${c.dest}.tmp' '${c.dest}' && sha256sum '${c.dest}'`,
    );
    assert.equal(sum.stdout.split(" ")[0], c.sha256, `${c.dest} on ${node.name}`);
  }
  for (const command of step.activate) await node.run(command, { timeoutMs: 30_000 });
}

/** A `runtime.v1.PullImageRequest` naming only `image.image` (protobuf, field 1 in field 1). */
function pullImageRequest(ref: string): Uint8Array {
  const text = new TextEncoder().encode(ref);
  // Single-byte lengths keep the encoding this simple.
  assert.ok(text.length + 2 < 128, ref);
  return Uint8Array.from([0x0a, text.length + 2, 0x0a, text.length, ...text]);
}

/** A gRPC message frame: uncompressed, 4-byte big-endian length. */
function grpcFrame(message: Uint8Array): Uint8Array {
  const n = message.length;
  return Uint8Array.from([0, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, ...message]);
}

function renderInput(config: RenderInput["config"], nodes: RenderNode[], node: string) {
  return { config, nodes, node, overrides: { noOomScoreAdjust: true } } satisfies RenderInput;
}

async function runtimeOn(
  node: Node,
  input: RenderInput,
  ctx: { source: BinarySource; storeDir: string; lock: ReturnType<typeof testLock> },
): Promise<void> {
  // The loader and libraries of sid's runc (the test's, not dtk's: see the module doc).
  const libs = ctx.lock.artifacts["sid-libs"]!;
  await node.copyTo([artifactPath(ctx.storeDir, libs)], "/root/dtk-sid-libs.tar.gz");
  await node.run("mkdir -p /opt/dtk-sid && tar -xzf /root/dtk-sid-libs.tar.gz -C /opt/dtk-sid");
  for (const step of ["sysctl", "containerd", "cni"] as StepName[]) {
    await applyStep(node, renderStep(step, input), ctx.source);
  }
  await node.run("systemctl daemon-reload && systemctl enable --now containerd", {
    timeoutMs: 60_000,
  });
  await waitFor(`containerd on ${node.name} to answer`, async () => {
    const r = await node.run("ctr version", { check: false, timeoutMs: 10_000 });
    return r.success ? r : undefined;
  }, { timeoutMs: 30_000, intervalMs: 300 });
}

modernTest(
  "modern: containerd 2.1.9 on dtk's default config.toml, runc 1.3.6 with systemd cgroups, CNI 1.9.1 across nodes",
  async (t) => {
    const work = await Deno.makeTempDir({ prefix: "dtk-modern-" });
    const ctx = await setUp(work);
    await using _mirror = ctx.mirror;
    const nodes = await startNodes(2, { containers: true });
    try {
      const rnodes: RenderNode[] = nodes.nodes.map((n, i) => ({
        name: n.name,
        ip: n.ip,
        podCidr: `10.200.${i}.0/24`,
      }));
      const started = performance.now();
      await Promise.all(
        nodes.nodes.map((n) => runtimeOn(n, renderInput(ctx.config, rnodes, n.name), ctx)),
      );
      console.error(
        `[modern] containerd ${ctx.set.versions.containerd} up on 2 nodes in ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s`,
      );
      const node = nodes.at(0);

      await t.step("containerd 2.1.9 runs the config.toml dtk renders (version 3)", async () => {
        const toml = await node.run(`cat ${NODE_PATHS.containerdConfig}`);
        assert.equal(toml.stdout, renderContainerdConfig(ctx.config), "the default render");
        assert.match(toml.stdout, /^version = 3$/m);
        const version = await node.run("ctr version");
        assert.match(version.stdout, /Server:[\s\S]*Version:\s+v?2\.1\.9/);
      });

      await t.step("every plugin loads: ctr plugins ls has none in error", async () => {
        const plugins = await node.run("ctr plugins ls");
        const rows = plugins.stdout.trim().split("\n").slice(1);
        const broken = rows.filter((r) => !/\s(ok|skip)\s*$/.test(r));
        assert.deepEqual(broken, [], plugins.stdout);
        for (const id of ["io.containerd.cri.v1\\s+images", "io.containerd.cri.v1\\s+runtime"]) {
          assert.match(plugins.stdout, new RegExp(`${id}\\s.*\\sok\\s*$`, "m"), id);
        }
        assert.match(plugins.stdout, /io\.containerd\.grpc\.v1\s+cri\s.*\sok\s*$/m);
        assert.match(plugins.stdout, /io\.containerd\.transfer\.v1\s+local\s.*\sok\s*$/m);
      });

      await t.step("no deprecation warnings: ctr deprecations list is empty", async () => {
        // containerd 2.x records every deprecated config key it meets (bin_dir, registry
        // mirrors/configs/auths, version 2 schema, ...): dtk's config must use none.
        const deprecations = await node.run("ctr deprecations list");
        const rows = deprecations.stdout.trim().split("\n").slice(1).filter((r) => r.trim());
        assert.deepEqual(rows, [], deprecations.stdout);
      });

      await t.step("containerd config dump shows dtk's values", async () => {
        const dump = (await node.run("containerd config dump")).stdout;
        assert.match(dump, /^version = 3$/m);
        assert.match(dump, /SystemdCgroup = true/);
        assert.match(dump, /sandbox = ['"]registry\.k8s\.io\/pause:3\.10['"]/);
        assert.match(dump, /config_path = ['"]\/etc\/containerd\/certs\.d['"]/);
        // The CRI pulls through the transfer service (the pull step below relies on it).
        assert.match(dump, /use_local_image_pull = false/);
        assert.match(dump, /bin_dirs = \[['"]\/opt\/cni\/bin['"]\]/);
        assert.match(dump, /conf_dir = ['"]\/etc\/cni\/net\.d['"]/);
        assert.match(dump, /restrict_oom_score_adj = false/);
      });

      await t.step(
        "containerd 2.1.9 pulls through dtk's registry with the hosts.toml dtk renders (offline)",
        async () => {
          // Before any import: only a pull through the registry can put the image on the node.
          const layout = await testLayout(join(work, "oci"));
          const imageStore = join(work, "image-store");
          const seeded = await seedStore(imageStore, layout);
          const box = seeded.find((i) => i.ref === "dtk.test/box:1")!;
          const lock = {
            ...ctx.lock,
            artifacts: { ...ctx.lock.artifacts, ...imageArtifacts(seeded) },
          } as Lockfile;
          const store = openStore(imageStore);
          const index = await lockIndex(lock, { store });
          // Every manifest and blob the registry serves is read through objectPath.
          const served: string[] = [];
          const server = startRegistry(index, {
            hostname: nodes.hostIp,
            port: 0,
            objectPath: (hex) => {
              served.push(hex);
              return store.objectPath(hex);
            },
          });
          try {
            const imageRegistry = {
              endpoint: `http://${hostPort(nodes.hostIp, server.port)}`,
              registries: index.registries(),
              offline: true,
            };
            const step = renderStep("containerd", {
              ...renderInput(ctx.config, rnodes, node.name),
              imageRegistry,
            });
            const hosts = step.files.filter((f) =>
              f.path.startsWith(`${NODE_PATHS.containerdCertsDir}/`)
            );
            const boxHosts = hosts.find((f) =>
              f.path === `${NODE_PATHS.containerdCertsDir}/dtk.test/hosts.toml`
            );
            assert.ok(boxHosts, hosts.map((f) => f.path).join(", "));
            assert.match(
              boxHosts.content,
              new RegExp(`^server = "${imageRegistry.endpoint}"$`, "m"),
            );
            const ref = `${box.ref}@${box.hash}`;
            const transferPull =
              `ctr -n k8s.io image pull --hosts-dir ${NODE_PATHS.containerdCertsDir}`;
            // `dtk.test` resolves nowhere: without dtk's hosts.toml the pull has nowhere to go.
            const bare = await node.run(`${transferPull} ${ref}`, {
              check: false,
              timeoutMs: 60_000,
            });
            assert.notEqual(bare.code, 0, `pulled without hosts.toml:\n${bare.stdout}`);
            assert.equal(served.length, 0, "nothing reached the registry without hosts.toml");

            for (const n of nodes.nodes) {
              await applyStep(
                n,
                { ...step, files: hosts, dirs: [], binaries: [], activate: [] },
                ctx.source,
              );
            }
            // The transfer service (ctr 2.1's default path): the daemon resolves with the host
            // folder the request names, as the CRI names its registry.config_path in its
            // transfer pulls. ctr names none unless told: without --hosts-dir containerd 2.1.9
            // went to https://dtk.test even with the transfer plugin's own config_path set.
            const pulled = await node.run(`${transferPull} ${ref}`, {
              check: false,
              timeoutMs: 120_000,
            });
            assert.equal(pulled.code, 0, `${pulled.stdout}\n${pulled.stderr}`);
            const listed = await node.run(`ctr -n k8s.io images ls`);
            const line = listed.stdout.split("\n").find((l) => l.startsWith(`${ref} `));
            assert.ok(line, listed.stdout);
            assert.ok(line.includes(box.hash), line);
            assert.ok(served.includes(box.hash.slice(7)), "the manifest came from dtk's registry");
            const viaTransfer = served.length;
            console.error(
              `[modern] transfer-service pull of ${ref}: ${viaTransfer} object(s) served`,
            );

            // The client-side (non-transfer) path on the other node: ctr --local resolves in
            // the client, from --hosts-dir, with containerd 2.1.9's resolver.
            const other = nodes.at(1);
            const local = await other.run(
              `ctr -n k8s.io image pull --local --hosts-dir ${NODE_PATHS.containerdCertsDir} ${ref}`,
              { check: false, timeoutMs: 120_000 },
            );
            assert.equal(local.code, 0, `${local.stdout}\n${local.stderr}`);
            const otherListed = await other.run(`ctr -n k8s.io images ls`);
            const otherLine = otherListed.stdout.split("\n").find((l) => l.startsWith(`${ref} `));
            assert.ok(otherLine?.includes(box.hash), otherListed.stdout);
            assert.ok(served.length > viaTransfer, "the --local pull reached dtk's registry");

            // The kubelet's path: a CRI PullImage (2.1 hands it to the transfer service with the
            // CRI's registry.config_path as host folder). No crictl in the modern set: curl
            // speaks the gRPC call over HTTP/2 on the node's socket. The pause image, which no
            // pull above touched, from registry.k8s.io, which the node cannot reach.
            const pause = seeded.find((i) => i.ref === "registry.k8s.io/pause:3.10")!;
            const pauseRef = `registry.k8s.io/pause@${pause.hash}`;
            const before = served.length;
            const cri = await other.run(
              `base64 -d >/tmp/pull.req && curl -sS --http2-prior-knowledge --max-time 60 ` +
                `--unix-socket ${NODE_PATHS.containerdSocket} -H 'content-type: application/grpc' ` +
                `-H 'te: trailers' --data-binary @/tmp/pull.req -D /tmp/pull.head -o /tmp/pull.resp ` +
                `http://localhost/runtime.v1.ImageService/PullImage; cat /tmp/pull.head; ` +
                `echo body=$(base64 -w0 /tmp/pull.resp)`,
              { stdin: btoa(String.fromCharCode(...grpcFrame(pullImageRequest(pauseRef)))) },
            );
            assert.match(cri.stdout, /^grpc-status: 0\s*$/m, cri.stdout);
            const body = Uint8Array.from(
              atob(cri.stdout.match(/^body=(\S*)$/m)?.[1] ?? ""),
              (c) => c.charCodeAt(0),
            );
            const imageRef = new TextDecoder().decode(body.subarray(7));
            assert.match(imageRef, /^sha256:[0-9a-f]{64}$/, "PullImageResponse.image_ref");
            const criListed = await other.run(`ctr -n k8s.io images ls`);
            const criLine = criListed.stdout.split("\n").find((l) => l.startsWith(`${pauseRef} `));
            assert.ok(criLine?.includes(pause.hash), criListed.stdout);
            assert.ok(served.includes(pause.hash.slice(7)), "the CRI pull reached dtk's registry");
            console.error(
              `[modern] CRI PullImage ${pauseRef}: image ${imageRef}, ${
                served.length - before
              } object(s) served`,
            );
          } finally {
            await server.shutdown(1000);
          }
        },
      );

      // No registry here: the harness's busybox image, imported.
      const images = join(work, "images.tar");
      await writeTestImages(images, { runner });
      for (const n of nodes.nodes) {
        await n.copyTo([images], "/root/images.tar");
        await n.run("ctr -n k8s.io images import /root/images.tar >/dev/null", {
          timeoutMs: 60_000,
        });
      }

      await t.step("runc 1.3.6 runs a container with the systemd cgroup driver", async () => {
        const runc = await node.run("runc --version");
        assert.match(runc.stdout, /^runc version 1\.3\.6/m);
        const run = await node.run(
          `ctr -n k8s.io run --rm --runc-systemd-cgroup --cgroup system.slice:dtktest:one ` +
            `${BOX_IMAGE} dtk-modern-1 ` +
            `sh -c 'echo hello-from-runc; cat /proc/self/cgroup'`,
          { timeoutMs: 60_000, check: false },
        );
        assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
        assert.match(run.stdout, /hello-from-runc/);
        // systemd made the cgroup: runc's transient scope `<prefix>-<name>.scope` in the slice.
        assert.match(run.stdout, /system\.slice\/dtktest-one\.scope/, run.stdout);
      });

      await t.step(
        "ctr run --cni: dtk's bridge config gives an address in the node's pod CIDR, reaching a container on the other node",
        async () => {
          const [a, b] = [nodes.at(0), nodes.at(1)];
          // dtk leaves pod routes to the CNI add-on; the test routes the two pod CIDRs itself.
          await a.run(`ip route replace ${rnodes[1]!.podCidr} via ${b.ip}`);
          await b.run(`ip route replace ${rnodes[0]!.podCidr} via ${a.ip}`);
          await b.run(
            `ctr -n k8s.io run -d --cni --runc-systemd-cgroup --cgroup system.slice:dtktest:web ` +
              `${BOX_IMAGE} dtk-web ` +
              `sh -c 'busybox mkdir -p /w && echo pong-from-$(hostname) >/w/index.html && exec busybox httpd -f -p 8080 -h /w'`,
            { timeoutMs: 60_000 },
          );
          let last = "";
          const addr = await waitFor("the server container's address", async () => {
            const r = await b.run(
              "ctr -n k8s.io task exec --exec-id ip dtk-web busybox ip -4 addr show eth0",
              { check: false },
            );
            last = r.stdout + r.stderr;
            return r.stdout.match(/inet (10\.200\.1\.\d+)\//)?.[1];
          }, { timeoutMs: 30_000, intervalMs: 500 }).catch((e) => {
            throw new Error(`${e.message}; last output: ${last}`);
          });
          // busybox nc, not wget: the image's busybox wget crashes (SIGSEGV) before connecting.
          const client = await a.run(
            `ctr -n k8s.io run --rm --cni --runc-systemd-cgroup --cgroup system.slice:dtktest:client ` +
              `${BOX_IMAGE} dtk-client ` +
              `sh -c 'busybox ip -4 addr show eth0; busybox ping -c 1 -W 3 ${addr}; echo ping=$?; printf "GET / HTTP/1.0\\r\\n\\r\\n" | busybox nc -w 5 ${addr} 8080; echo nc=$?'`,
            { timeoutMs: 60_000, check: false },
          );
          assert.equal(client.code, 0, `${client.stdout}\n${client.stderr}`);
          assert.match(client.stdout, /inet 10\.200\.0\.\d+\/24/, "an address of vm1's pod CIDR");
          console.error(`[modern] client container on ${a.name}:\n${client.stdout.trim()}`);
          assert.match(client.stdout, /^ping=0$/m, "ICMP to the other node's container");
          assert.match(client.stdout, /pong-from-\S+\s+nc=0$/m, "TCP to its HTTP server");
          await b.run("ctr -n k8s.io task kill -s KILL dtk-web", { check: false });
        },
      );
    } finally {
      await nodes.stop();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
);

modernTest(
  "modern: etcd 3.5.30, 3 mTLS members on dtk's flags, pass dtk's health gate with etcdctl 3.5",
  async () => {
    const work = await Deno.makeTempDir({ prefix: "dtk-modern-etcd-" });
    const ctx = await setUp(work);
    await using _mirror = ctx.mirror;
    const nodes = await startNodes(3);
    try {
      const ca = await makeTestCa(join(work, "pki"));
      const rnodes: RenderNode[] = nodes.nodes.map((n, i) => ({
        name: n.name,
        ip: n.ip,
        podCidr: `10.200.${i}.0/24`,
      }));
      const cluster = rnodes.map((n) => `${n.name}=https://${n.ip}:2380`).join(",");
      const started = performance.now();
      await Promise.all(nodes.nodes.map(async (node, i) => {
        // dtk renders etcd for its one controller: the step of each node's own render.
        const input = { config: ctx.config, nodes: [rnodes[i]!], node: node.name };
        const step = renderStep("etcd", input);
        const unit = step.files.find((f) => f.path.endsWith("etcd.service"))!;
        const own = flagArgs(etcdFlags(rnodes[i]!)).join(" ");
        assert.ok(unit.content.includes("--initial-cluster="), "dtk's unit names the cluster");
        // The only change: three members instead of one.
        const members = own.replace(/--initial-cluster=\S+/, `--initial-cluster=${cluster}`);
        const content = unit.content.replace(
          /^ExecStart=[\s\S]*?(?=^\S)/m,
          `ExecStart=/usr/local/bin/etcd ${members}\n`,
        );
        assert.ok(content.includes(cluster), content);
        const server = await ca.issue(`kubernetes-${node.name}`, {
          cn: "kubernetes",
          ips: [node.ip, "127.0.0.1"],
        });
        await node.run(`mkdir -p ${NODE_PATHS.etcdConfigDir}`);
        await node.copyTo([ca.cert], NODE_PATHS.etcdCaCert);
        await node.copyTo([server.cert], NODE_PATHS.etcdCert);
        await node.copyTo([server.key], NODE_PATHS.etcdKey);
        await applyStep(node, { ...step, files: [{ ...unit, content }] }, ctx.source);
        await node.run(
          "systemctl daemon-reload && systemctl enable etcd && systemctl start --no-block etcd",
        );
      }));
      for (const node of nodes.nodes) {
        const gate = await waitFor(`dtk's etcd gate on ${node.name}`, async () => {
          const r = await node.run(etcdGateCommand(ctx.set.versions.etcd), {
            check: false,
            timeoutMs: 15_000,
          });
          return r.success && r.stdout.includes(node.name) ? r : undefined;
        }, { timeoutMs: 90_000, intervalMs: 1000 });
        for (const n of rnodes) assert.ok(gate.stdout.includes(n.name), gate.stdout);
        assert.equal(gate.stdout.trim().split("\n").length, 3);
      }
      console.error(
        `[modern] etcd ${ctx.set.versions.etcd}: 3 members pass the gate ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s after install`,
      );
      // The path dtk's etcd static pod probes for liveness on this version (/livez from 3.5.11).
      const pod = renderStep("etcd", {
        config: { ...ctx.config, k8s: { ...ctx.config.k8s, containerizedCplane: ["etcd"] } },
        nodes: [rnodes[0]!],
        node: nodes.at(0).name,
      }).files.find((f) => f.path.endsWith("etcd.yaml"))!.content;
      const probe = pod.match(/path: (\S+)/)?.[1] ?? "";
      assert.equal(probe, "/livez");
      const livez = await nodes.at(0).run(`curl -sS --max-time 5 http://127.0.0.1:2381${probe}`);
      assert.equal(livez.stdout.trim(), "ok");
      const version = await nodes.at(0).run("etcd --version && etcdctl version");
      assert.match(version.stdout, /etcd Version: 3\.5\.30/);
      assert.match(version.stdout, /etcdctl version: 3\.5\.30/);
      const health = await nodes.at(0).run(
        etcdGateCommand(ctx.set.versions.etcd).replace(
          "--endpoints=https://127.0.0.1:2379",
          `--endpoints=${rnodes.map((n) => `https://${n.ip}:2379`).join(",")}`,
        ).replace("member list", "endpoint health"),
      );
      assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);
      // Without a client certificate the members refuse.
      const anonymous = await nodes.at(0).run(
        `ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=${NODE_PATHS.etcdCaCert} ` +
          "--dial-timeout=2s --command-timeout=3s member list",
        { check: false, timeoutMs: 20_000 },
      );
      assert.notEqual(anonymous.code, 0);
    } finally {
      await nodes.stop();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
);

const k8s = k8sStatus();

Deno.test({
  name: reason || !k8s.ok
    ? `modern: kubectl 1.36.4 with dtk's admin kubeconfig, etcd 3.5.30 on dtk's unit, the audit policy records (skipped: ${
      reason || k8s.reason
    })`
    : "modern: kubectl 1.36.4 with dtk's admin kubeconfig, etcd 3.5.30 on dtk's unit, the audit policy records",
  ignore: reason !== "" || !k8s.ok,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "dtk-modern-kubectl-" });
    const modernSet = await loadModernSet();
    // No apiserver newer than 1.20.2 can be had here: the 1.20 tier's build serves as the server.
    const oldSet = await prepareArtifacts({ runner });
    await using modernMirror = startArtifactMirror(modernSet);
    await using oldMirror = startArtifactMirror(oldSet);
    const lock = testLock(modernSet, { mirrorUrl: modernMirror.url });
    lock.artifacts["kube-apiserver"] = testLock(oldSet, { mirrorUrl: oldMirror.url })
      .artifacts["kube-apiserver"]!;
    const storeDir = join(work, "store");
    await ensureLock(lock, { store: openStore(storeDir) });
    const source: BinarySource = { lock, storeDir, cacheDir: join(work, "unpacked"), runner };
    const nodes = await startNodes(1);
    try {
      const node = nodes.at(0);
      const base = defaultConfig({ dir: work });
      const config = {
        ...base,
        cluster: { name: "modern" },
        versions: { ...base.versions, kubernetes: "v1.20.2", etcd: modernSet.versions.etcd },
        vms: [{ ...base.vms[0]!, name: node.name }],
      };
      const pki = await ensurePki(config, [{ name: node.name, ip: node.ip }]);
      const rnodes: RenderNode[] = [{ name: node.name, ip: node.ip, podCidr: "10.200.0.0/24" }];
      for (const step of ["etcd", "kube-apiserver"] as StepName[]) {
        const files = renderStep(step, { config, nodes: rnodes, node: node.name });
        for (const p of files.pki) {
          const local = pkiSourceFile(pki.layout, p.source);
          await node.run(`mkdir -p "$(dirname '${p.path}')"`);
          await node.copyTo([local], p.path);
          await node.run(`chmod ${p.mode.toString(8)} '${p.path}'`);
        }
        await applyStep(node, files, source);
        await node.run(
          `systemctl daemon-reload && systemctl enable ${step} && systemctl start --no-block ${step}`,
        );
        if (step === "etcd") {
          await waitFor("dtk's etcd gate", async () => {
            const r = await node.run(etcdGateCommand(config.versions.etcd), {
              check: false,
              timeoutMs: 15_000,
            });
            return r.success && r.stdout.includes(node.name) ? r : undefined;
          }, { timeoutMs: 60_000, intervalMs: 1000 });
        }
      }
      const kubectl = join(work, "kubectl");
      await Deno.copyFile(artifactPath(storeDir, lock.artifacts["kubectl"]!), kubectl);
      await Deno.chmod(kubectl, 0o755);
      const kc = ["--kubeconfig", pki.layout.kubeconfig("admin")];
      await waitFor("kube-apiserver /livez through kubectl", async () => {
        const r = await runner.run([kubectl, ...kc, "get", "--raw", "/livez"], {
          check: false,
          timeoutMs: 15_000,
        });
        return r.success && r.stdout.trim() === "ok" ? r : undefined;
      }, { timeoutMs: 90_000, intervalMs: 1000 });
      const version = JSON.parse(
        (await runner.run([kubectl, ...kc, "version", "-o", "json"], { check: false })).stdout,
      );
      assert.equal(version.clientVersion.gitVersion, "v1.36.4");
      assert.equal(version.serverVersion.gitVersion, "v1.20.2");
      const namespaces = await runner.run([kubectl, ...kc, "get", "namespaces", "-o", "name"]);
      assert.match(namespaces.stdout, /^namespace\/kube-system$/m);
      const canI = await runner.run([kubectl, ...kc, "auth", "can-i", "*", "*"]);
      assert.equal(canI.stdout.trim(), "yes");
      const who = await runner.run([kubectl, ...kc, "get", "--raw", "/api/v1/namespaces/default"]);
      assert.equal(JSON.parse(who.stdout).metadata.name, "default");

      // The policy dtk renders: metadata events of the admin's requests, no probe noise.
      const audit = await waitFor("the admin's list of namespaces in the audit log", async () => {
        const r = await node.run(`cat ${NODE_PATHS.auditLog}`, { check: false });
        const events = r.stdout.trim().split("\n").filter((l) => l !== "").map((l) =>
          JSON.parse(l)
        );
        return events.some((e) => e.user?.username === "admin" && e.verb === "list")
          ? events
          : undefined;
      }, { timeoutMs: 30_000, intervalMs: 1000 });
      const list = audit.find((e) => e.user?.username === "admin" && e.verb === "list")!;
      assert.equal(list.apiVersion, "audit.k8s.io/v1");
      assert.equal(list.level, "Metadata");
      assert.equal(list.objectRef.resource, "namespaces");
      assert.equal(list.requestObject, undefined, "no bodies");
      assert.ok(!audit.some((e) => String(e.requestURI).startsWith("/livez")), "probes left out");
      assert.ok(!audit.some((e) => e.stage === "RequestReceived"), "RequestReceived omitted");
      console.error(
        `[modern] audit log: ${audit.length} events, kubectl ${version.clientVersion.gitVersion}`,
      );
    } finally {
      await nodes.stop();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
