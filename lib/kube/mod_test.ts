import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import { DtkError, TimeoutError } from "../errors/mod.ts";
import {
  assignPodCidrs,
  type KubeApi,
  PodCidrConflictError,
  poll,
  type WantedPodCidr,
} from "./mod.ts";

interface FakeNode {
  metadata: { name: string };
  spec: { podCIDR?: string; podCIDRs?: string[] };
  status: { conditions: { type: string; status: string }[] };
}

/**
 * An apiserver's node list and merge patches of node specs, with its one rule about them: a
 * pod CIDR may go from empty to set, never change (ValidateNodeUpdate), else HTTP 422.
 */
class FakeNodes implements KubeApi {
  nodes: FakeNode[] = [];
  patches: { name: string; body: unknown }[] = [];

  add(name: string, options: { ready?: boolean; podCidr?: string } = {}): void {
    this.nodes.push({
      metadata: { name },
      spec: options.podCidr ? { podCIDR: options.podCidr, podCIDRs: [options.podCidr] } : {},
      status: {
        conditions: [{ type: "Ready", status: options.ready === false ? "False" : "True" }],
      },
    });
  }

  getJson<T>(path: string): Promise<T> {
    equal(path, "/api/v1/nodes");
    return Promise.resolve(structuredClone({ items: this.nodes }) as T);
  }

  request(
    method: string,
    path: string,
    options: { body?: string; contentType?: string } = {},
  ): Promise<{ status: number; text: string }> {
    equal(method, "PATCH");
    equal(options.contentType, "application/merge-patch+json");
    const name = decodeURIComponent(path.replace("/api/v1/nodes/", ""));
    const node = this.nodes.find((n) => n.metadata.name === name);
    if (!node) return Promise.resolve({ status: 404, text: "not found" });
    const body = JSON.parse(options.body ?? "{}") as { spec: FakeNode["spec"] };
    this.patches.push({ name, body });
    const old = node.spec.podCIDRs ?? [];
    const next = body.spec.podCIDRs ?? old;
    if (old.length > 0 && JSON.stringify(old) !== JSON.stringify(next)) {
      return Promise.resolve({ status: 422, text: "node updates may not change podCIDR" });
    }
    Object.assign(node.spec, body.spec);
    return Promise.resolve({ status: 200, text: "{}" });
  }
}

const WANTED = new Map<string, WantedPodCidr>([
  ["vm1", { cidr: "10.200.0.0/24", key: "vms[0].pod-cidr" }],
  ["vm2", { cidr: "10.200.1.0/24", key: "vms[1].pod-cidr" }],
  ["vm3", { cidr: "10.200.2.0/24", key: "vms[2].pod-cidr" }],
]);

Deno.test("assignPodCidrs: each registered node gets its own vms[].pod-cidr, in any order", async () => {
  const api = new FakeNodes();
  // vm3 registers first: an allocator in registration order would give it 10.200.0.0/24.
  api.add("vm3");
  api.add("vm1", { ready: false });
  const first = await assignPodCidrs(api, WANTED);
  deepStrictEqual(first.assigned, ["vm3", "vm1"]);
  deepStrictEqual(first.registered, ["vm3", "vm1"]);
  deepStrictEqual(first.ready, ["vm3"]);
  deepStrictEqual(api.patches.find((p) => p.name === "vm3")?.body, {
    spec: { podCIDR: "10.200.2.0/24", podCIDRs: ["10.200.2.0/24"] },
  });
  api.add("vm2");
  const second = await assignPodCidrs(api, WANTED);
  deepStrictEqual(second.assigned, ["vm2"]);
  for (const node of api.nodes) {
    const want = WANTED.get(node.metadata.name)!.cidr;
    deepStrictEqual(node.spec, { podCIDR: want, podCIDRs: [want] }, node.metadata.name);
  }
});

Deno.test("assignPodCidrs: a re-run patches nothing", async () => {
  const api = new FakeNodes();
  for (const [name, want] of WANTED) api.add(name, { podCidr: want.cidr });
  const r = await assignPodCidrs(api, WANTED);
  deepStrictEqual(r.assigned, []);
  deepStrictEqual(api.patches, []);
  deepStrictEqual(r.ready, ["vm1", "vm2", "vm3"]);
});

Deno.test("assignPodCidrs: leaves nodes it was not given alone", async () => {
  const api = new FakeNodes();
  api.add("other");
  api.add("vm1");
  deepStrictEqual((await assignPodCidrs(api, WANTED)).assigned, ["vm1"]);
  deepStrictEqual(api.nodes[0]!.spec, {});
});

Deno.test("assignPodCidrs: a node holding another pod CIDR is an error naming both, with a hint", async () => {
  const api = new FakeNodes();
  api.add("vm1", { podCidr: "10.200.0.0/24" });
  api.add("vm2", { podCidr: "10.200.2.0/24" });
  const error = await assignPodCidrs(api, WANTED).then(() => undefined, (e: unknown) => e);
  ok(error instanceof PodCidrConflictError && error instanceof DtkError);
  equal(
    error.message,
    'Node "vm2" has pod CIDR "10.200.2.0/24", not its "vms[1].pod-cidr" "10.200.1.0/24"',
  );
  match(error.hint ?? "", /set only once/);
  match(error.hint ?? "", /Set vms\[1\]\.pod-cidr to 10\.200\.2\.0\/24/);
  match(error.hint ?? "", /kubectl delete node vm2/);
  deepStrictEqual(api.patches, []);
});

Deno.test("poll: an error marked fatal ends the wait at once, others are retried", async () => {
  let calls = 0;
  const started = Date.now();
  await rejects(
    poll(() => {
      calls++;
      if (calls < 3) throw new DtkError("transient");
      throw new PodCidrConflictError("conflict");
    }, {
      timeoutMs: 60_000,
      intervalMs: 1,
      what: "a test",
      fatal: (e) => e instanceof PodCidrConflictError,
    }),
    PodCidrConflictError,
  );
  equal(calls, 3);
  ok(Date.now() - started < 10_000);
  await rejects(
    poll(() => Promise.reject(new PodCidrConflictError("conflict")), {
      timeoutMs: 20,
      intervalMs: 5,
      what: "a test",
    }),
    TimeoutError,
  );
});
