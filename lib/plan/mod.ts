/**
 * The plan of `dtk cluster create`: a graph of steps with their dependencies, pure data.
 * `dtk plan` prints it; the pipeline runs it, each step as soon as what it needs is done.
 *
 * @module
 */
import type { Config, CplaneComponent } from "../config/types.ts";

type CplaneKind = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler";

export type Phase =
  | "prepare"
  | "template"
  | "vms"
  | "pki"
  | "nodes"
  | "control-plane"
  | "gates"
  | "add-ons";

export const PHASES: readonly Phase[] = [
  "prepare",
  "template",
  "vms",
  "pki",
  "nodes",
  "control-plane",
  "gates",
  "add-ons",
];

/** What a step does; the pipeline has one handler per kind. */
export type StepKind =
  | "artifacts"
  | "ssh-key"
  | "template"
  | "clone"
  | "pki"
  | "hosts"
  | "prep"
  | "runtime"
  | "kubelet"
  | "kube-proxy"
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kube-scheduler"
  | "rbac"
  | "nodes-ready"
  | "labels"
  | "addon"
  | "images";

export interface Step {
  /** Unique, stable across runs: the key of the state file. */
  id: string;
  kind: StepKind;
  phase: Phase;
  /** The node the step works on, if any. */
  node?: string;
  /** The add-on, for `addon` steps. */
  addon?: string;
  title: string;
  /** Ids of the steps that must be done first. */
  needs: string[];
}

export interface Plan {
  cluster: string;
  controller: string;
  steps: Step[];
}

export interface PlanOptions {
  /** Build the template (`vm.create-template`, or `--create-template`). */
  createTemplate: boolean;
  /** Create the VMs (`--create-vms`, default true). False: they exist and run already. */
  createVms: boolean;
}

/** The steps of `cluster create` for a config, in a deterministic order. */
export function buildPlan(config: Config, options: PlanOptions): Plan {
  const steps: Step[] = [];
  const add = (step: Step) => {
    steps.push(step);
    return step.id;
  };
  const controller = config.vms[0]?.name ?? "";
  const names = config.vms.map((vm) => vm.name);

  const artifacts = add({
    id: "artifacts",
    kind: "artifacts",
    phase: "prepare",
    title: "Every artifact in the store, verified against dtk.lock",
    needs: [],
  });
  const sshKey = add({
    id: "ssh-key",
    kind: "ssh-key",
    phase: "prepare",
    title: "The cluster's SSH key pair",
    needs: [],
  });
  let template: string | undefined;
  if (options.createVms && options.createTemplate) {
    template = add({
      id: "template",
      kind: "template",
      phase: "template",
      title: `Template VM "${config.vm.templateVmname}" (${config.vm.templateSource})`,
      needs: [artifacts, sshKey],
    });
  }
  const clones = names.map((name) =>
    add({
      id: `vm/${name}`,
      kind: "clone",
      phase: "vms",
      node: name,
      title: options.createVms
        ? `Clone, start and reach VM "${name}", pin its host key`
        : `Reach existing VM "${name}", pin its host key`,
      needs: template ? [template] : [sshKey],
    })
  );
  const pki = add({
    id: "pki",
    kind: "pki",
    phase: "pki",
    title: "CA, certificates, kubeconfigs, encryption config, token",
    needs: clones,
  });

  const kubelets: string[] = [];
  const preps = new Map<string, string>();
  for (const name of names) {
    const hosts = add({
      id: `node/${name}/hosts`,
      kind: "hosts",
      phase: "nodes",
      node: name,
      title: "Hostname, /etc/hosts, /etc/environment",
      needs: clones,
    });
    const prep = add({
      id: `node/${name}/prep`,
      kind: "prep",
      phase: "nodes",
      node: name,
      title: "Swap off, firewall off, kernel modules, sysctls",
      needs: [hosts],
    });
    preps.set(name, prep);
    const runtime = add({
      id: `node/${name}/runtime`,
      kind: "runtime",
      phase: "nodes",
      node: name,
      title: "containerd, runc, crictl, CNI plugins, image preload",
      needs: [prep, artifacts],
    });
    const kubelet = add({
      id: `node/${name}/kubelet`,
      kind: "kubelet",
      phase: "nodes",
      node: name,
      title: "kubelet",
      needs: [runtime, pki],
    });
    kubelets.push(kubelet);
    if (config.k8s.kubeProxy) {
      kubelets.push(add({
        id: `node/${name}/kube-proxy`,
        kind: "kube-proxy",
        phase: "nodes",
        node: name,
        title: config.k8s.containerizedCplane.includes("kube-proxy")
          ? "kube-proxy (static pod)"
          : "kube-proxy",
        needs: [kubelet],
      }));
    }
  }

  // Static pods need the controller's kubelet; systemd units only the node prep.
  const component = (kind: CplaneKind, after: string[]) => {
    const staticPod = config.k8s.containerizedCplane.includes(kind as CplaneComponent);
    return add({
      id: `control-plane/${kind}`,
      kind,
      phase: "control-plane",
      node: controller,
      title: staticPod ? `${kind} (static pod)` : kind,
      needs: [
        ...after,
        pki,
        staticPod ? `node/${controller}/kubelet` : (preps.get(controller) ?? ""),
      ].filter((id) => id !== ""),
    });
  };
  const etcd = component("etcd", [artifacts]);
  const apiserver = component("kube-apiserver", [etcd]);
  const kcm = component("kube-controller-manager", [apiserver]);
  const scheduler = component("kube-scheduler", [apiserver]);
  const rbac = add({
    id: "control-plane/rbac",
    kind: "rbac",
    phase: "control-plane",
    node: controller,
    title: "apiserver-to-kubelet RBAC",
    needs: [apiserver],
  });
  const ready = add({
    id: "gates/nodes-ready",
    kind: "nodes-ready",
    phase: "gates",
    title: "Every node Ready, the default ServiceAccount made",
    needs: [...kubelets, kcm, scheduler, rbac],
  });
  let previous = add({
    id: "gates/labels",
    kind: "labels",
    phase: "gates",
    title: "Node role labels",
    needs: [ready],
  });
  // Add-ons run one at a time, in the config's (checked) order.
  for (const addon of config.addons.filter((a) => a.enabled)) {
    previous = add({
      id: `addon/${addon.name}`,
      kind: "addon",
      phase: "add-ons",
      addon: addon.name,
      title: `Add-on ${addon.name}`,
      needs: [previous, artifacts],
    });
  }
  // Last: what the add-ons pulled, and every other locked image, stays on the nodes for good.
  add({
    id: "images/pin",
    kind: "images",
    phase: "add-ons",
    title: "Locked images present and pinned on every node",
    needs: [previous, artifacts],
  });
  return { cluster: config.cluster.name, controller, steps };
}

/** Checks the graph: unique ids, known dependencies, no cycle. Throws on a bug. */
export function checkPlan(plan: Plan): void {
  const ids = new Set<string>();
  for (const step of plan.steps) {
    if (ids.has(step.id)) throw new Error(`Duplicate step ${step.id}`);
    ids.add(step.id);
  }
  for (const step of plan.steps) {
    for (const need of step.needs) {
      if (!ids.has(need)) throw new Error(`Step ${step.id} needs unknown step ${need}`);
    }
  }
  topologicalOrder(plan);
}

/** Step ids in an order where every step comes after what it needs. */
export function topologicalOrder(plan: Plan): string[] {
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (id: string, trail: string[]) => {
    const mark = state.get(id);
    if (mark === "done") return;
    if (mark === "visiting") throw new Error(`Cycle in plan: ${[...trail, id].join(" → ")}`);
    state.set(id, "visiting");
    for (const need of byId.get(id)?.needs ?? []) visit(need, [...trail, id]);
    state.set(id, "done");
    order.push(id);
  };
  for (const step of plan.steps) visit(step.id, []);
  return order;
}

/** The longest chain of step costs through the graph (the best any schedule can do). */
export function criticalPath(plan: Plan, cost: (step: Step) => number): number {
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const finish = new Map<string, number>();
  for (const id of topologicalOrder(plan)) {
    const step = byId.get(id)!;
    const start = Math.max(0, ...step.needs.map((n) => finish.get(n) ?? 0));
    finish.set(id, start + cost(step));
  }
  return Math.max(0, ...finish.values());
}

/** `dtk plan` as text: phases, steps, what each needs. */
export function formatPlan(plan: Plan): string {
  const lines = [`Plan for cluster "${plan.cluster}" (controller: ${plan.controller})`];
  let n = 0;
  for (const phase of PHASES) {
    const steps = plan.steps.filter((s) => s.phase === phase);
    if (steps.length === 0) continue;
    lines.push("", `${phase}:`);
    for (const step of steps) {
      n++;
      const needs = step.needs.length === 0 ? "" : `  ← ${step.needs.join(", ")}`;
      lines.push(`  ${String(n).padStart(2)}. ${step.id.padEnd(40)} ${step.title}${needs}`);
    }
  }
  return lines.join("\n") + "\n";
}
