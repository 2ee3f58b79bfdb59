/**
 * The lock's images end to end on the real-node harness: no `images/` preload and no upstream
 * registry anywhere (the sandbox and test images exist only in dtk's store, locked as
 * `kind: image`). `dtk cluster create --offline` serves them to the nodes' real containerd
 * through dtk's registry and pins them; a Pod pulls the test image by digest through
 * `dtk registry` (image pull policy Always); `dtk verify` is clean, then reports a container
 * started from an image that is not in the lock.
 *
 * Runs in the e2e tier (`DTK_E2E=1`) when the harness can run here; under the harness lock.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../../lib/config/parse.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import {
  createNspawnDriver,
  prepareArtifacts,
  startArtifactMirror,
  sweepStale,
  writeTestLock,
} from "../harness/mod.ts";
import {
  clusterSkipReason,
  DTK_TEST_MAIN,
  execOnNode,
  nodeRemote,
  NSPAWN_RENDER_OVERRIDES,
  runCommand,
  runDtk,
} from "./_cluster.ts";
import { imageArtifacts, seedStore, testLayout } from "../registry/_images.ts";

const MAIN = DTK_TEST_MAIN;
const skip = clusterSkipReason();
const decoder = new TextDecoder();

/** An OCI layout tar of an image the lock does not know: the box image with another config. */
async function unlockedImageTar(layout: string, dir: string): Promise<string> {
  const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json")));
  const boxDesc = index.manifests.find((m: { annotations: Record<string, string> }) =>
    m.annotations["io.containerd.image.name"] === "dtk.test/box:1"
  );
  const blobs = join(layout, "blobs", "sha256");
  const manifest = JSON.parse(await Deno.readTextFile(join(blobs, boxDesc.digest.slice(7))));
  const config = JSON.parse(await Deno.readTextFile(join(blobs, manifest.config.digest.slice(7))));
  config.config.Env = ["UNLOCKED=1"];
  const put = async (value: unknown) => {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    const hex = createHash("sha256").update(bytes).digest("hex");
    await Deno.writeFile(join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  manifest.config = { ...manifest.config, ...await put(config) };
  const m = await put(manifest);
  index.manifests = [{
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    ...m,
    annotations: { "io.containerd.image.name": "dtk.test/unlocked:1" },
  }];
  await Deno.writeTextFile(join(layout, "index.json"), JSON.stringify(index));
  const tar = join(dir, "unlocked.tar");
  const r = await runCommand(["tar", "-C", layout, "-cf", tar, "."]);
  assert.equal(r.code, 0, r.stderr);
  return tar;
}

Deno.test({
  name: `e2e: locked images through dtk's registry, offline${skip ? ` (skipped: ${skip})` : ""}`,
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-e2e-images-" });
  const cluster = `img${crypto.randomUUID().slice(0, 6)}`;
  const set = await prepareArtifacts();
  await using mirror = startArtifactMirror(set);
  const lockPath = join(dir, "dtk.lock");
  const lock = await writeTestLock(lockPath, set, { mirrorUrl: mirror.url });
  const storeDir = join(dir, "store");
  const layout = await testLayout(dir);
  const images = await seedStore(storeDir, layout);
  await Deno.writeTextFile(
    lockPath,
    JSON.stringify(
      { ...lock, artifacts: { ...lock.artifacts, ...imageArtifacts(images) } },
      null,
      2,
    ) + "\n",
  );
  const box = images.find((i) => i.ref === "dtk.test/box:1")!;
  const pause = images.find((i) => i.ref === "registry.k8s.io/pause:3.10")!;
  const configPath = join(dir, "config.yaml");
  await Deno.writeTextFile(
    configPath,
    stringify({
      cluster: { name: cluster },
      virt: "test-nspawn",
      addons: [],
      k8s: { "kube-proxy": false },
      versions: {
        "kubernetes": set.versions.kubernetes,
        "etcd": set.versions.etcd,
        "containerd": set.versions.containerd,
        "runc": set.versions.runc,
        "crictl": set.versions.crictl,
        "cni-plugins": set.versions.cniPlugins,
      },
      vm: { "create-template": true, "template-vmname": `${cluster}-tpl` },
      vms: ["vm1", "vm2"].map((name) => ({ name, cpu: 2, mem: 2048 })),
      "test-nspawn": {
        "state-dir": join(dir, "nodes"),
        "owner-pid": Deno.pid,
        "containers": true,
        "renderOverrides": NSPAWN_RENDER_OVERRIDES,
        "timeouts": { nodesReady: 240_000 },
      },
    }),
  );
  const env = { DTK_STORE: storeDir };
  const dtk = (args: string[], echo = true) =>
    runDtk(args, echo ? { env, echo: "after" } : { env });
  const generated = join(dir, "generated", cluster);
  const kubeconfig = join(generated, "kubeconfig", "admin.kubeconfig");
  const kubectl = (args: string[], stdin?: string) =>
    runCommand(["kubectl", "--kubeconfig", kubeconfig, ...args], { stdin });
  const onNode = (node: string, command: string) =>
    execOnNode(generated, node, { cluster: cluster, command, timeoutMs: 60_000 });
  const ctr = "ctr -n k8s.io -a /run/containerd/containerd.sock";

  try {
    await t.step("cluster create --offline: Ready with images only from dtk's store", async () => {
      const r = await dtk(["cluster", "create", "--config", configPath, "--frozen", "--offline"]);
      assert.equal(r.code, 0, r.stderr.slice(-4000));
      assert.match(r.stderr, /serving 2 image\(s\) to the nodes at http:\/\/[\d.]+:5380 \(offline/);
      assert.match(r.stderr, /images\/pin/);
    });

    await t.step(
      "every node: hosts.toml at dtk's registry, both images present and pinned",
      async () => {
        for (const node of ["vm1", "vm2"]) {
          const hosts = await onNode(
            node,
            "cat /etc/containerd/certs.d/registry.k8s.io/hosts.toml",
          );
          assert.match(hosts.stdout, /^server = "http:\/\/[\d.]+:5380"$/m, hosts.stdout);
          const listed = await onNode(node, `${ctr} images ls`);
          for (const image of [box, pause]) {
            const line = listed.stdout.split("\n").find((l) => l.startsWith(`${image.ref} `));
            assert.ok(line, `${image.ref} on ${node}:\n${listed.stdout}`);
            assert.ok(line.includes(image.hash), line);
            assert.match(line, /io\.cri-containerd\.pinned=pinned/, line);
          }
        }
      },
    );

    await t.step("a pod pulls the test image by digest through dtk registry", async () => {
      const { config } = parseConfig(await Deno.readTextFile(configPath), {
        file: configPath,
        dir,
        allowTestDrivers: true,
      });
      const endpoint = await createNspawnDriver(config, { runner: new LocalRunner() })
        .hostEndpoint();
      assert.ok(endpoint);
      // Off the node first, so that only a pull through the registry can bring it back. Its
      // names are both normal ones (no import-<date>@…), so the CRI's cache follows the removal.
      await onNode("vm2", `${ctr} images rm ${box.ref} dtk.test/box@${box.hash}`);
      const gone = await onNode("vm2", `${ctr} images ls -q`);
      assert.doesNotMatch(gone.stdout, /dtk\.test\/box/);
      const registry = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          MAIN,
          "registry",
          "--config",
          configPath,
          "--listen",
          `${endpoint.listen}:5380`,
        ],
        env: { ...env, NO_COLOR: "1", DTK_TEST_DRIVERS: "1" },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = registry.stdout.getReader();
      const first = await reader.read();
      assert.match(decoder.decode(first.value), /^http:\/\/[\d.]+:5380/);
      try {
        const pod = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "box", namespace: "default" },
          spec: {
            nodeName: "vm2",
            automountServiceAccountToken: false,
            containers: [{
              name: "box",
              image: `dtk.test/box@${box.hash}`,
              imagePullPolicy: "Always",
            }],
          },
        };
        const created = await kubectl(["apply", "-f", "-"], JSON.stringify(pod));
        assert.equal(created.code, 0, created.stderr);
        const waited = await kubectl([
          "wait",
          "pod/box",
          "--for=condition=Ready",
          "--timeout=120s",
        ]);
        const why = waited.code === 0 ? "" : (await kubectl(["describe", "pod", "box"])).stdout;
        assert.equal(waited.code, 0, `${waited.stderr}\n${why}`);
        const logs = await kubectl(["logs", "box"]);
        assert.match(logs.stdout, /hello-from-a-dtk-node/);
        const back = await onNode("vm2", `${ctr} images ls`);
        assert.match(back.stdout, new RegExp(`dtk\\.test/box@${box.hash}`));
      } finally {
        registry.kill("SIGTERM");
        await registry.status;
        await reader.cancel().catch(() => {});
        await registry.stderr.cancel().catch(() => {});
      }
    });

    await t.step(
      "dtk verify: clean, then a container from an unlocked image is reported",
      async () => {
        const clean = await dtk(["verify", "--config", configPath]);
        assert.equal(clean.code, 0, clean.stdout.slice(-3000) + clean.stderr.slice(-2000));
        const tar = await unlockedImageTar(layout, dir);
        const remote = await nodeRemote(generated, "vm1", { cluster });
        try {
          const file = await Deno.open(tar);
          await remote.pipe(`${ctr} images import -`, file.readable, { timeoutMs: 120_000 });
        } finally {
          await remote.close();
        }
        const pod = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "unlocked", namespace: "default" },
          spec: {
            nodeName: "vm1",
            automountServiceAccountToken: false,
            containers: [{ name: "u", image: "dtk.test/unlocked:1", imagePullPolicy: "Never" }],
          },
        };
        const created = await kubectl(["apply", "-f", "-"], JSON.stringify(pod));
        assert.equal(created.code, 0, created.stderr);
        const waited = await kubectl([
          "wait",
          "pod/unlocked",
          "--for=condition=Ready",
          "--timeout=120s",
        ]);
        assert.equal(waited.code, 0, waited.stderr);
        const drifted = await dtk(["verify", "--config", configPath]);
        assert.equal(drifted.code, 1, drifted.stdout.slice(-3000));
        assert.match(
          drifted.stdout,
          /dtk\.test\/unlocked:1 \(sha256:[0-9a-f]{64}\) is not in the lock/,
        );
      },
    );
  } finally {
    await dtk(["cluster", "delete", "--config", configPath, "--template"], false).catch(() => {});
    await sweepStale().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
