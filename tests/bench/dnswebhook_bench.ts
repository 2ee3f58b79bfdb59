/**
 * The DNS webhook with 20,000 endpoints in one batch (the original scanned every hosts line for
 * every name: 108 s), end to end over HTTP with the hosts file written, against `awk` pointing
 * the same 20,000 names at a new address in the same hosts file through a hash (linear).
 *
 * @module
 */
import { join } from "node:path";
import { startDnsWebhook, WEBHOOK_MEDIA_TYPE } from "../../lib/dnswebhook/mod.ts";
import type { BenchResult } from "./types.ts";

const N = 20_000;
const TOKEN = "b".repeat(64);

async function median(runs: number, fn: () => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await fn());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function run(): Promise<BenchResult[]> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-bench-dns-" });
  try {
    const hosts = join(dir, "hosts");
    const base = "127.0.0.1 localhost\n" +
      Array.from({ length: 2000 }, (_, i) => `10.9.${i >> 8}.${i & 255} user-${i}.lan`).join("\n") +
      "\n";
    const names = Array.from({ length: N }, (_, i) => `host-${i}.apps.dtk.io`);
    const batch = JSON.stringify(names.map((dnsName, i) => ({
      dnsName,
      targets: [`10.32.${i >> 8}.${i & 255}`],
      recordType: "A",
      recordTTL: 300,
      labels: { owner: "default", resource: `ingress/default/app-${i}` },
    })));
    const server = await startDnsWebhook({
      token: TOKEN,
      port: 0,
      hostsFile: hosts,
      domains: ["dtk.io"],
    });
    let ip = 0;
    const dtk = await median(5, async () => {
      await Deno.writeTextFile(hosts, base);
      const headers = { "content-type": WEBHOOK_MEDIA_TYPE, authorization: `Bearer ${TOKEN}` };
      const started = performance.now();
      // Twice: the first adds 20,000 lines, the second updates them all in place.
      for (let pass = 0; pass < 2; pass++) {
        await (await fetch(`http://127.0.0.1:${server.port}/clusterip`, {
          method: "POST",
          body: JSON.stringify(`10.1.2.${++ip % 250}`),
          headers,
        })).body?.cancel();
        const r = await fetch(`http://127.0.0.1:${server.port}/adjustendpoints`, {
          method: "POST",
          body: batch,
          headers,
        });
        await r.body?.cancel();
        if (!r.ok) throw new Error(`adjustendpoints answered ${r.status}`);
      }
      return performance.now() - started;
    });
    await server.shutdown();

    // The reference: the same two passes with awk, names looked up in a hash.
    const namesFile = join(dir, "names");
    await Deno.writeTextFile(namesFile, names.join("\n") + "\n");
    const script = `NR == FNR { want[$1] = 1; next }
{ if (NF == 2 && ($2 in want)) { seen[$2] = 1; print ip, $2 } else print }
END { for (n in want) if (!(n in seen)) print ip, n }`;
    const awk = await median(5, async () => {
      await Deno.writeTextFile(hosts, base);
      const started = performance.now();
      for (let pass = 0; pass < 2; pass++) {
        const out = await new Deno.Command("awk", {
          args: ["-v", `ip=10.1.3.${pass}`, script, namesFile, hosts],
          stdout: "piped",
        }).output();
        if (!out.success) throw new Error("awk failed");
        await Deno.writeFile(`${hosts}.new`, out.stdout);
        await Deno.rename(`${hosts}.new`, hosts);
      }
      return performance.now() - started;
    });
    return [{
      name: `dns webhook: ${N} endpoints twice (added, then updated), HTTP + hosts file`,
      value: dtk,
      unit: "ms",
      reference: `awk with a hash over the same file: ${awk.toFixed(0)} ms (the original: 108 s)`,
      ratio: Number((dtk / awk).toFixed(2)),
      goal: "linear: seconds at most, never minutes",
    }];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
