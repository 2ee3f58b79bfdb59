import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { hashFile, hashFrom } from "./_hash.ts";

Deno.test("hashFrom: exact byte ranges with reads overlapping the hash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-hash-" });
  try {
    const data = new Uint8Array(10_007).map((_, i) => (i * 7 + 3) & 0xff);
    const path = join(dir, "f");
    await Deno.writeFile(path, data);
    const expect = (from: number, to: number) =>
      createHash("sha256").update(data.subarray(from, to)).digest("hex");
    for (const size of [1, 7, 4096, 1 << 20]) {
      for (
        const [start, length] of [[0, undefined], [0, 0], [0, 5000], [123, 9884], [9000, 5000]]
      ) {
        const file = await Deno.open(path);
        try {
          await file.seek(start!, Deno.SeekMode.Start);
          const hash = createHash("sha256");
          let seen = 0;
          const n = await hashFrom(file, hash, {
            length,
            buffer: new Uint8Array(size),
            onBytes: (k) => void (seen += k),
          });
          const end = Math.min(data.length, start! + (length ?? data.length));
          const label = `buffer ${size}, start ${start}, length ${length}`;
          assert.equal(n, end - start!, label);
          assert.equal(seen, n, label);
          assert.equal(hash.digest("hex"), expect(start!, end), label);
          // Nothing beyond the range was read: the file is positioned right after it.
          assert.equal(await file.seek(0, Deno.SeekMode.Current), end, label);
        } finally {
          file.close();
        }
      }
    }
    assert.deepEqual(await hashFile(path), { hash: expect(0, data.length), size: data.length });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
