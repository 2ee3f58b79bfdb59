import assert from "node:assert/strict";
import { join } from "node:path";
import { buildIso, writeIso } from "./mod.ts";

async function have(tool: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).output();
    return out.success;
  } catch {
    return false;
  }
}

async function run(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}

const FILES = [
  { name: "user-data", data: "#cloud-config\nhostname: node-1\n" },
  { name: "meta-data", data: "instance-id: node-1\nlocal-hostname: node-1\n" },
  { name: "network-config", data: "version: 2\n" },
  // Spans several sectors, to check extents.
  { name: "big.bin", data: new Uint8Array(5000).map((_, i) => i % 251) },
  { name: "empty", data: "" },
];

const hasXorriso = await have("xorriso");
const hasIsoinfo = await have("isoinfo");
const hasBlkid = await have("blkid");

Deno.test("buildIso is byte-identical across runs and depends on the epoch", () => {
  const a = buildIso(FILES, { label: "cidata", epoch: 0 });
  const b = buildIso([...FILES].reverse(), { label: "cidata", epoch: 0 });
  assert.deepEqual(a, b);
  const c = buildIso(FILES, { label: "cidata", epoch: 1_700_000_000 });
  assert.notDeepEqual(a, c);
  assert.equal(a.length % 2048, 0);
  assert.equal(new TextDecoder().decode(a.subarray(16 * 2048 + 1, 16 * 2048 + 6)), "CD001");
});

Deno.test("buildIso honours SOURCE_DATE_EPOCH", () => {
  const before = Deno.env.get("SOURCE_DATE_EPOCH");
  try {
    Deno.env.set("SOURCE_DATE_EPOCH", "1700000000");
    assert.deepEqual(
      buildIso(FILES, { label: "X" }),
      buildIso(FILES, { label: "X", epoch: 1_700_000_000 }),
    );
    Deno.env.set("SOURCE_DATE_EPOCH", "junk");
    assert.throws(() => buildIso(FILES, { label: "X" }), /SOURCE_DATE_EPOCH/);
  } finally {
    if (before === undefined) Deno.env.delete("SOURCE_DATE_EPOCH");
    else Deno.env.set("SOURCE_DATE_EPOCH", before);
  }
});

Deno.test("buildIso rejects bad names and labels", () => {
  assert.throws(() => buildIso([{ name: "a/b", data: "" }], { label: "X" }), /Invalid file name/);
  assert.throws(
    () => buildIso([{ name: "a", data: "" }, { name: "a", data: "" }], { label: "X" }),
    /Duplicate/,
  );
  assert.throws(() => buildIso([], { label: "" }), /Invalid ISO volume label/);
  assert.throws(() => buildIso([], { label: "x".repeat(33) }), /Invalid ISO volume label/);
});

Deno.test({
  name: `xorriso reads back Joliet names and contents${hasXorriso ? "" : " (skipped: no xorriso)"}`,
  ignore: !hasXorriso,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-iso-" });
    try {
      const iso = join(dir, "seed.iso");
      await writeIso(iso, FILES, { label: "cidata", epoch: 0 });
      assert.equal((await Deno.stat(iso)).mode! & 0o777, 0o600);
      const listing = await run(["xorriso", "-indev", iso, "-ls", "/"]);
      for (const f of FILES) assert.match(listing, new RegExp(`'${f.name}'`));
      for (const f of FILES) {
        const out = join(dir, `out-${f.name}`);
        await run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", `/${f.name}`, out]);
        const expected = typeof f.data === "string" ? new TextEncoder().encode(f.data) : f.data;
        assert.deepEqual(await Deno.readFile(out), expected, f.name);
      }
      const pvd = await run(["xorriso", "-indev", iso, "-pvd_info"]);
      assert.match(pvd, /Volume Id\s*:\s*cidata/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `isoinfo lists Joliet and ISO names and the label${
    hasIsoinfo ? "" : " (skipped: no isoinfo)"
  }`,
  ignore: !hasIsoinfo,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-iso-" });
    try {
      const iso = join(dir, "ks.iso");
      await writeIso(iso, [{ name: "ks.cfg", data: "text\n" }, ...FILES], { label: "OEMDRV" });
      const info = await run(["isoinfo", "-d", "-i", iso]);
      assert.match(info, /Volume id: OEMDRV/);
      assert.match(info, /Joliet with UCS level 3 found/);
      const joliet = await run(["isoinfo", "-J", "-f", "-i", iso]);
      assert.deepEqual(joliet.trim().split("\n").sort(), [
        "/big.bin",
        "/empty",
        "/ks.cfg",
        "/meta-data",
        "/network-config",
        "/user-data",
      ]);
      const plain = await run(["isoinfo", "-f", "-i", iso]);
      assert.match(plain, /\/KS\.CFG;1/);
      assert.match(plain, /\/USER_DATA\.;1/);
      const ks = await run(["isoinfo", "-J", "-x", "/ks.cfg", "-i", iso]);
      assert.equal(ks, "text\n");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `blkid -p sees an iso9660 filesystem with the label${
    hasBlkid ? "" : " (skipped: no blkid)"
  }`,
  ignore: !hasBlkid,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-iso-" });
    try {
      for (const label of ["OEMDRV", "CFGENP0S8", "cidata"]) {
        const iso = join(dir, `${label}.iso`);
        await writeIso(iso, [{ name: "ifcfg-enp0s8", data: "DEVICE=enp0s8\n" }], { label });
        const out = await run(["blkid", "-p", "-o", "export", iso]);
        assert.match(out, /^TYPE=iso9660$/m);
        assert.match(out, new RegExp(`^LABEL=${label}$`, "m"));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
