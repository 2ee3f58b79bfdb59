/**
 * `deno task build`: `deno compile` into `dist/dtk`, then a smoke test of the binary from an
 * empty folder. Where Deno's download host (for the `denort` base binary) is unreachable, it
 * prints `SKIP: …` and exits 0, unless `DTK_REQUIRE_BINARY=1`.
 *
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };

const root = new URL("../../", import.meta.url).pathname;
const output = `${root}dist/dtk`;
const require = Deno.env.get("DTK_REQUIRE_BINARY") === "1";
const target = Deno.env.get("DTK_TARGET");

const excludes = (denoJson as { compile?: { exclude?: string[] } }).compile?.exclude ?? [];
const args = [
  "compile",
  "--allow-all",
  "--exclude-unused-npm",
  ...excludes.flatMap((e) => ["--exclude", `${root}${e}`]),
  ...(target ? ["--target", target] : []),
  "--output",
  output,
  `${root}main.ts`,
];
console.error(`$ deno ${args.join(" ")}`);
const compiled = await new Deno.Command(Deno.execPath(), {
  args,
  env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
  stdout: "inherit",
  stderr: "piped",
}).output();
const stderr = new TextDecoder().decode(compiled.stderr);
if (!compiled.success) {
  const unreachable = /dns error|failed to lookup|Connection refused|error sending request|denort/i
    .test(stderr);
  if (unreachable) {
    const reason = stderr.split("\n").map((l) =>
      l.trim()
    ).filter((l) => /dns error|lookup|refused|sending request|download/i.test(l)).join("; ") ||
      "download failed";
    const message =
      `SKIP: deno compile needs the denort base binary from Deno's download host, which this machine cannot reach (${reason})`;
    if (require) {
      console.error(message.replace(/^SKIP/, "FAIL"));
      Deno.exit(1);
    }
    console.log(message);
    Deno.exit(0);
  }
  console.error(stderr);
  Deno.exit(1);
}

// Smoke test: the binary must work from an empty folder, with nothing beside it.
const empty = await Deno.makeTempDir({ prefix: "dtk-smoke-" });
try {
  for (const cmd of [["version"], ["help"], ["config", "show"]]) {
    const r = await new Deno.Command(output, {
      args: cmd,
      cwd: empty,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!r.success) {
      console.error(`FAIL: dist/dtk ${cmd.join(" ")} exited ${r.code}`);
      console.error(new TextDecoder().decode(r.stderr));
      Deno.exit(1);
    }
    console.log(`ok: dist/dtk ${cmd.join(" ")}`);
  }
} finally {
  await Deno.remove(empty, { recursive: true });
}
const size = (await Deno.stat(output)).size;
console.log(`Built ${output} (${(size / 1048576).toFixed(1)} MiB)`);
