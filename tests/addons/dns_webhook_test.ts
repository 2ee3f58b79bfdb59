/**
 * The DNS webhook over real HTTP on 127.0.0.1, editing a temp hosts file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type DnsWebhookServer,
  startDnsWebhook,
  WEBHOOK_MEDIA_TYPE,
} from "../../lib/dnswebhook/mod.ts";

async function withServer(
  initial: string,
  fn: (url: string, hosts: string, server: DnsWebhookServer, logs: string[]) => Promise<void>,
  options: { dryRun?: boolean; mode?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-dnswebhook-" });
  const hosts = join(dir, "hosts");
  await Deno.writeTextFile(hosts, initial);
  if (options.mode !== undefined) await Deno.chmod(hosts, options.mode);
  const logs: string[] = [];
  const server = await startDnsWebhook({
    hostname: "127.0.0.1",
    port: 0,
    hostsFile: hosts,
    dryRun: options.dryRun,
    log: (t) => logs.push(t),
  });
  try {
    await fn(`http://127.0.0.1:${server.port}`, hosts, server, logs);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

async function post(url: string, body: string): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    body,
    headers: { "content-type": WEBHOOK_MEDIA_TYPE },
  });
}

async function getJson(url: string): Promise<[Response, unknown]> {
  const response = await fetch(url, { headers: { accept: WEBHOOK_MEDIA_TYPE } });
  return [response, await response.json()];
}

const ORIGINAL = "127.0.0.1 localhost\n# desktop entries\n10.0.0.5 nas.home\n";

Deno.test("dns webhook: the installer's set-up, then a batch mixing managed and unmanaged names", async () => {
  await withServer(ORIGINAL, async (url, hosts, server) => {
    assert.equal((await post(`${url}/domains`, "dtk.io")).status, 200);
    assert.equal((await post(`${url}/clusterip`, "192.168.122.10")).status, 200);
    const [root, filters] = await getJson(`${url}/`);
    assert.equal(root.headers.get("content-type"), WEBHOOK_MEDIA_TYPE);
    assert.deepEqual(filters, { domains: ["dtk.io"], include: ["dtk.io"] });
    assert.deepEqual((await getJson(`${url}/domains`))[1], ["dtk.io"]);
    assert.equal((await getJson(`${url}/clusterip`))[1], "192.168.122.10");

    // The unmanaged name comes first: the original returned there and wrote nothing.
    const batch = [
      { dnsName: "other.example.com", targets: ["10.32.0.9"], recordType: "A" },
      { dnsName: "foo.dtk.io", targets: ["10.32.0.197"], recordType: "A" },
      { dnsName: "evildtk.io", targets: ["10.32.0.1"], recordType: "A" },
      { dnsName: "bar.dtk.io.", targets: ["10.32.0.198"], recordType: "CNAME" },
    ];
    const response = await post(`${url}/adjustendpoints`, JSON.stringify(batch));
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), []);
    assert.equal(
      await Deno.readTextFile(hosts),
      ORIGINAL + "192.168.122.10 foo.dtk.io\n192.168.122.10 bar.dtk.io\n",
    );
    assert.deepEqual((await getJson(`${url}/records`))[1], batch);

    // The controller moved: lines are updated in place, not duplicated.
    await post(`${url}/clusterip`, "192.168.122.99");
    await post(`${url}/adjustendpoints`, JSON.stringify(batch.slice(1)));
    assert.equal(
      await Deno.readTextFile(hosts),
      ORIGINAL + "192.168.122.99 foo.dtk.io\n192.168.122.99 bar.dtk.io\n",
    );
    assert.equal(server.state().clusterIp, "192.168.122.99");
  });
});

Deno.test("dns webhook: keeps the hosts file's mode, and writes nothing in dry-run", async () => {
  await withServer(ORIGINAL, async (url, hosts) => {
    await post(`${url}/domains`, "dtk.io,lab.example");
    await post(`${url}/clusterip`, "10.1.2.3");
    await post(`${url}/adjustendpoints`, JSON.stringify([{ dnsName: "x.lab.example" }]));
    assert.equal((await Deno.stat(hosts)).mode! & 0o777, 0o640);
    assert.match(await Deno.readTextFile(hosts), /10\.1\.2\.3 x\.lab\.example\n$/);
    // No temp files left beside it.
    const names = [];
    for await (const e of Deno.readDir(join(hosts, ".."))) names.push(e.name);
    assert.deepEqual(names, ["hosts"]);
  }, { mode: 0o640 });
  await withServer(ORIGINAL, async (url, hosts, _server, logs) => {
    await post(`${url}/domains`, "dtk.io");
    await post(`${url}/clusterip`, "10.1.2.3");
    await post(`${url}/adjustendpoints`, JSON.stringify([{ dnsName: "a.dtk.io" }]));
    assert.equal(await Deno.readTextFile(hosts), ORIGINAL);
    assert.ok(logs.some((l) => l.includes("added 10.1.2.3 a.dtk.io (dry run)")), logs.join("\n"));
  }, { dryRun: true });
});

Deno.test("dns webhook: bad requests are refused, unknown paths are 404, records POST is 204", async () => {
  await withServer(ORIGINAL, async (url, hosts) => {
    assert.equal((await post(`${url}/domains`, "")).status, 400);
    assert.equal((await post(`${url}/clusterip`, "not-an-ip")).status, 400);
    assert.equal((await post(`${url}/adjustendpoints`, '{"not":"a list"}')).status, 400);
    assert.equal((await post(`${url}/records`, "{}")).status, 204);
    const missing = await fetch(`${url}/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: "Not Found" });
    // Without a cluster IP nothing is written (the original wrote " foo.dtk.io").
    await post(`${url}/domains`, "dtk.io");
    await post(`${url}/adjustendpoints`, JSON.stringify([{ dnsName: "foo.dtk.io" }]));
    // A name that would inject a line is never written.
    await post(`${url}/clusterip`, "10.1.2.3");
    await post(
      `${url}/adjustendpoints`,
      JSON.stringify([{ dnsName: "a.dtk.io\n6.6.6.6 bank.com" }]),
    );
    assert.equal(await Deno.readTextFile(hosts), ORIGINAL);
  });
});

Deno.test("dns webhook: concurrent batches are applied one after the other", async () => {
  await withServer(ORIGINAL, async (url, hosts) => {
    await post(`${url}/domains`, "dtk.io");
    await post(`${url}/clusterip`, "10.1.2.3");
    await Promise.all(
      Array.from(
        { length: 10 },
        (_, i) =>
          post(`${url}/adjustendpoints`, JSON.stringify([{ dnsName: `n${i}.dtk.io` }])).then((r) =>
            r.body?.cancel()
          ),
      ),
    );
    const text = await Deno.readTextFile(hosts);
    for (let i = 0; i < 10; i++) assert.ok(text.includes(`10.1.2.3 n${i}.dtk.io\n`), text);
    assert.ok(text.startsWith(ORIGINAL));
  });
});
