/**
 * The DNS webhook over real HTTP on 127.0.0.1, editing a temp hosts file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type DnsWebhookServer,
  hostsBlockBegin,
  hostsBlockEnd,
  startDnsWebhook,
  WEBHOOK_MEDIA_TYPE,
} from "../../lib/dnswebhook/mod.ts";

const TOKEN = "7a".repeat(32);
const AUTH = { authorization: `Bearer ${TOKEN}` };
const BEGIN = hostsBlockBegin("dtk");
const END = hostsBlockEnd("dtk");

/** dtk's block of the hosts file, as the webhook writes it. */
function block(...lines: string[]): string {
  return [BEGIN, ...lines, END, ""].join("\n");
}

async function withServer(
  initial: string,
  fn: (url: string, hosts: string, server: DnsWebhookServer, logs: string[]) => Promise<void>,
  options: { dryRun?: boolean; mode?: number; maxBodyBytes?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-dnswebhook-" });
  const hosts = join(dir, "hosts");
  await Deno.writeTextFile(hosts, initial);
  if (options.mode !== undefined) await Deno.chmod(hosts, options.mode);
  const logs: string[] = [];
  const server = await startDnsWebhook({
    token: TOKEN,
    hostname: "127.0.0.1",
    port: 0,
    hostsFile: hosts,
    dryRun: options.dryRun,
    maxBodyBytes: options.maxBodyBytes,
    log: (t) => logs.push(t),
  });
  try {
    await fn(`http://127.0.0.1:${server.port}`, hosts, server, logs);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

async function post(
  url: string,
  body: string | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    body,
    headers: { "content-type": WEBHOOK_MEDIA_TYPE, ...AUTH, ...headers },
  });
}

async function getJson(url: string): Promise<[Response, unknown]> {
  const response = await fetch(url, { headers: { accept: WEBHOOK_MEDIA_TYPE, ...AUTH } });
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
      ORIGINAL + block("192.168.122.10 foo.dtk.io", "192.168.122.10 bar.dtk.io"),
    );
    assert.deepEqual((await getJson(`${url}/records`))[1], batch);

    // The controller moved: lines are updated in place, not duplicated.
    await post(`${url}/clusterip`, "192.168.122.99");
    await post(`${url}/adjustendpoints`, JSON.stringify(batch.slice(1)));
    assert.equal(
      await Deno.readTextFile(hosts),
      ORIGINAL + block("192.168.122.99 foo.dtk.io", "192.168.122.99 bar.dtk.io"),
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
    assert.equal(await Deno.readTextFile(hosts), ORIGINAL + block("10.1.2.3 x.lab.example"));
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
    assert.ok(logs.some((l) => l.includes('added 10.1.2.3 "a.dtk.io" (dry run)')), logs.join("\n"));
  }, { dryRun: true });
});

Deno.test("dns webhook: bad requests are refused, unknown paths are 404, records POST is 204", async () => {
  await withServer(ORIGINAL, async (url, hosts) => {
    assert.equal((await post(`${url}/domains`, "")).status, 400);
    assert.equal((await post(`${url}/clusterip`, "not-an-ip")).status, 400);
    assert.equal((await post(`${url}/adjustendpoints`, '{"not":"a list"}')).status, 400);
    assert.equal((await post(`${url}/records`, "{}")).status, 204);
    // Its body is never read: older external-dns sends it with no type at all.
    const untyped = await fetch(`${url}/records`, {
      method: "POST",
      body: new Blob(["{}"]),
      headers: AUTH,
    });
    assert.equal(untyped.status, 204);
    const missing = await fetch(`${url}/nope`, { headers: AUTH });
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
    for (let i = 0; i < 10; i++) assert.ok(text.includes(`\n10.1.2.3 n${i}.dtk.io\n`), text);
    assert.ok(text.startsWith(ORIGINAL));
  });
});

Deno.test("dns webhook: listens on loopback unless told otherwise, never on every interface", async () => {
  const server = await startDnsWebhook({ token: TOKEN, port: 0, hostsFile: "/nonexistent" });
  try {
    assert.equal(server.hostname, "127.0.0.1");
  } finally {
    await server.shutdown();
  }
  await assert.rejects(
    () => startDnsWebhook({ token: "short", port: 0 }),
    /token of at least 16 characters/,
  );
});

Deno.test("dns webhook: every request needs the cluster's token (Bearer, or Basic's password)", async () => {
  await withServer(ORIGINAL, async (url, hosts, server, logs) => {
    const batch = JSON.stringify([{ dnsName: "a.dtk.io" }]);
    for (const authorization of [undefined, "Bearer wrong", `Basic ${btoa("dtk:wrong")}`, TOKEN]) {
      const headers: Record<string, string> = { "content-type": WEBHOOK_MEDIA_TYPE };
      if (authorization !== undefined) headers.authorization = authorization;
      for (const [path, body] of [["/domains", '"dtk.io"'], ["/clusterip", '"6.6.6.6"']]) {
        const r = await fetch(`${url}${path}`, { method: "POST", body, headers });
        assert.equal(r.status, 401, `${authorization} ${path}`);
        assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer/);
        await r.body?.cancel();
      }
      const r = await fetch(`${url}/adjustendpoints`, { method: "POST", body: batch, headers });
      assert.equal(r.status, 401);
      await r.body?.cancel();
      const g = await fetch(`${url}/records`, { headers });
      assert.equal(g.status, 401);
      await g.body?.cancel();
    }
    assert.deepEqual(server.state(), { clusterIp: "", domains: [], records: [] });
    assert.ok(
      logs.some((l) => l.includes('refused POST "/domains": wrong token')),
      logs.join("\n"),
    );
    // external-dns sends the token as the password of the URL it is given: HTTP Basic.
    const basic = { authorization: `Basic ${btoa(`dtk:${TOKEN}`)}` };
    assert.equal((await post(`${url}/domains`, '"dtk.io"', basic)).status, 200);
    assert.equal((await post(`${url}/clusterip`, '"10.1.2.3"', basic)).status, 200);
    assert.equal((await post(`${url}/adjustendpoints`, batch, basic)).status, 200);
    assert.equal(await Deno.readTextFile(hosts), ORIGINAL + block("10.1.2.3 a.dtk.io"));
  });
});

Deno.test("dns webhook: no CORS headers, and a preflight is refused", async () => {
  await withServer(ORIGINAL, async (url) => {
    const preflight = await fetch(`${url}/adjustendpoints`, {
      method: "OPTIONS",
      headers: {
        origin: "http://evil.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
      },
    });
    await preflight.body?.cancel();
    assert.notEqual(preflight.status, 204);
    assert.ok(preflight.status >= 400);
    const [get] = await getJson(`${url}/`);
    const answered = await post(`${url}/domains`, '"dtk.io"', { origin: "http://evil.example" });
    await answered.body?.cancel();
    for (const r of [preflight, get, answered]) {
      for (const [name] of r.headers) assert.ok(!name.startsWith("access-control-"), name);
    }
  });
});

Deno.test("dns webhook: bodies must be of the external-dns media type (415 otherwise)", async () => {
  await withServer(ORIGINAL, async (url, _hosts, server) => {
    for (const type of ["text/plain", "application/json", "application/x-www-form-urlencoded"]) {
      const r = await post(`${url}/domains`, '"dtk.io"', { "content-type": type });
      assert.equal(r.status, 415, type);
      await r.body?.cancel();
    }
    // A Blob without a type: fetch sends no Content-Type at all.
    const none = await fetch(`${url}/domains`, {
      method: "POST",
      body: new Blob(['"dtk.io"']),
      headers: AUTH,
    });
    assert.equal(none.status, 415);
    await none.body?.cancel();
    // No Content-Type but Accept of the webhook type: how older external-dns clients post.
    const older = await fetch(`${url}/domains`, {
      method: "POST",
      body: new Blob(['"old.io"']),
      headers: { ...AUTH, accept: WEBHOOK_MEDIA_TYPE },
    });
    assert.equal(older.status, 200);
    // A Content-Type of another type is refused whatever Accept says.
    const mixed = await post(`${url}/domains`, '"x.io"', {
      "content-type": "text/plain",
      accept: WEBHOOK_MEDIA_TYPE,
    });
    assert.equal(mixed.status, 415);
    await mixed.body?.cancel();
    assert.deepEqual(server.state().domains, ["old.io"]);
    const spelled = "Application/External.DNS.Webhook+JSON; version=1; charset=utf-8";
    assert.equal(
      (await post(`${url}/domains`, '"dtk.io"', { "content-type": spelled })).status,
      200,
    );
    assert.deepEqual(server.state().domains, ["old.io", "dtk.io"]);
  });
});

Deno.test("dns webhook: /domains takes domain names of two labels or more, nothing else", async () => {
  await withServer(ORIGINAL, async (url, _hosts, server, logs) => {
    for (
      const body of [
        '"*.com"',
        '"com"',
        '"localhost"',
        '"x.localhost"',
        '"10.1.2.3"',
        '"a_b.io"',
        '"dtk.io\\n6.6.6.6 bank.com"',
        '["ok.io", "*.com"]',
        '"-bad.io"',
        `"${"a".repeat(64)}.io"`,
      ]
    ) {
      const r = await post(`${url}/domains`, body);
      assert.equal(r.status, 400, body);
      assert.match(String((await r.json()).error), /Not a managed domain/);
    }
    assert.deepEqual(server.state().domains, []);
    assert.ok(logs.every((l) => !l.includes("\n")), "a refused domain is logged escaped");
    assert.equal((await post(`${url}/domains`, '["ok.io", "Lab.Example."]')).status, 200);
    assert.deepEqual(server.state().domains, ["ok.io", "lab.example"]);
    // Every name of a batch is checked against each managed domain: the list is bounded.
    const many = JSON.stringify(Array.from({ length: 100_000 }, (_, i) => `d${i}.io`));
    const flood = await post(`${url}/domains`, many);
    assert.equal(flood.status, 400);
    assert.match(String((await flood.json()).error), /Too many managed domains: at most 64/);
    assert.deepEqual(server.state().domains, ["ok.io", "lab.example"]);
  });
});

Deno.test("dns webhook: never touches a hosts-file line it did not write", async () => {
  const mine = "127.0.0.1 localhost\n10.0.0.5 foo.dtk.io\n1.2.3.4  bar.dtk.io baz.dtk.io # mine\n" +
    "#10.9.9.9 old.dtk.io\n";
  const later = "192.168.1.1 router.home\n";
  await withServer(
    mine + block("10.0.0.1 kept.dtk.io", "10.0.0.1 moved.dtk.io") + later,
    async (url, hosts, _s, logs) => {
      await post(`${url}/domains`, "dtk.io");
      await post(`${url}/clusterip`, "10.1.2.3");
      const batch = [
        "foo.dtk.io",
        "bar.dtk.io",
        "baz.dtk.io",
        "moved.dtk.io",
        "new.dtk.io",
        "old.dtk.io",
      ]
        .map((dnsName) => ({ dnsName }));
      assert.equal((await post(`${url}/adjustendpoints`, JSON.stringify(batch))).status, 200);
      // The user's lines stay byte for byte, before and after the block; only the block changes.
      assert.equal(
        await Deno.readTextFile(hosts),
        mine +
          block(
            "10.0.0.1 kept.dtk.io",
            "10.1.2.3 moved.dtk.io",
            "10.1.2.3 new.dtk.io",
            "10.1.2.3 old.dtk.io",
          ) + later,
      );
      assert.ok(
        logs.some((l) => l.startsWith('skipped "foo.dtk.io": the hosts file names it outside')),
        logs.join("\n"),
      );
    },
  );
  // A BEGIN whose END was deleted is no block: it and the lines after it stay as they are.
  const broken = "127.0.0.1 localhost\n" + BEGIN +
    "\n10.0.0.8 a.dtk.io\n# mine\n10.0.0.9 b.x c.x\n";
  await withServer(broken, async (url, hosts) => {
    await post(`${url}/domains`, "dtk.io");
    await post(`${url}/clusterip`, "10.1.2.3");
    await post(`${url}/adjustendpoints`, JSON.stringify([{ dnsName: "n.dtk.io" }]));
    assert.equal(await Deno.readTextFile(hosts), broken + block("10.1.2.3 n.dtk.io"));
    await post(`${url}/clusterip`, "10.1.2.4");
    await post(`${url}/adjustendpoints`, JSON.stringify([{ dnsName: "n.dtk.io" }]));
    assert.equal(await Deno.readTextFile(hosts), broken + block("10.1.2.4 n.dtk.io"));
  });
  // Another cluster's block is someone else's lines too.
  const other = hostsBlockBegin("lab") + "\n10.0.0.7 x.dtk.io\n" + hostsBlockEnd("lab") + "\n";
  await withServer(other, async (url, hosts) => {
    await post(`${url}/domains`, "dtk.io");
    await post(`${url}/clusterip`, "10.1.2.3");
    await post(`${url}/adjustendpoints`, JSON.stringify([{ dnsName: "y.dtk.io" }]));
    assert.equal(await Deno.readTextFile(hosts), other + block("10.1.2.3 y.dtk.io"));
  });
});

Deno.test("dns webhook: 20,000 endpoints in one batch (linear: the original scanned every line per name)", async () => {
  await withServer(ORIGINAL, async (url, hosts) => {
    await post(`${url}/domains`, "dtk.io");
    await post(`${url}/clusterip`, "10.1.2.3");
    const batch = Array.from({ length: 20_000 }, (_, i) => ({
      dnsName: `host-${i}.apps.dtk.io`,
      targets: [`10.32.${i >> 8}.${i & 255}`],
      recordType: "A",
      recordTTL: 300,
      labels: { owner: "default", resource: `ingress/default/app-${i}` },
    }));
    const body = JSON.stringify(batch);
    assert.equal((await post(`${url}/adjustendpoints`, body)).status, 200);
    // Twice: the second run updates 20,000 lines of dtk's block in place.
    await post(`${url}/clusterip`, "10.1.2.4");
    assert.equal((await post(`${url}/adjustendpoints`, body)).status, 200);
    const lines = (await Deno.readTextFile(hosts)).split("\n");
    assert.equal(lines.filter((l) => l.startsWith("10.1.2.4 host-")).length, 20_000);
    assert.equal(lines.filter((l) => l.startsWith("10.1.2.3 ")).length, 0);
  });
});

Deno.test("dns webhook: a body over the limit is 413, also when it streams in without a length", async () => {
  await withServer(ORIGINAL, async (url, _hosts, server) => {
    const big = JSON.stringify("x".repeat(2000));
    const r = await post(`${url}/domains`, big);
    assert.equal(r.status, 413);
    await r.body?.cancel();
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 4096) return controller.close();
        sent++;
        controller.enqueue(new Uint8Array(65536).fill(32));
      },
    });
    const streamed = await post(`${url}/adjustendpoints`, stream);
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
    // 256 MiB offered: the server stops reading at the limit instead of taking it all.
    assert.ok(sent < 4096, `read ${sent} chunks: the body must be cut off at the limit`);
    assert.deepEqual(server.state().records, []);
  }, { maxBodyBytes: 1024 });
});

Deno.test("dns webhook: shutdown is bounded while a client is still sending its body", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-dnswebhook-" });
  const stop = new AbortController();
  const server = await startDnsWebhook({
    token: TOKEN,
    port: 0,
    hostsFile: join(dir, "hosts"),
    signal: stop.signal,
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    await conn.write(new TextEncoder().encode(
      `POST /adjustendpoints HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n` +
        `content-type: ${WEBHOOK_MEDIA_TYPE}\r\ncontent-length: 1000000\r\n\r\n[`,
    ));
    await new Promise((r) => setTimeout(r, 100));
    stop.abort(); // what SIGTERM does in dtk dns-webhook
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      server.finished.then(() => "stopped"),
      new Promise((r) => timer = setTimeout(() => r("still running after 3 s"), 3000)),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, "stopped");
  } finally {
    conn.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dns webhook: names are logged escaped, so a name cannot forge a log line", async () => {
  await withServer(ORIGINAL, async (url, _hosts, _server, logs) => {
    await post(`${url}/domains`, "dtk.io");
    await post(`${url}/clusterip`, "10.1.2.3");
    const names = [
      "a.dtk.io\n[2026-01-01T00:00:00Z] added 6.6.6.6 bank.com",
      "b\u202eoi.ktd.dtk.io",
    ];
    await post(`${url}/adjustendpoints`, JSON.stringify(names.map((dnsName) => ({ dnsName }))));
    assert.ok(logs.some((l) => l.includes("skipped")), logs.join("\n"));
    for (const line of logs) {
      assert.ok(
        !/[\n\u202e]/.test(line),
        `raw control or bidi character in ${JSON.stringify(line)}`,
      );
    }
  });
});

Deno.test("dns webhook token: made once, 0600, reused; a FIFO or a link in its place is refused", async () => {
  const { ensureWebhookToken, webhookTokenPath } = await import("../../lib/dnswebhook/mod.ts");
  const dir = await Deno.makeTempDir({ prefix: "dtk-dnswebhook-token-" });
  try {
    const cluster = join(dir, "generated", "dtk");
    const token = await ensureWebhookToken(cluster);
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.equal((await Deno.stat(webhookTokenPath(cluster))).mode! & 0o777, 0o600);
    assert.equal(await ensureWebhookToken(cluster), token);
    const other = join(dir, "other");
    await Deno.mkdir(other);
    const made = await new Deno.Command("mkfifo", { args: [webhookTokenPath(other)] }).output();
    assert.ok(made.success);
    await assert.rejects(() => ensureWebhookToken(other), /not a small regular file/);
    const linked = join(dir, "linked");
    await Deno.mkdir(linked);
    await Deno.symlink(webhookTokenPath(cluster), webhookTokenPath(linked));
    await assert.rejects(() => ensureWebhookToken(linked), /not a small regular file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
