/**
 * The `prep` checks on a real harness node, as a user meets them (the test entry of dtk in a
 * subprocess, one systemd-nspawn node): a node whose /etc/resolv.conf names only a local stub
 * resolver stops `cluster create` at prep, before anything is installed, with the hint to use
 * systemd-resolved's upstream list; with `k8s.resolv-conf` set as the hint says, prep passes.
 *
 * Runs in the e2e tier (`DTK_E2E=1`, `deno task e2e`) when the harness can run here; start it
 * under `flock /tmp/dtk-harness.lock`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import {
  prepareArtifacts,
  startArtifactMirror,
  sweepStale,
  writeTestLock,
} from "../harness/mod.ts";
import {
  clusterSkipReason,
  type CommandRun,
  execOnNode,
  NSPAWN_RENDER_OVERRIDES,
  runDtk,
} from "./_cluster.ts";
import { NODE_PATHS } from "../../lib/render/mod.ts";

const skip = clusterSkipReason();

function dtk(args: string[], env: Record<string, string>): Promise<CommandRun> {
  return runDtk(args, { env });
}

Deno.test({
  name: `e2e: prep stops on a node whose resolv.conf names only a stub resolver${
    skip ? ` (skipped: ${skip})` : ""
  }`,
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-e2e-prep-" });
  const cluster = `e2e${crypto.randomUUID().slice(0, 6)}`;
  const set = await prepareArtifacts();
  await using mirror = startArtifactMirror(set);
  await writeTestLock(join(dir, "dtk.lock"), set, { mirrorUrl: mirror.url });
  // What a guest with systemd-resolved has: the stub in /etc/resolv.conf, the upstream servers
  // in /run/systemd/resolve/resolv.conf (a documentation address: nothing is ever sent to it).
  const stub =
    "printf 'nameserver 127.0.0.53\\noptions edns0 trust-ad\\nsearch .\\n' > /etc/resolv.conf" +
    " && mkdir -p /run/systemd/resolve" +
    " && printf 'nameserver 192.0.2.53\\n' > /run/systemd/resolve/resolv.conf";
  const configPath = join(dir, "config.yaml");
  const writeConfig = (k8s: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    Deno.writeTextFile(
      configPath,
      stringify({
        cluster: { name: cluster },
        virt: "test-nspawn",
        addons: [],
        k8s: { "kube-proxy": false, ...k8s },
        versions: {
          "kubernetes": set.versions.kubernetes,
          "etcd": set.versions.etcd,
          "containerd": set.versions.containerd,
          "runc": set.versions.runc,
          "crictl": set.versions.crictl,
          "cni-plugins": set.versions.cniPlugins,
        },
        vm: { "create-template": true, "template-vmname": `${cluster}-tpl` },
        vms: [{ name: "p1", cpu: 2, mem: 2048 }],
        "test-nspawn": {
          "state-dir": join(dir, "nodes"),
          "owner-pid": Deno.pid,
          "containers": true,
          "renderOverrides": NSPAWN_RENDER_OVERRIDES,
          // Run on the node just before its prep step: the guest as it boots.
          "failCommand": { step: "node/p1/prep", command: stub },
          ...extra,
        },
      }),
    );
  const env = { DTK_STORE: join(dir, "store") };
  const create = ["cluster", "create", "--config", configPath, "--frozen", "--jobs", "4"];
  const generated = join(dir, "generated", cluster);
  try {
    await t.step(
      "create stops at prep, naming the node, the file, the server and the fix",
      async () => {
        await writeConfig({});
        const r = await dtk(create, env);
        assert.equal(r.code, 1, r.stderr.slice(-3000));
        assert.match(
          r.stderr,
          /Step "node\/p1\/prep" on node "p1" failed: Node "p1" lists only loopback name servers in "\/etc\/resolv\.conf" \(k8s\.resolv-conf\): "127\.0\.0\.53"; CoreDNS would forward to itself and crash-loop/,
        );
        assert.match(
          r.stderr,
          /k8s\.resolv-conf: \/run\/systemd\/resolve\/resolv\.conf \(systemd-resolved's upstream servers on "p1": "192\.0\.2\.53"\)/,
        );
        // Nothing of prep's own was done: no sysctl file, no runtime.
        const onNode = await execOnNode(generated, "p1", {
          cluster,
          command: `test -e ${NODE_PATHS.sysctl} && echo present || echo absent`,
          timeoutMs: 30_000,
        });
        assert.equal(onNode.stdout.trim(), "absent");
      },
    );

    await t.step("with k8s.resolv-conf set as the hint says, prep passes", async () => {
      // Stop right after prep: the runtime and everything after it are not this test's.
      await writeConfig({ "resolv-conf": "/run/systemd/resolve/resolv.conf" }, {
        failAt: "node/p1/runtime",
      });
      const r = await dtk(create, env);
      assert.equal(r.code, 1, r.stderr.slice(-3000));
      assert.match(r.stderr, /Step "node\/p1\/runtime" on node "p1" failed: injected failure/);
      assert.doesNotMatch(r.stderr, /loopback name servers/);
      const onNode = await execOnNode(generated, "p1", {
        cluster,
        command: `test -e ${NODE_PATHS.sysctl} && echo present || echo absent`,
        timeoutMs: 30_000,
      });
      assert.equal(onNode.stdout.trim(), "present");
    });
  } finally {
    await dtk(["cluster", "delete", "--config", configPath, "--template"], env).catch(() => {});
    await sweepStale().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
