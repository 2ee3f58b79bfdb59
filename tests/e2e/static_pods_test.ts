/**
 * `dtk cluster create` with the whole control plane as static pods (`k8s.containerized-cplane`:
 * etcd, kube-apiserver, kube-controller-manager, kube-scheduler) on the real-node harness: one
 * controller and one worker as systemd-nspawn nodes, the harness's artifacts from the loopback
 * mirror, and images of the components built here from the harness's own binaries
 * (`tests/harness/cplane_images.ts`), preloaded by dtk from `images/` because nothing can be
 * pulled. The kubelet, not systemd, runs the control plane; this checks that it does and that
 * what it runs works.
 *
 * Runs in the e2e tier (`DTK_E2E=1`, `deno task e2e`) when the harness can run here; under the
 * harness lock.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import {
  BOX_IMAGE,
  prepareArtifacts,
  startArtifactMirror,
  sweepStale,
  waitFor,
  writeTestImages,
  writeTestLock,
} from "../harness/mod.ts";
import { CPLANE_IMAGE_COMPONENTS, writeControlPlaneImages } from "../harness/cplane_images.ts";
import {
  clusterSkipReason,
  configzCodes,
  DTK_TEST_MAIN,
  execOnNode,
  NSPAWN_RENDER_OVERRIDES,
  runCommand,
} from "./_cluster.ts";
import { NODE_PATHS } from "../../lib/render/mod.ts";

const skip = clusterSkipReason();
const COMPONENTS = [...CPLANE_IMAGE_COMPONENTS];
const CTR = `ctr -n k8s.io -a ${NODE_PATHS.containerdSocket}`;

interface ProbedContainer {
  name: string;
  image: string;
  livenessProbe?: {
    httpGet: { host: string; path: string; port: number; scheme: "HTTP" | "HTTPS" };
  };
}

Deno.test({
  name: `e2e: the control plane as static pods${skip ? ` (skipped: ${skip})` : ""}`,
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const started = Date.now();
  const dir = await Deno.makeTempDir({ prefix: "dtk-e2e-static-pods-" });
  const cluster = `e2esp${crypto.randomUUID().slice(0, 5)}`;
  const set = await prepareArtifacts();
  await using mirror = startArtifactMirror(set);
  await writeTestLock(join(dir, "dtk.lock"), set, { mirrorUrl: mirror.url });
  const configPath = join(dir, "config.yaml");
  await Deno.writeTextFile(
    configPath,
    stringify({
      cluster: { name: cluster },
      virt: "test-nspawn",
      addons: [],
      k8s: { "kube-proxy": false, "containerized-cplane": COMPONENTS },
      versions: {
        "kubernetes": set.versions.kubernetes,
        "etcd": set.versions.etcd,
        "containerd": set.versions.containerd,
        "runc": set.versions.runc,
        "crictl": set.versions.crictl,
        "cni-plugins": set.versions.cniPlugins,
      },
      vm: { "create-template": true, "template-vmname": `${cluster}-tpl` },
      vms: [
        { name: "vm1", cpu: 2, mem: 2048, "pod-cidr": "10.200.0.0/24" },
        { name: "vm2", cpu: 2, mem: 2048, "pod-cidr": "10.200.1.0/24" },
      ],
      "test-nspawn": {
        "state-dir": join(dir, "nodes"),
        "owner-pid": Deno.pid,
        "containers": true,
        "renderOverrides": NSPAWN_RENDER_OVERRIDES,
        "timeouts": { nodesReady: 240_000 },
      },
    }),
  );
  // Nothing can be pulled: the sandbox, test and control-plane images come from images/.
  await writeTestImages(join(dir, "images", "box.tar"));
  const { refs } = await writeControlPlaneImages(join(dir, "images", "cplane.tar"), set);
  console.error(`static pods: images built at ${Math.round((Date.now() - started) / 1000)}s`);
  const env = { DTK_STORE: join(dir, "store") };
  const generated = join(dir, "generated", cluster);
  const kubeconfig = join(generated, "kubeconfig", "admin.kubeconfig");
  const onNode = (node: string, command: string) =>
    execOnNode(generated, node, { cluster, command, timeoutMs: 60_000 });
  const kubectl = (args: string[], stdin?: string) =>
    runCommand(
      ["kubectl", "--kubeconfig", kubeconfig, ...args],
      stdin === undefined ? {} : { stdin },
    );

  try {
    await t.step("cluster create succeeds", async () => {
      const r = await runCommand([
        Deno.execPath(),
        "run",
        "--allow-all",
        DTK_TEST_MAIN,
        "cluster",
        "create",
        "--config",
        configPath,
        "--frozen",
        "--jobs",
        "4",
      ], { env, echo: "after" });
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      assert.match(r.stdout, new RegExp(`Cluster "${cluster}" is ready`));
      console.error(`static pods: cluster ready at ${Math.round((Date.now() - started) / 1000)}s`);
    });

    await t.step("the controller runs the four as containers, none as a systemd unit", async () => {
      const containers = await onNode("vm1", `${CTR} containers ls`);
      const tasks = await onNode("vm1", `${CTR} tasks ls`);
      const running = new Set(
        tasks.stdout.split("\n").slice(1).map((l) => l.trim().split(/\s+/))
          .filter((cols) => cols[2] === "RUNNING").map((cols) => cols[0]),
      );
      const runningImages = containers.stdout.split("\n").slice(1)
        .map((l) => l.trim().split(/\s+/))
        .filter((cols) => running.has(cols[0]))
        .map((cols) => cols[1]);
      for (const component of COMPONENTS) {
        assert.ok(
          runningImages.includes(refs[component]),
          `no running container of ${refs[component]}:\n${containers.stdout}\n${tasks.stdout}`,
        );
      }
      // systemctl is-active exits non-zero when any is not active, which is the point.
      const units = await onNode(
        "vm1",
        `systemctl is-active ${COMPONENTS.join(" ")} || true; ` +
          `ls /etc/systemd/system | grep -E '^(${COMPONENTS.join("|")})\\.service$' || true`,
      );
      assert.deepEqual(units.stdout.trim().split("\n"), COMPONENTS.map(() => "inactive"));
      // The worker runs none of the control plane.
      const worker = await onNode("vm2", `${CTR} containers ls`);
      for (const ref of Object.values(refs)) assert.ok(!worker.stdout.includes(ref), worker.stdout);
    });

    await t.step("the kubelet's mirror pods are in kube-system, running", async () => {
      type PodList = {
        items: {
          metadata: { name: string; annotations?: Record<string, string> };
          spec: { nodeName: string };
          status: {
            phase: string;
            containerStatuses?: { ready: boolean; restartCount: number }[];
          };
        }[];
      };
      let pods: PodList["items"] = [];
      await waitFor("the four mirror pods to be Running and ready", async () => {
        const r = await kubectl(["get", "pods", "-n", "kube-system", "-o", "json"]);
        if (r.code !== 0) return undefined;
        pods = (JSON.parse(r.stdout) as PodList).items;
        const all = COMPONENTS.every((c) =>
          pods.some((p) =>
            p.metadata.name === `${c}-vm1` && p.status.phase === "Running" &&
            (p.status.containerStatuses ?? []).every((s) => s.ready)
          )
        );
        return all ? true : undefined;
      }, { timeoutMs: 120_000 }).catch((error) => {
        throw new Error(
          `${error}\n${JSON.stringify(pods.map((p) => [p.metadata.name, p.status]))}`,
        );
      });
      for (const c of COMPONENTS) {
        const pod = pods.find((p) => p.metadata.name === `${c}-vm1`)!;
        assert.equal(pod.spec.nodeName, "vm1");
        assert.ok(
          pod.metadata.annotations?.["kubernetes.io/config.mirror"],
          `${c} is no mirror pod`,
        );
      }
      console.error(
        `static pods: mirror pods at ${Math.round((Date.now() - started) / 1000)}s, restarts ${
          COMPONENTS.map((c) =>
            `${c}=${
              pods.find((p) => p.metadata.name === `${c}-vm1`)!.status.containerStatuses?.[0]
                ?.restartCount
            }`
          ).join(" ")
        }`,
      );
    });

    await t.step("kube-apiserver is ready", async () => {
      const r = await kubectl(["get", "--raw", "/readyz"]);
      assert.equal(r.stdout.trim(), "ok", r.stderr);
    });

    await t.step("every liveness probe of the rendered manifests answers on the node", async () => {
      const listing = await onNode("vm1", `ls ${NODE_PATHS.staticPods}`);
      assert.deepEqual(
        listing.stdout.trim().split("\n").sort(),
        COMPONENTS.map((c) => `${c}.yaml`).sort(),
      );
      for (const c of COMPONENTS) {
        const manifest = await onNode("vm1", `cat ${NODE_PATHS.staticPods}/${c}.yaml`);
        const pod = parse(manifest.stdout) as { spec: { containers: ProbedContainer[] } };
        const container = pod.spec.containers[0]!;
        assert.equal(container.image, refs[c]);
        const probe = container.livenessProbe?.httpGet;
        assert.ok(probe, `${c} has no liveness probe`);
        // No client certificate, as the kubelet probes: a 401/403 would restart the pod in a loop.
        const url = `${probe.scheme.toLowerCase()}://${probe.host}:${probe.port}${probe.path}`;
        const r = await onNode(
          "vm1",
          `curl -sk --max-time 5 -o /tmp/probe.out -w '%{http_code}' '${url}'; echo; cat /tmp/probe.out`,
        );
        const [code, ...body] = r.stdout.split("\n");
        assert.equal(code, "200", `${c} ${url}: ${r.stdout} ${r.stderr}`);
        // etcd's /health answers JSON, the others' /livez and /healthz a plain "ok".
        assert.match(body.join("\n").trim(), /^ok$|^\{"health":"true"/, `${c} ${url}`);
      }
    });

    await t.step(
      "controller-manager and scheduler authenticate the admin certificate on their secure ports",
      async () => {
        const r = await configzCodes(generated, "vm1", { cluster, kubeconfig });
        assert.equal(r.codes, "200\n200", r.stderr);
      },
    );

    await t.step("a pod runs on the worker", async () => {
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
      const created = await kubectl(["apply", "-f", "-"], JSON.stringify(pod));
      assert.equal(created.code, 0, created.stderr);
      const waited = await kubectl(["wait", "pod/box", "--for=condition=Ready", "--timeout=120s"]);
      const describe = waited.code === 0 ? "" : (await kubectl(["describe", "pod", "box"])).stdout;
      assert.equal(waited.code, 0, `${waited.stderr}\n${describe}`);
      const logs = await kubectl(["logs", "box"]);
      assert.match(logs.stdout, /hello-from-a-dtk-node/, logs.stderr);
      const ip = await kubectl(["get", "pod", "box", "-o", "jsonpath={.status.podIP}"]);
      assert.match(ip.stdout, /^10\.200\.1\.\d+$/, "the pod IP comes from vm2's pod CIDR");
      // A running pod holds the worker's shutdown up at cluster delete.
      await kubectl(["delete", "pod", "box", "--grace-period=1", "--timeout=60s"]);
    });
    console.error(`static pods: checks done at ${Math.round((Date.now() - started) / 1000)}s`);
  } finally {
    await runCommand([
      Deno.execPath(),
      "run",
      "--allow-all",
      DTK_TEST_MAIN,
      "cluster",
      "delete",
      "--config",
      configPath,
      "--template",
    ], { env }).catch(() => {});
    console.error(`static pods: deleted at ${Math.round((Date.now() - started) / 1000)}s`);
    await sweepStale().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
