/**
 * `dtk cluster create` end to end, as a user runs it (the real `main.ts` in a subprocess), on the
 * real-node harness: 3 systemd-nspawn nodes with real systemd and sshd, the test driver, and the
 * harness's real artifacts (Debian's etcd, containerd, runc and CNI plugins; Kubernetes 1.20.2
 * built from Debian's source package) served by a loopback mirror and pinned in a test lock.
 *
 * Runs in the e2e tier (`DTK_E2E=1`, `deno task e2e`) when the harness can run here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../../lib/config/parse.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import {
  BOX_IMAGE,
  createNspawnDriver,
  prepareArtifacts,
  startArtifactMirror,
  sweepStale,
  writeTestImages,
  writeTestLock,
} from "../harness/mod.ts";
import {
  clusterSkipReason,
  type CommandRun,
  configzCodes,
  execOnNode,
  NSPAWN_RENDER_OVERRIDES,
  runDtk,
} from "./_cluster.ts";
import { KubeClient, leaseHolder, nodeReadiness } from "../../lib/kube/mod.ts";
import { StateStore } from "../../lib/pipeline/mod.ts";

const skip = clusterSkipReason();
/**
 * Not in the nodes' order: an allocator that hands out the cluster CIDR's /24s as nodes
 * register (the controller-manager's --allocate-node-cidrs) would disagree with them.
 */
const POD_CIDRS: Record<string, string> = {
  vm1: "10.200.2.0/24",
  vm2: "10.200.0.0/24",
  vm3: "10.200.1.0/24",
};

function dtk(
  args: string[],
  options: { env: Record<string, string>; interruptWhen?: RegExp },
): Promise<CommandRun> {
  return runDtk(args, { ...options, echo: "live" });
}

Deno.test({
  name: `e2e: cluster create on 3 real nodes${skip ? ` (skipped: ${skip})` : ""}`,
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-e2e-create-" });
  const cluster = `e2e${crypto.randomUUID().slice(0, 6)}`;
  const set = await prepareArtifacts();
  await using mirror = startArtifactMirror(set);
  await writeTestLock(join(dir, "dtk.lock"), set, { mirrorUrl: mirror.url });
  const baseConfig = {
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
    vms: ["vm1", "vm2", "vm3"].map((name) => ({
      name,
      cpu: 2,
      mem: 2048,
      "pod-cidr": POD_CIDRS[name],
    })),
    "test-nspawn": {
      "state-dir": join(dir, "nodes"),
      "owner-pid": Deno.pid,
      "containers": true,
      // Nodes are containers: no cgroup delegation, no negative OOM scores (testing.md).
      "renderOverrides": NSPAWN_RENDER_OVERRIDES,
      "timeouts": { nodesReady: 240_000 },
    },
  };
  const configPath = join(dir, "config.yaml");
  const writeConfig = (extra: Record<string, unknown> = {}) =>
    Deno.writeTextFile(
      configPath,
      stringify({
        ...baseConfig,
        "test-nspawn": { ...baseConfig["test-nspawn"], ...extra },
      }),
    );
  await writeConfig();
  // No registry here: the sandbox (pause) and test images come from images/, which dtk preloads.
  await writeTestImages(join(dir, "images", "box.tar"));
  const env = { DTK_STORE: join(dir, "store") };
  const create = ["cluster", "create", "--config", configPath, "--frozen", "--jobs", "4"];
  const generated = join(dir, "generated", cluster);
  const kubeconfig = join(generated, "kubeconfig", "admin.kubeconfig");
  const onNode = (node: string, command: string) =>
    execOnNode(generated, node, { cluster: cluster, command, timeoutMs: 30_000 });

  try {
    await t.step("Ctrl-C in the middle stops cleanly (exit 130)", async () => {
      const r = await dtk(create, { env, interruptWhen: /node\/vm\d\/runtime/ });
      assert.equal(r.code, 130, r.stderr.slice(-2000));
      assert.match(r.stderr, /Interrupted/);
      const state = await StateStore.open(join(generated, "state.json"), cluster);
      assert.ok(state.node("vm1"), "the nodes found before Ctrl-C are recorded");
      assert.equal(state.step("gates/nodes-ready"), undefined);
    });

    await t.step("a failure injected at a step names it; the re-run converges", async () => {
      await writeConfig({ failAt: "node/vm2/kubelet" });
      const failed = await dtk(create, { env });
      assert.equal(failed.code, 1, failed.stderr.slice(-2000));
      assert.match(
        failed.stderr,
        /Step "node\/vm2\/kubelet" on node "vm2" failed: injected failure/,
      );
      await writeConfig();
      const r = await dtk(create, { env });
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      assert.match(r.stdout, /Cluster "e2e\w+" is ready/);
      assert.match(r.stdout, new RegExp(`export KUBECONFIG=${kubeconfig.replaceAll("/", "\\/")}`));
    });

    const kube = await KubeClient.fromKubeconfigFile(kubeconfig);
    try {
      await t.step("the control plane answers dtk's admin kubeconfig", async () => {
        const kubectl = await new Deno.Command("kubectl", {
          args: ["--kubeconfig", kubeconfig, "get", "--raw", "/livez"],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(new TextDecoder().decode(kubectl.stdout).trim(), "ok");
        assert.ok(await leaseHolder(kube, "kube-controller-manager"));
        assert.ok(await leaseHolder(kube, "kube-scheduler"));
        const nodes = await nodeReadiness(kube);
        assert.deepEqual(nodes.ready.sort(), ["vm1", "vm2", "vm3"]);
        const vm1 = await kube.getJson<{ metadata: { labels: Record<string, string> } }>(
          "/api/v1/nodes/vm1",
        );
        assert.equal(vm1.metadata.labels["node-role.kubernetes.io/controller"], "");
      });

      await t.step("every node's spec.podCIDR is its vms[].pod-cidr", async () => {
        const list = await kube.getJson<{
          items: { metadata: { name: string }; spec: { podCIDR?: string; podCIDRs?: string[] } }[];
        }>("/api/v1/nodes");
        const got = Object.fromEntries(
          list.items.map((n) => [n.metadata.name, [n.spec.podCIDR, n.spec.podCIDRs]]),
        );
        assert.deepEqual(
          got,
          Object.fromEntries(Object.entries(POD_CIDRS).map(([n, c]) => [n, [c, [c]]])),
        );
      });

      await t.step(
        "controller-manager and scheduler authenticate the admin certificate on their secure ports",
        async () => {
          // Without --authentication-kubeconfig and --authorization-kubeconfig both answer 403
          // to everything outside --authorization-always-allow-paths, /configz among it.
          const r = await configzCodes(generated, "vm1", { cluster, kubeconfig });
          assert.equal(r.codes, "200\n200", r.stderr);
        },
      );

      await t.step("every file, mode and unit is where the spec puts it", async () => {
        for (const node of ["vm1", "vm2", "vm3"]) {
          const r = await onNode(
            node,
            "stat -c '%n %a' /usr/local/bin/kubelet /usr/local/bin/runc /bin/containerd " +
              "/etc/containerd/config.toml /var/lib/kubelet/kubelet-key.pem /etc/cni/net.d/20-containerd-net.conflist" +
              " && systemctl is-active containerd kubelet && grep -c 'managed by dtk' /etc/hosts",
          );
          assert.match(r.stdout, /\/usr\/local\/bin\/kubelet 755/);
          assert.match(r.stdout, /\/var\/lib\/kubelet\/kubelet-key.pem 600/);
          assert.match(r.stdout, /^active\nactive\n1$/m);
        }
        const cp = await onNode(
          "vm1",
          "systemctl is-active etcd kube-apiserver kube-controller-manager kube-scheduler && stat -c '%a' /var/lib/kubernetes/ca-key.pem /etc/kubernetes/auth/static-token.csv",
        );
        assert.equal(cp.stdout.trim(), "active\nactive\nactive\nactive\n600\n600");
      });
    } finally {
      kube.close();
    }

    await t.step("a pod from a preloaded image runs; logs and exec reach it", async () => {
      const kubectl = async (args: string[], stdin?: string) => {
        const child = new Deno.Command("kubectl", {
          args: ["--kubeconfig", kubeconfig, ...args],
          stdin: stdin === undefined ? "null" : "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        if (stdin !== undefined) {
          const w = child.stdin.getWriter();
          await w.write(new TextEncoder().encode(stdin));
          await w.close();
        }
        const out = await child.output();
        const d = new TextDecoder();
        return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
      };
      const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "box", namespace: "default" },
        spec: {
          nodeName: "vm2",
          automountServiceAccountToken: false,
          containers: [{ name: "box", image: BOX_IMAGE, imagePullPolicy: "Never" }],
        },
      };
      // cluster create waits for the default ServiceAccount (admission refuses pods without it).
      const sa = await kubectl(["get", "serviceaccount", "default", "-n", "default", "-o", "name"]);
      assert.equal(sa.code, 0, sa.stderr);
      const created = await kubectl(["apply", "-f", "-"], JSON.stringify(pod));
      assert.equal(created.code, 0, created.stderr);
      const waited = await kubectl([
        "wait",
        "pod/box",
        "--for=condition=Ready",
        "--timeout=120s",
      ]);
      const describe = waited.code === 0 ? "" : (await kubectl(["describe", "pod", "box"])).stdout;
      assert.equal(waited.code, 0, `${waited.stderr}\n${describe}`);
      const logs = await kubectl(["logs", "box"]);
      assert.match(logs.stdout, /hello-from-a-dtk-node/, logs.stderr);
      const exec = await kubectl(["exec", "box", "--", "hostname"]);
      assert.equal(exec.stdout.trim(), "box", exec.stderr);
      const ip = await kubectl(["get", "pod", "box", "-o", "jsonpath={.status.podIP}"]);
      assert.match(ip.stdout, /^10\.200\.0\.\d+$/, "the pod IP comes from vm2's pod CIDR");
      await kubectl(["delete", "pod", "box", "--wait=false"]);
    });

    await t.step("a second run changes nothing", async () => {
      const r = await dtk([...create, "--json"], { env });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      const report = JSON.parse(r.stdout) as { ran: string[]; skipped: string[] };
      // Steps that change nodes are skipped; only the cheap, idempotent checks run again.
      const changing = report.ran.filter((id) =>
        /\/(prep|runtime|kubelet)$|^control-plane\/|^gates\/labels$/.test(id)
      );
      assert.deepEqual(changing, []);
      assert.ok(report.skipped.includes("control-plane/kube-apiserver"));
    });

    await t.step("a worker deleted behind dtk's back is re-created and set up again", async () => {
      const { config } = parseConfig(await Deno.readTextFile(configPath), {
        file: configPath,
        dir,
        allowTestDrivers: true,
      });
      const driver = createNspawnDriver(config, { runner: new LocalRunner() });
      assert.equal(await driver.delete("vm3", { timeoutMs: 60_000 }), true);
      const r = await dtk([...create, "--json"], { env });
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      const report = JSON.parse(r.stdout) as { ran: string[]; skipped: string[] };
      for (const id of ["vm/vm3", "node/vm3/runtime", "node/vm3/kubelet", "gates/nodes-ready"]) {
        assert.ok(report.ran.includes(id), `${id} did not run again: ${report.ran.join(", ")}`);
      }
      assert.ok(report.skipped.includes("node/vm2/kubelet"));
      assert.ok(report.skipped.includes("control-plane/etcd"));
    });

    await t.step("dtk verify: clean, then each tampered file reported", async () => {
      const clean = await dtk(["verify", "--config", configPath], { env });
      assert.equal(clean.code, 0, clean.stderr.slice(-2000) + clean.stdout.slice(-2000));
      assert.match(clean.stdout, /matches the lock and the config/);
      await Deno.writeTextFile(join(dir, "verify-clean.txt"), clean.stdout);
      // The kubelet runs: a copy is changed and renamed over it ("text file busy" otherwise).
      await onNode(
        "vm3",
        "cp /usr/local/bin/kubelet /usr/local/bin/.k && printf x >> /usr/local/bin/.k && mv /usr/local/bin/.k /usr/local/bin/kubelet",
      );
      await onNode("vm1", "sed -i 's/--v=2/--v=9/' /etc/systemd/system/kube-scheduler.service");
      await onNode(
        "vm2",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=intruder " +
          "-keyout /tmp/k.pem -out /var/lib/kubelet/kubelet.pem -days 1 2>/dev/null",
      );
      const tampered = await dtk(["verify", "--config", configPath, "--json"], { env });
      assert.equal(tampered.code, 1, tampered.stderr.slice(-2000));
      const report = JSON.parse(tampered.stdout) as {
        nodes: { node: string; items: { item: string; status: string }[] }[];
      };
      const drifted = report.nodes.flatMap((n) =>
        n.items.filter((i) => i.status !== "ok").map((i) => `${n.node} ${i.item} ${i.status}`)
      );
      assert.deepEqual(drifted.sort(), [
        "vm1 /etc/systemd/system/kube-scheduler.service drifted",
        "vm2 /var/lib/kubelet/kubelet.pem drifted",
        "vm3 /usr/local/bin/kubelet drifted",
      ]);
      const text = await dtk(["verify", "--config", configPath], { env });
      await Deno.writeTextFile(join(dir, "verify-tampered.txt"), text.stdout + text.stderr);
      if (Deno.env.get("DTK_E2E_KEEP_OUTPUT")) {
        await Deno.copyFile(
          join(dir, "verify-clean.txt"),
          Deno.env.get("DTK_E2E_KEEP_OUTPUT") + ".clean",
        );
        await Deno.copyFile(
          join(dir, "verify-tampered.txt"),
          Deno.env.get("DTK_E2E_KEEP_OUTPUT") + ".tampered",
        );
      }
    });

    await t.step("a node whose host key changed is refused", async () => {
      // The connection may drop as sshd restarts.
      await onNode(
        "vm2",
        "rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && (systemctl restart ssh || systemctl restart sshd)",
      ).catch(() => {});
      const r = await dtk(create, { env });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /vm2/);
      assert.match(r.stderr, /host key/i);
    });
  } finally {
    await dtk(["cluster", "delete", "--config", configPath, "--template"], { env }).catch(() => {});
    await sweepStale().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
