import assert from "node:assert/strict";
import { join } from "node:path";
import { tarArchive, tarNameProblem } from "./_tar.ts";

const encoder = new TextEncoder();

/** Extracts `archive` with the system's tar into a fresh folder; returns every file found. */
async function extract(archive: Uint8Array): Promise<Map<string, string>> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-tar-" });
  try {
    const child = new Deno.Command("tar", {
      args: ["-x", "-f", "-", "-C", dir],
      stdin: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(archive);
    await writer.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const files = new Map<string, string>();
    const walk = async (sub: string) => {
      for await (const e of Deno.readDir(join(dir, sub))) {
        const rel = sub === "" ? e.name : `${sub}/${e.name}`;
        if (e.isDirectory) await walk(rel);
        else files.set(rel, await Deno.readTextFile(join(dir, rel)));
      }
    };
    await walk("");
    return files;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs tarArchive in a worker, so that a hang (the old UTF-16 length loop) fails in bounded time. */
async function tarInWorker(name: string): Promise<Uint8Array> {
  const source = `import { tarArchive } from ${
    JSON.stringify(new URL("./_tar.ts", import.meta.url).href)
  };
self.onmessage = (e) => {
  self.postMessage(tarArchive([{ name: e.data, data: new TextEncoder().encode("x"), mode: 0o644 }], 0));
};`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(e);
      timer = setTimeout(() => reject(new Error(`tarArchive did not return within 10 s`)), 10_000);
      worker.postMessage(name);
    });
  } finally {
    clearTimeout(timer);
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}

Deno.test("tar: a name over 255 bytes of non-ASCII characters (PAX, lengths in bytes) round-trips", async () => {
  // 400 bytes but 200 UTF-16 units, and no "/" where ustar's prefix and name fields could split it.
  const long = "é".repeat(100) + "/" + "😀".repeat(50);
  const nested = `etc/${"日本語".repeat(20)}/${"ü".repeat(60)}.conf`;
  for (const name of [long, nested]) {
    assert.ok(encoder.encode(name).length > 255);
    const archive = await tarInWorker(name);
    assert.deepEqual([...(await extract(archive))], [[name, "x"]]);
  }
  // Short, ASCII and split names still take no PAX header.
  const files = await extract(tarArchive([
    { name: "a/b.txt", data: encoder.encode("1"), mode: 0o600 },
    { name: `${"d".repeat(120)}/${"f".repeat(90)}`, data: encoder.encode("2"), mode: 0o644 },
  ]));
  assert.deepEqual(files.get("a/b.txt"), "1");
  assert.deepEqual(files.get(`${"d".repeat(120)}/${"f".repeat(90)}`), "2");
});

Deno.test("tar: absolute, .., NUL and empty names are refused before anything is written", () => {
  for (const name of ["/etc/shadow", "../x", "a/../../etc/passwd", "a/..", "a\0b", "", "a//b"]) {
    assert.ok(tarNameProblem(name) !== undefined, name);
    assert.throws(
      () => tarArchive([{ name, data: new Uint8Array(), mode: 0o644 }]),
      /Cannot put .* in a tar archive/,
      name,
    );
  }
  for (const name of ["a", "a/b", ".x.dtk-1234", "etc/..foo/x", "a/"]) {
    assert.equal(tarNameProblem(name), undefined, name);
  }
});
