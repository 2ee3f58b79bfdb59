/**
 * `deno task bench`: every benchmark, each measured against its reference in the same run.
 * `deno task bench store` runs only the modules whose name contains "store".
 *
 * @module
 */
import type { BenchResult } from "./types.ts";

const MODULES = [
  "pipeline_bench.ts",
  "pki_bench.ts",
  "store_bench.ts",
  "store_add_bench.ts",
  "image_bench.ts",
  "registry_bench.ts",
  "startup_bench.ts",
  "dnswebhook_bench.ts",
];
const filter = Deno.args[0];

const rows: BenchResult[] = [];
for (const name of MODULES) {
  if (filter && !name.includes(filter)) continue;
  const module = await import(`./${name}`) as { run(): Promise<BenchResult[]> };
  console.error(`running ${name} …`);
  const results = await module.run();
  for (const r of results) {
    rows.push(r);
    const ratio = r.ratio === undefined ? "" : `  ratio ${r.ratio.toFixed(2)}`;
    console.log(
      `${r.name}: ${r.value.toFixed(3)} ${r.unit}${
        r.reference ? `  (vs ${r.reference})` : ""
      }${ratio}${r.goal ? `  goal ${r.goal}` : ""}`,
    );
  }
}
const load = await Deno.readTextFile("/proc/loadavg").catch(() => "?");
console.log(`load average at the end: ${load.split(" ").slice(0, 3).join(" ")}`);
