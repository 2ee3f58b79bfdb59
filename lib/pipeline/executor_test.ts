import assert from "node:assert/strict";
import { executePlan, StateStore, StepFailedError, type StepHandler } from "./mod.ts";
import type { Plan, Step } from "../plan/mod.ts";
import { InterruptedError } from "../errors/mod.ts";

function step(id: string, needs: string[] = []): Step {
  return { id, kind: "prep", phase: "nodes", title: id, needs };
}

const diamond: Plan = {
  cluster: "t",
  controller: "a",
  steps: [step("a"), step("b", ["a"]), step("c", ["a"]), step("d", ["b", "c"])],
};

function recorder(
  options: { delayMs?: number; failOn?: string; digests?: Record<string, string> } = {},
) {
  const log: string[] = [];
  let active = 0;
  let maxActive = 0;
  const handler = (s: Step): StepHandler => ({
    digest: () => Promise.resolve(options.digests?.[s.id] ?? `d-${s.id}`),
    run: async (_s, { signal }) => {
      active++;
      maxActive = Math.max(maxActive, active);
      log.push(`start ${s.id}`);
      try {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, options.delayMs ?? 5);
          signal.addEventListener("abort", () => {
            clearTimeout(t);
            reject(signal.reason);
          }, { once: true });
        });
        if (options.failOn === s.id) throw new Error(`boom in ${s.id}`);
        log.push(`end ${s.id}`);
      } finally {
        active--;
      }
    },
  });
  return { log, handler, maxActive: () => maxActive };
}

Deno.test("executor: independent steps run in parallel, dependencies in order", async () => {
  const r = recorder({ delayMs: 30 });
  const state = StateStore.memory("t");
  const report = await executePlan(diamond, { jobs: 4, state, handler: r.handler });
  assert.deepEqual(report.ran.sort(), ["a", "b", "c", "d"]);
  assert.equal(r.maxActive(), 2);
  assert.ok(r.log.indexOf("end a") < r.log.indexOf("start b"));
  assert.ok(r.log.indexOf("end b") < r.log.indexOf("start d"));
  assert.ok(r.log.indexOf("end c") < r.log.indexOf("start d"));
});

Deno.test("executor: --jobs 1 runs one at a time", async () => {
  const r = recorder();
  await executePlan(diamond, { jobs: 1, state: StateStore.memory("t"), handler: r.handler });
  assert.equal(r.maxActive(), 1);
});

Deno.test("executor: a re-run skips unchanged steps and redoes changed ones", async () => {
  const state = StateStore.memory("t");
  await executePlan(diamond, { jobs: 2, state, handler: recorder().handler });
  const again = await executePlan(diamond, { jobs: 2, state, handler: recorder().handler });
  assert.deepEqual(again.ran, []);
  assert.deepEqual(again.skipped.sort(), ["a", "b", "c", "d"]);
  const changed = await executePlan(diamond, {
    jobs: 2,
    state,
    handler: recorder({ digests: { c: "new" } }).handler,
  });
  assert.deepEqual(changed.ran, ["c"]);
});

Deno.test("executor: a failure names the step, stops the rest, keeps what finished", async () => {
  const state = StateStore.memory("t");
  const r = recorder({ failOn: "b", delayMs: 10 });
  const error = await executePlan(diamond, { jobs: 2, state, handler: r.handler }).then(
    () => undefined,
    (e) => e,
  );
  assert.ok(error instanceof StepFailedError);
  assert.equal(error.step.id, "b");
  assert.match(error.message, /^Step "b" failed: boom in b$/);
  assert.ok(!r.log.includes("start d"));
  assert.ok(state.step("a"));
  assert.equal(state.step("b"), undefined);
  // The next run resumes: a is skipped, the rest runs.
  const resumed = await executePlan(diamond, { jobs: 2, state, handler: recorder().handler });
  assert.deepEqual(resumed.skipped, ["a"]);
  assert.deepEqual(resumed.ran.sort(), ["b", "c", "d"]);
});

Deno.test("executor: Ctrl-C interrupts running steps; the next run resumes", async () => {
  const state = StateStore.memory("t");
  const controller = new AbortController();
  const r = recorder({ delayMs: 200 });
  setTimeout(() => controller.abort(new InterruptedError()), 300);
  const error = await executePlan(diamond, {
    jobs: 2,
    state,
    handler: r.handler,
    signal: controller.signal,
  }).then(() => undefined, (e) => e);
  assert.ok(error instanceof InterruptedError, String(error));
  assert.ok(state.step("a"));
  assert.equal(state.step("d"), undefined);
  const resumed = await executePlan(diamond, { jobs: 2, state, handler: recorder().handler });
  assert.ok(resumed.skipped.includes("a"));
  assert.ok(resumed.ran.includes("d"));
});

Deno.test("executor: a step whose result vanished runs again (stillDone)", async () => {
  const state = StateStore.memory("t");
  await executePlan(diamond, { jobs: 2, state, handler: recorder().handler });
  const base = recorder();
  const report = await executePlan(diamond, {
    jobs: 2,
    state,
    handler: (s) => ({ ...base.handler(s), stillDone: () => Promise.resolve(s.id !== "a") }),
  });
  assert.deepEqual(report.ran, ["a"]);
});

Deno.test("state: saved atomically and read back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.json`;
    const state = await StateStore.open(path, "c1");
    await Promise.all([
      state.recordStep("x", { digest: "1", finishedAt: "t", elapsedMs: 1 }),
      state.recordStep("y", { digest: "2", finishedAt: "t", elapsedMs: 1 }),
      state.recordNode("vm1", { ip: "10.0.0.2", ssh: { host: "10.0.0.2", port: 22 } }),
    ]);
    const again = await StateStore.open(path, "c1");
    assert.equal(again.step("y")?.digest, "2");
    assert.equal(again.node("vm1")?.ip, "10.0.0.2");
    const other = await StateStore.open(path, "c2");
    assert.equal(other.step("x"), undefined, "another cluster's state is not reused");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
