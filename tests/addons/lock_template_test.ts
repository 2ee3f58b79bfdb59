/**
 * `dtk lock` with helm on the PATH checks the image lists against the charts in the store
 * (through commander, the recording fake helm, a real store and a lock that is already complete,
 * so nothing is contacted); without helm it does not.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Command } from "commander";
import { requiredImages } from "../../lib/addons/mod.ts";
import { resolveArtifacts } from "../../lib/catalog/mod.ts";
import type { CliContext } from "../../lib/cli/context.ts";
import { registerStoreCommands } from "../../lib/cli/store.ts";
import { loadConfig } from "../../lib/config/mod.ts";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";
import { imageArtifactName, type LockArtifact, serializeLock } from "../../store/mod.ts";
import { parseLog, type Sandbox, sandbox } from "./_fixtures.ts";

const RENDERED = `---
apiVersion: apps/v1
kind: Deployment
metadata: { name: cert-manager }
spec:
  template:
    spec:
      containers:
        - name: cert-manager-controller
          image: quay.io/jetstack/cert-manager-controller:v1.19.2
          args: ["--acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:v1.19.2"]
        - name: surprise
          image: quay.io/jetstack/cert-manager-surprise:v1.19.2
`;

async function project(box: Sandbox, withHelm: boolean) {
  const dir = join(box.dir, "project");
  const store = join(box.dir, "store");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(
    join(dir, "config.yaml"),
    `cluster:\n  name: c1\nstore:\n  path: ${store}\naddons:\n  - name: cilium\n    enabled: true\n` +
      `  - name: cert-manager\n    enabled: true\n`,
  );
  const rendered = join(box.dir, "rendered.yaml");
  await Deno.writeTextFile(rendered, RENDERED);
  const env: Record<string, string> = {
    ...box.env,
    FAKE_HELM_TEMPLATE: rendered,
    PATH: withHelm ? box.env.PATH! : "/nonexistent",
  };
  const loadCfg = async (path: string) =>
    (await loadConfig({ path, cwd: dir, env: () => undefined })).config;
  const config = await loadCfg(join(dir, "config.yaml"));
  // A complete lock for the config, so dtk lock keeps every entry and contacts nothing; the
  // cert-manager chart is in the store, the cilium chart is not.
  const chart = "fake cert-manager chart\n";
  const hex = createHash("sha256").update(chart).digest("hex");
  await Deno.mkdir(join(store, "objects", "sha256"), { recursive: true });
  await Deno.writeTextFile(join(store, "objects", "sha256", hex), chart);
  const artifacts: Record<string, LockArtifact> = {};
  for (const spec of resolveArtifacts(config)) {
    artifacts[spec.name] = {
      version: spec.version,
      kind: spec.kind,
      arch: spec.arch,
      urls: spec.urls,
      file: spec.file,
      hash: `sha256:${spec.name === "chart-cert-manager" ? hex : "ab".repeat(32)}`,
      size: null,
      source: "pinned",
    };
  }
  for (const image of requiredImages(config)) {
    artifacts[imageArtifactName(image.ref)] = {
      version: image.ref.slice(image.ref.lastIndexOf(":") + 1),
      kind: "image",
      arch: config.arch,
      urls: [],
      hash: `sha256:${"cd".repeat(32)}`,
      size: null,
      source: "registry",
      ref: image.ref,
    };
  }
  await Deno.writeTextFile(join(dir, "dtk.lock"), serializeLock({ version: 1, artifacts }));
  const local = new LocalRunner();
  const runner: Runner = {
    run: (argv, options = {}) => local.run(argv, { ...options, env: { ...env, ...options.env } }),
  };
  const warnings: string[] = [];
  const out = new Output({
    color: false,
    quiet: false,
    verbose: false,
    tty: false,
    stdout: () => {},
    stderr: (t) => warnings.push(t),
  });
  const ctx: CliContext = {
    runner,
    out,
    cwd: dir,
    env: (n) => env[n],
    loadConfig: (g) => loadCfg(g.config ?? join(dir, "config.yaml")),
  };
  const program = new Command("dtk").option("--json").option("-c, --config <path>")
    .exitOverride();
  registerStoreCommands(program, ctx);
  return { warnings, run: (args: string[]) => program.parseAsync(args, { from: "user" }) };
}

Deno.test("dtk lock with helm: warns about a rendered image the list lacks, names unfetched charts", async () => {
  const box = await sandbox();
  try {
    const p = await project(box, true);
    await p.run(["lock"]);
    const text = p.warnings.join("");
    assert.match(
      text,
      /warning: add-on "cert-manager" chart "v1\.19\.2" renders images its list lacks, so they are not locked: quay\.io\/jetstack\/cert-manager-surprise:v1\.19\.2/,
    );
    const warned = text.split("\n").filter((l) => l.startsWith("warning:")).join("\n");
    assert.doesNotMatch(warned, /cert-manager-acmesolver/);
    assert.match(text, /not in the store yet \(cilium\)/);
    const calls = parseLog(await box.readLog()).filter((c) => c[0] === "helm");
    assert.deepEqual(calls.map((c) => c.slice(1, 3)), [["template", "cert-manager"]]);
  } finally {
    await box.cleanup();
  }
});

Deno.test("dtk lock without helm on the PATH runs no check", async () => {
  const box = await sandbox();
  try {
    const p = await project(box, false);
    await p.run(["lock"]);
    assert.doesNotMatch(p.warnings.join(""), /renders images/);
    assert.equal(await box.readLog(), "");
  } finally {
    await box.cleanup();
  }
});
