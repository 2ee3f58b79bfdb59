import assert from "node:assert/strict";
import { defaultConfig } from "../config/mod.ts";
import { parseConfig } from "../config/parse.ts";
import { buildPlan, checkPlan, criticalPath, formatPlan, topologicalOrder } from "./mod.ts";

const opts = { createTemplate: true, createVms: true };

Deno.test("plan: default config has every phase, node 0 runs the control plane", () => {
  const plan = buildPlan(defaultConfig({ dir: "/x" }), opts);
  checkPlan(plan);
  assert.equal(plan.controller, "vm1");
  const ids = plan.steps.map((s) => s.id);
  for (
    const id of [
      "artifacts",
      "ssh-key",
      "template",
      "vm/vm1",
      "vm/vm3",
      "pki",
      "node/vm2/runtime",
      "node/vm3/kubelet",
      "control-plane/etcd",
      "control-plane/kube-apiserver",
      "control-plane/rbac",
      "gates/nodes-ready",
      "gates/labels",
      "addon/cilium",
      "addon/openebs",
    ]
  ) assert.ok(ids.includes(id), id);
  assert.ok(!ids.some((id) => id.endsWith("/kube-proxy")), "kube-proxy is off by default");
  assert.ok(plan.steps.every((s) => s.node === undefined || s.node.startsWith("vm")));
  assert.equal(plan.steps.find((s) => s.id === "control-plane/etcd")?.node, "vm1");
});

Deno.test("plan: add-ons run in config order, one after the other", () => {
  const plan = buildPlan(defaultConfig(), opts);
  const addons = plan.steps.filter((s) => s.kind === "addon");
  assert.deepEqual(addons.map((a) => a.addon), [
    "cilium",
    "coredns",
    "nginx-gateway-fabric",
    "cert-manager",
    "kube-prometheus-stack",
    "headlamp",
    "metrics-server",
    "openebs",
  ]);
  for (let i = 1; i < addons.length; i++) {
    assert.ok(addons[i]!.needs.includes(addons[i - 1]!.id));
  }
});

Deno.test("plan: --create-vms=false and no template skip those steps", () => {
  const plan = buildPlan(defaultConfig(), { createTemplate: true, createVms: false });
  assert.ok(!plan.steps.some((s) => s.kind === "template"));
  assert.match(plan.steps.find((s) => s.id === "vm/vm1")!.title, /existing/);
  const noTemplate = buildPlan(defaultConfig(), { createTemplate: false, createVms: true });
  assert.ok(!noTemplate.steps.some((s) => s.kind === "template"));
});

Deno.test("plan: static pods need the controller's kubelet; kube-proxy on every node", () => {
  const { config } = parseConfig(
    "k8s:\n  kube-proxy: true\n  containerized-cplane: etcd,kube-proxy\n",
    { file: "c.yaml", dir: "/x" },
  );
  const plan = buildPlan(config, opts);
  checkPlan(plan);
  const etcd = plan.steps.find((s) => s.id === "control-plane/etcd")!;
  assert.ok(etcd.needs.includes("node/vm1/kubelet"));
  const apiserver = plan.steps.find((s) => s.id === "control-plane/kube-apiserver")!;
  assert.ok(!apiserver.needs.includes("node/vm1/kubelet"));
  assert.equal(plan.steps.filter((s) => s.kind === "kube-proxy").length, 3);
  assert.match(etcd.title, /static pod/);
});

Deno.test("plan: topological order respects every dependency", () => {
  const plan = buildPlan(defaultConfig(), opts);
  const order = topologicalOrder(plan);
  const at = new Map(order.map((id, i) => [id, i]));
  for (const step of plan.steps) {
    for (const need of step.needs) assert.ok(at.get(need)! < at.get(step.id)!);
  }
});

Deno.test("plan: a cycle is detected", () => {
  const plan = {
    cluster: "x",
    controller: "a",
    steps: [
      { id: "a", kind: "pki" as const, phase: "pki" as const, title: "", needs: ["b"] },
      { id: "b", kind: "pki" as const, phase: "pki" as const, title: "", needs: ["a"] },
    ],
  };
  assert.throws(() => checkPlan(plan), /Cycle in plan/);
});

Deno.test("plan: critical path is shorter than the sum of steps", () => {
  const plan = buildPlan(defaultConfig(), opts);
  const sum = plan.steps.length;
  const critical = criticalPath(plan, () => 1);
  assert.ok(critical < sum, `${critical} < ${sum}`);
});

Deno.test("plan: formatted plan lists every step under its phase", () => {
  const plan = buildPlan(defaultConfig(), opts);
  const text = formatPlan(plan);
  assert.match(text, /^Plan for cluster "dtk" \(controller: vm1\)/);
  for (const step of plan.steps) assert.ok(text.includes(step.id), step.id);
  assert.match(text, /\ncontrol-plane:\n/);
});
