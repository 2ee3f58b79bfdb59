/**
 * The values keys dtk sets exist in the chart version it pins (issue 17, item 3): every key path
 * of every add-on's rendered values, for both fixture configs, must be in the record
 * `tests/testdata/chart_keys.json`, which says where in the pinned chart each key was found
 * (values.yaml, a template, a free-form map, a subchart) and names the chart source it was
 * checked against. A key dtk starts to set fails here until someone has read the chart for it.
 */
import assert from "node:assert/strict";
import { type AddonName, ADDONS, renderAddon, renderInput } from "../../lib/addons/mod.ts";
import { ADDON_CHARTS } from "../../lib/catalog/mod.ts";
import { DEFAULT_FACTS, defaultTestConfig, OTHER_FACTS, otherTestConfig } from "./_fixtures.ts";

interface Record_ {
  comment: string;
  UNVERIFIED: Record<string, string>;
  charts: Record<
    string,
    { chart: string; source: string; keys: Record<string, string>; ready?: Record<string, string> }
  >;
}

const RECORD: Record_ = JSON.parse(
  await Deno.readTextFile(new URL("../testdata/chart_keys.json", import.meta.url)),
);

/** Dotted paths of every map key, not descending into lists (their items are chart-defined). */
export function keyPaths(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  const out: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    out.push(path, ...keyPaths(v, path));
  }
  return out;
}

function renderedKeys(name: AddonName): string[] {
  const keys = new Set<string>();
  for (
    const [config, facts] of [
      [defaultTestConfig("/x"), DEFAULT_FACTS],
      [otherTestConfig("/x"), OTHER_FACTS],
    ] as const
  ) {
    const r = renderAddon(name, renderInput(config, facts, name), {
      kubeconfig: "/k",
      chartPath: "/c",
      helmTimeoutMs: 1,
    });
    for (const p of keyPaths(r.values)) keys.add(p);
  }
  return [...keys].sort();
}

Deno.test("keyPaths: maps are walked, lists are leaves", () => {
  assert.deepEqual(keyPaths({ a: { b: 1, c: [{ d: 1 }] }, e: null }), ["a", "a.b", "a.c", "e"]);
});

Deno.test("every add-on is recorded against its pinned chart, or named as unverified", () => {
  for (const name of ADDONS.keys()) {
    const record = RECORD.charts[name];
    const unverified = RECORD.UNVERIFIED[name];
    assert.ok(record !== undefined || unverified !== undefined, `${name}: no record`);
    assert.ok(!(record && unverified), `${name}: both recorded and unverified`);
    if (record === undefined) continue;
    // The record is of the version dtk pins, from a named commit of a public repository.
    const pinned = ADDON_CHARTS[name]!.version;
    assert.ok(
      record.chart.endsWith(pinned.replace(/^v/, "")),
      `${name}: ${record.chart} vs ${pinned}`,
    );
    assert.match(record.source, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}:\S+values\.yaml$/, name);
  }
});

for (const name of ADDONS.keys()) {
  const record = RECORD.charts[name];
  Deno.test({
    name: record
      ? `add-on ${name}: every values key dtk sets exists in chart ${record.chart}`
      : `add-on ${name}: values keys (skipped: ${RECORD.UNVERIFIED[name]})`,
    ignore: record === undefined,
    fn: () => {
      const keys = renderedKeys(name);
      const unknown = keys.filter((k) => record!.keys[k] === undefined);
      assert.deepEqual(unknown, [], `read ${record!.source} for these, then record them`);
      // And the record holds nothing dtk no longer sets (it would hide a removed key's twin).
      const stale = Object.keys(record!.keys).filter((k) => !keys.includes(k));
      assert.deepEqual(stale, [], "keys dtk no longer sets");
    },
  });
}

Deno.test("readiness checks name a resource the chart creates with dtk's values, where recorded", () => {
  let checked = 0;
  for (const name of ADDONS.keys()) {
    const ready = RECORD.charts[name]?.ready;
    if (ready === undefined) continue;
    const r = renderAddon(name, renderInput(defaultTestConfig("/x"), DEFAULT_FACTS, name), {
      kubeconfig: "/k",
      chartPath: "/c",
      helmTimeoutMs: 1,
    });
    const named = r.ready.filter((c) => c.kind === "rollout").map((c) =>
      "resource" in c ? `${c.resource}/${c.name}` : ""
    );
    assert.ok(named.length > 0, name);
    for (const n of named) {
      assert.ok(ready[n] !== undefined, `${name}: ${n} is not what the chart creates`);
      checked++;
    }
    // The namespace is the release's: the chart creates it there.
    for (const c of r.ready) if ("namespace" in c) assert.equal(c.namespace, r.namespace, name);
  }
  assert.equal(checked, 8);
});
