/**
 * `deno task build`: `deno compile` of every supported target into `dist/` with the release's
 * names (`dtk-<version>-<platform>`) and a `SHA256SUMS`, from a staged copy of the source stamped
 * with the version, commit and date; then a smoke test of the binary this host runs, from an
 * empty folder. The release workflow runs this same task.
 *
 * Environment: `DTK_VERSION` (else the tag of a tag push, else `deno.json`'s with `-dev`),
 * `DTK_TARGETS` (comma-separated platforms, e.g. `linux-amd64`; default all), and
 * `DTK_REQUIRE_BINARY=1` to fail instead of skipping where the `denort` base binary cannot be
 * downloaded (Deno's download host unreachable): then it prints `SKIP: …` and exits 0.
 *
 * @module
 */
import { join } from "node:path";
import { writeFileAtomic } from "../../lib/fs/mod.ts";
import {
  artifactName,
  buildCommit,
  buildDate,
  formatSums,
  releaseVersion,
  ROOT,
  sha256File,
  SMOKE_COMMANDS,
  SMOKE_DOCTOR,
  stageSource,
  type Target,
  TARGETS,
} from "./_release.ts";

const env = (name: string) => Deno.env.get(name);
const dist = join(ROOT, "dist");
const require = env("DTK_REQUIRE_BINARY") === "1";
const decoder = new TextDecoder();

function selectedTargets(): Target[] {
  const wanted = env("DTK_TARGETS")?.split(",").map((s) => s.trim()).filter(Boolean);
  if (!wanted) return [...TARGETS];
  const unknown = wanted.filter((p) => !TARGETS.some((t) => t.platform === p));
  if (unknown.length > 0) {
    fail(`unknown DTK_TARGETS ${unknown.join(", ")} (supported: ${platforms()})`);
  }
  return TARGETS.filter((t) => wanted.includes(t.platform));
}

function platforms(): string {
  return TARGETS.map((t) => t.platform).join(", ");
}

/** A build that cannot succeed: reported as `FAIL: …`, exit 1, after the temp folders are gone. */
class BuildFailure extends Error {}

function fail(message: string): never {
  throw new BuildFailure(message);
}

/** Deno's words when `denort` cannot be downloaded; anything else is a real build failure. */
function unreachableReason(stderr: string): string | undefined {
  if (!/dns error|failed to lookup|Connection refused|error sending request|denort/i.test(stderr)) {
    return undefined;
  }
  return stderr.split("\n").map((l) => l.trim())
    .filter((l) => /dns error|lookup|refused|sending request|download/i.test(l)).join("; ") ||
    "download failed";
}

/** Compiles one target; returns why it could not where `denort` is out of reach. */
async function compile(stage: string, target: Target, output: string): Promise<string | undefined> {
  const args = [
    "compile",
    "--allow-all",
    "--frozen-lockfile",
    "--exclude-unused-npm",
    "--target",
    target.triple,
    "--output",
    output,
    join(stage, "main.ts"),
  ];
  console.error(`$ deno ${args.join(" ")}`);
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: stage,
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (r.success) return undefined;
  const stderr = decoder.decode(r.stderr);
  const reason = unreachableReason(stderr);
  if (reason === undefined) fail(`deno compile for ${target.triple}:\n${stderr}`);
  return `deno compile needs the denort base binary from Deno's download host, which this machine cannot reach (${reason})`;
}

/** The checks the release workflow makes, on the binary this host can run. */
async function smoke(binary: string, version: string): Promise<void> {
  const empty = await Deno.makeTempDir({ prefix: "dtk-smoke-" });
  try {
    for (const cmd of [...SMOKE_COMMANDS, SMOKE_DOCTOR]) {
      const r = await new Deno.Command(binary, {
        args: [...cmd],
        cwd: empty,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const allowed = cmd === SMOKE_DOCTOR ? [0, 3] : [0];
      if (!allowed.includes(r.code)) {
        fail(`${binary} ${cmd.join(" ")} exited ${r.code}\n${decoder.decode(r.stderr)}`);
      }
      if (cmd.join(" ") === "version --json") {
        const reported = JSON.parse(decoder.decode(r.stdout)).version;
        if (reported !== version) fail(`${binary} reports version ${reported}, not ${version}`);
      }
      console.log(`ok: ${binary} ${cmd.join(" ")} (exit ${r.code})`);
    }
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
}

async function run(): Promise<number> {
  const version = releaseVersion(env);
  const build = { version, commit: await buildCommit(env), date: buildDate(env) };
  const targets = selectedTargets();
  console.error(`Building dtk ${version} (${build.commit}) for ${targets.map((t) => t.platform)}`);

  await Deno.mkdir(dist, { recursive: true });
  for await (const entry of Deno.readDir(dist)) {
    if (entry.name.startsWith("dtk-") || entry.name === "SHA256SUMS") {
      await Deno.remove(join(dist, entry.name));
    }
  }
  const stage = await stageSource(build);
  const built: { name: string; path: string; target: Target }[] = [];
  let skip: string | undefined;
  try {
    for (const target of targets) {
      const name = artifactName(version, target);
      const path = join(dist, name);
      skip = await compile(stage, target, path);
      if (skip) break;
      built.push({ name, path, target });
    }
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
  if (skip) {
    if (require) fail(skip);
    console.log(`SKIP: ${skip}`);
    return 0;
  }

  for (const b of built) {
    if (b.target.triple === Deno.build.target) await smoke(b.path, version);
    else console.log(`not run here: ${b.name} (the release workflow runs it on its own runner)`);
  }
  const sums = formatSums(
    await Promise.all(built.map(async (b) => ({ name: b.name, sha256: await sha256File(b.path) }))),
  );
  await writeFileAtomic(join(dist, "SHA256SUMS"), sums);
  for (const b of built) {
    const size = (await Deno.stat(b.path)).size;
    console.log(`Built dist/${b.name} (${(size / 1048576).toFixed(1)} MiB)`);
  }
  console.log("Wrote dist/SHA256SUMS");
  return 0;
}

try {
  Deno.exit(await run());
} catch (error) {
  if (!(error instanceof BuildFailure)) throw error;
  console.error(`FAIL: ${error.message}`);
  Deno.exit(1);
}
