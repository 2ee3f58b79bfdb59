import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { HashingWriter, pumpBody, pumpFile } from "./_sink.ts";

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

async function withFile(fn: (path: string, file: Deno.FsFile) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-sink-" });
  const path = join(dir, "out");
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    await fn(path, file);
  } finally {
    try {
      file.close();
    } catch { /* closed by the test */ }
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("sink: chunks of every size land in order, hashed once, through a small pool", async () => {
  await withFile(async (path, file) => {
    const data = bytes(100_003, 7);
    const hash = createHash("sha256");
    // 4 KiB buffers: the 3-buffer pool cycles about 25 times, with writes still in flight.
    const sink = new HashingWriter(file, hash, { bufferSize: 4096 });
    const sizes = [1, 4095, 4096, 4097, 10_000, 3, 0, 8192];
    let off = 0;
    for (let i = 0; off < data.length; i++) {
      const n = Math.min(sizes[i % sizes.length]!, data.length - off);
      await sink.write(data.subarray(off, off + n));
      off += n;
    }
    assert.equal(await sink.finish(), data.length);
    file.close();
    assert.equal(hash.digest("hex"), sha256(data));
    assert.deepEqual(await Deno.readFile(path), data);
  });
});

Deno.test("sink: a file read straight into its buffers", async () => {
  await withFile(async (path, file) => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-sink-src-" });
    try {
      const data = bytes(50_000, 3);
      await Deno.writeFile(join(dir, "src"), data);
      const input = await Deno.open(join(dir, "src"));
      const hash = createHash("sha256");
      const sink = new HashingWriter(file, hash, { bufferSize: 4096 });
      const reads: number[] = [];
      await pumpFile(input, sink, { onRead: (n) => reads.push(n) });
      input.close();
      assert.equal(await sink.finish(), data.length);
      file.close();
      assert.equal(reads.reduce((a, b) => a + b, 0), data.length);
      assert.equal(hash.digest("hex"), sha256(data));
      assert.deepEqual(await Deno.readFile(path), data);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("sink: after a failure, abandon keeps the bytes it holds, so a resume can use them", async () => {
  await withFile(async (path, file) => {
    const data = bytes(10_000, 5);
    const sink = new HashingWriter(file, createHash("sha256"), { bufferSize: 4096 });
    await sink.write(data.subarray(0, 6000));
    await sink.write(data.subarray(6000, 7001));
    await sink.abandon();
    file.close();
    // The unhashed tail is written too: the file is exactly the prefix received.
    assert.deepEqual(await Deno.readFile(path), data.subarray(0, 7001));
    await assert.rejects(() => sink.write(data.subarray(0, 10)));
  });
});

Deno.test("sink: a write that fails is reported, not lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-sink-ro-" });
  try {
    await Deno.writeFile(join(dir, "ro"), new Uint8Array());
    const readOnly = await Deno.open(join(dir, "ro"), { read: true });
    const sink = new HashingWriter(readOnly, createHash("sha256"), { bufferSize: 1024 });
    await assert.rejects(async () => {
      for (let i = 0; i < 8; i++) await sink.write(bytes(1024, i));
      await sink.finish();
    });
    await sink.abandon();
    readOnly.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function byteStream(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk === undefined) {
        controller.close();
        // A BYOB read waiting at the end is answered with an empty view.
        controller.byobRequest?.respond(0);
      } else controller.enqueue(chunk.slice());
    },
  });
}

function plainStream(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk.slice());
    },
  });
}

for (const [kind, make] of [["byte", byteStream], ["plain", plainStream]] as const) {
  Deno.test(`sink: pumpBody reads a ${kind} stream whole`, async () => {
    await withFile(async (path, file) => {
      const data = bytes(70_000, 11);
      const chunks = [0, 1, 5000, 17_000, 40_000, 70_000].slice(1).map((end, i, all) =>
        data.subarray(i === 0 ? 0 : all[i - 1]!, end)
      );
      const hash = createHash("sha256");
      const sink = new HashingWriter(file, hash, { bufferSize: 8192 });
      let seen = 0;
      await pumpBody(make(chunks), sink, { onRead: (n) => void (seen += n) });
      assert.equal(await sink.finish(), data.length);
      file.close();
      assert.equal(seen, data.length);
      assert.equal(hash.digest("hex"), sha256(data));
      assert.deepEqual(await Deno.readFile(path), data);
    });
  });
}

Deno.test("sink: pumpBody stops and cancels the stream when a check fails", async () => {
  await withFile(async (_path, file) => {
    let cancelled = false;
    let pulls = 0;
    const stream = new ReadableStream<Uint8Array>({
      type: "bytes",
      pull(controller) {
        pulls++;
        controller.enqueue(bytes(1000, pulls));
      },
      cancel() {
        cancelled = true;
      },
    });
    const sink = new HashingWriter(file, createHash("sha256"), { bufferSize: 4096 });
    let total = 0;
    await assert.rejects(
      () =>
        pumpBody(stream, sink, {
          onRead: (n) => {
            total += n;
            if (total > 5000) throw new Error("too big");
          },
        }),
      /too big/,
    );
    await sink.abandon();
    assert.ok(cancelled, "the stream was cancelled");
    assert.ok(pulls <= 8, `reading stopped (${pulls} pulls)`);
  });
});
