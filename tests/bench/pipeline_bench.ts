/**
 * `cluster create` scheduling on simulated nodes: every step sleeps a fixed latency (the rough
 * proportions of a real create, scaled down 100×). Compares dtk's wall time with the sum of the
 * steps (the original's strictly sequential cost) and with the critical path (the best any
 * schedule can do).
 *
 * @module
 */
import { defaultConfig } from "../../lib/config/mod.ts";
import { buildPlan, criticalPath, type Step, type StepKind } from "../../lib/plan/mod.ts";
import { executePlan, StateStore } from "../../lib/pipeline/mod.ts";
import type { BenchResult } from "./types.ts";

/** Milliseconds per step kind (≈ seconds of a real create / 100, at most 300 ms). */
const LATENCY: Record<StepKind, number> = {
  "artifacts": 20,
  "ssh-key": 5,
  "template": 300,
  "clone": 90,
  "pki": 10,
  "hosts": 10,
  "prep": 30,
  "runtime": 80,
  "kubelet": 40,
  "kube-proxy": 20,
  "etcd": 40,
  "kube-apiserver": 60,
  "kube-controller-manager": 30,
  "kube-scheduler": 20,
  "rbac": 10,
  "nodes-ready": 50,
  "labels": 5,
  "addon": 60,
  "images": 20,
};

const cost = (step: Step) => LATENCY[step.kind];

export async function run(): Promise<BenchResult[]> {
  const config = defaultConfig();
  const plan = buildPlan(config, { createTemplate: true, createVms: true });
  const sum = plan.steps.reduce((total, step) => total + cost(step), 0);
  const critical = criticalPath(plan, cost);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await executePlan(plan, {
      jobs: 8,
      state: StateStore.memory(plan.cluster),
      handler: (step) => ({
        run: () => new Promise((resolve) => setTimeout(resolve, cost(step))),
      }),
    });
    best = Math.min(best, performance.now() - started);
  }
  return [
    {
      name: "3-node create, simulated: wall time vs critical path",
      value: best,
      unit: "ms",
      reference: `critical path ${critical} ms`,
      ratio: best / critical,
      goal: "<= 1.2x the critical path",
    },
    {
      name: "3-node create, simulated: wall time vs sequential sum (the original)",
      value: best,
      unit: "ms",
      reference: `sum of steps ${sum} ms`,
      ratio: best / sum,
      goal: "lower is better",
    },
  ];
}
