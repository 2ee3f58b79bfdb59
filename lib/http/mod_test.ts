import assert from "node:assert/strict";
import { readAtMost, readTextAtMost } from "./mod.ts";

/** A body of `chunks` chunks of 64 KiB, with no declared length; counts what was pulled. */
function endless(chunks: number): { response: Response; pulled: () => number } {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= chunks) return controller.close();
      pulled++;
      controller.enqueue(new Uint8Array(65536).fill(97));
    },
  });
  return { response: new Response(stream), pulled: () => pulled };
}

Deno.test("readAtMost: stops at the limit while the body streams in, and says so", async () => {
  const { response, pulled } = endless(16_384); // 1 GiB offered
  assert.equal(await readAtMost(response, 1024 * 1024), undefined);
  assert.ok(pulled() <= 17 + 2, `pulled ${pulled()} chunks of 64 KiB for a 1 MiB limit`);
  const small = endless(2);
  assert.equal((await readAtMost(small.response, 1024 * 1024))?.length, 131072);
  assert.equal(await readTextAtMost(new Response("héllo"), 6), "héllo");
  assert.equal(await readTextAtMost(new Response("héllo"), 5), undefined);
  const declared = new Response("x", { headers: { "content-length": "999999999" } });
  assert.equal(await readAtMost(declared, 10), undefined);
  assert.deepEqual(await readAtMost(new Response(null), 10), new Uint8Array());
});
