import assert from "node:assert/strict";
import { join } from "node:path";
import { startMirror } from "./mirror.ts";

Deno.test("mirror: serves by name and by hash, with Range, If-Range, HEAD and 404/416", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-mirror-test-" });
  try {
    const bytes = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 31) % 251);
    await Deno.writeFile(join(dir, "blob.bin"), bytes);
    const hex = "ab".repeat(32);
    await using mirror = startMirror(dir, { byHash: { [hex]: "blob.bin" } });
    assert.match(mirror.url, /^http:\/\/127\.0\.0\.1:\d+$/);

    const whole = await fetch(`${mirror.url}/blob.bin`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("content-length"), String(bytes.length));
    assert.equal(whole.headers.get("etag"), `"${hex}"`);
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);

    const byHash = await fetch(`${mirror.url}/sha256/${hex}`);
    assert.deepEqual(new Uint8Array(await byHash.arrayBuffer()), bytes);

    const middle = await fetch(`${mirror.url}/blob.bin`, { headers: { range: "bytes=10-19" } });
    assert.equal(middle.status, 206);
    assert.equal(middle.headers.get("content-range"), `bytes 10-19/${bytes.length}`);
    assert.deepEqual(new Uint8Array(await middle.arrayBuffer()), bytes.subarray(10, 20));

    const suffix = await fetch(`${mirror.url}/blob.bin`, { headers: { range: "bytes=-5" } });
    assert.equal(suffix.status, 206);
    assert.deepEqual(new Uint8Array(await suffix.arrayBuffer()), bytes.subarray(bytes.length - 5));

    const matching = await fetch(`${mirror.url}/blob.bin`, {
      headers: { range: "bytes=1048576-", "if-range": `"${hex}"` },
    });
    assert.equal(matching.status, 206);
    assert.deepEqual(new Uint8Array(await matching.arrayBuffer()), bytes.subarray(1048576));

    const changed = await fetch(`${mirror.url}/blob.bin`, {
      headers: { range: "bytes=5-", "if-range": `"${"cd".repeat(32)}"` },
    });
    assert.equal(changed.status, 200);
    await changed.body?.cancel();

    const beyond = await fetch(`${mirror.url}/blob.bin`, {
      headers: { range: `bytes=${bytes.length}-` },
    });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), `bytes */${bytes.length}`);
    await beyond.body?.cancel();

    const head = await fetch(`${mirror.url}/blob.bin`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(bytes.length));

    for (const path of ["/missing", "/../etc/passwd", `/sha256/${"00".repeat(32)}`, "/a/b"]) {
      const response = await fetch(`${mirror.url}${path}`);
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
    const post = await fetch(`${mirror.url}/blob.bin`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
    assert.equal(mirror.requests[0]?.path, "/blob.bin");
    assert.equal(mirror.requests.filter((r) => r.status === 206).length, 3);
    await mirror.close();
    await assert.rejects(fetch(`${mirror.url}/blob.bin`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
