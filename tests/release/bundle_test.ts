/**
 * Self-contained by construction: `main.ts` bundled into one file (from a stamped copy of the
 * source without `tests/`), run from an empty folder with no network, no read access to the
 * source tree and a fresh Deno cache, for every command that needs no hypervisor. What `deno
 * compile` would embed is exactly this module graph, so what passes here passes in the binary.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Command } from "commander";
import { buildProgram, type CliContext } from "../../lib/cli/mod.ts";
import { defaultConfig } from "../../lib/config/mod.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import { Output } from "../../lib/ui/mod.ts";
import { renderKickstart } from "../../kickstart/mod.ts";
import { bundleDtk, cleanEnv, PINNED_CONFIG, type Run, runBundle } from "./_bundle.ts";

const BUILD = {
  version: "9.8.7-bundle.1",
  commit: "0123456789abcdef0123456789abcdef01234567",
  date: "2026-01-02T03:04:05Z",
};
const HELP = new URL("../testdata/help/", import.meta.url);
const FAKES = new URL("../drivers/fakes/", import.meta.url).pathname;

/** Every command path, as the help snapshots name them. */
function commandPaths(): string[][] {
  const ctx: CliContext = {
    runner: new LocalRunner(),
    out: new Output({ color: false, quiet: false, verbose: false, tty: false }),
    cwd: Deno.cwd(),
    env: () => undefined,
    loadConfig: () => Promise.resolve(defaultConfig()),
  };
  const walk = (command: Command, prefix: string[]): string[][] => [
    prefix,
    ...(command.commands as Command[]).filter((c) => c.name() !== "help")
      .flatMap((c) => walk(c, [...prefix, c.name()])),
  ];
  return walk(buildProgram(ctx) as unknown as Command, []);
}

function ok(run: Run, what: string): Run {
  assert.equal(run.code, 0, `${what} exited ${run.code}:\n${run.stderr}`);
  return run;
}

Deno.test("bundle: one file runs every hypervisor-free command from an empty folder, offline", async (t) => {
  const work = await Deno.makeTempDir({ prefix: "dtk-bundle-test-" });
  try {
    const bundle = await bundleDtk(work, { build: BUILD });
    const home = join(work, "home");
    const cwd = join(work, "empty");
    await Deno.mkdir(home);
    await Deno.mkdir(cwd);
    const env = cleanEnv(home);
    const dtk = (args: string[], extra: Record<string, string> = {}) =>
      runBundle(bundle, args, { cwd, env: { ...env, ...extra } });

    await t.step("the bundle imports nothing but Node built-ins", async () => {
      const text = await Deno.readTextFile(bundle);
      const specifiers = [
        ...text.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*"([^"]+)"/gm),
        ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
      ].map((m) => m[1]!);
      assert.ok(specifiers.length > 0, "found the bundle's imports");
      assert.deepEqual(specifiers.filter((s) => !s.startsWith("node:")), []);
    });

    await t.step("version and version --json report the stamped build", async () => {
      const info = JSON.parse(ok(await dtk(["version", "--json"]), "version --json").stdout);
      assert.deepEqual(info, {
        version: BUILD.version,
        commit: BUILD.commit,
        buildDate: BUILD.date,
        target: Deno.build.target,
        deno: Deno.version.deno,
        upstream: info.upstream,
      });
      const line = ok(await dtk(["version"]), "version").stdout;
      assert.match(line, /^dtk 9\.8\.7-bundle\.1 \(0123456789ab, built 2026-01-02T03:04:05Z, /);
      assert.equal(ok(await dtk(["--version"]), "--version").stdout.trim(), BUILD.version);
    });

    await t.step("help and help <command> work", async () => {
      const root = await Deno.readTextFile(new URL("dtk.txt", HELP));
      assert.equal(ok(await dtk(["help"]), "help").stdout.trimEnd(), root.trimEnd());
      const create = await Deno.readTextFile(new URL("cluster.txt", HELP));
      assert.equal(
        ok(await dtk(["help", "cluster"]), "help cluster").stdout.trimEnd(),
        create.trimEnd(),
      );
    });

    await t.step("help of every command is its snapshot", async () => {
      const paths = commandPaths();
      assert.ok(paths.length > 30, `found ${paths.length} commands`);
      for (const path of paths) {
        const name = path.length === 0 ? "dtk" : path.join("_");
        const expected = await Deno.readTextFile(new URL(`${name}.txt`, HELP));
        const run = ok(await dtk([...path, "--help"]), `${path.join(" ")} --help`);
        assert.equal(run.stdout.trimEnd(), expected.trimEnd(), `dtk ${path.join(" ")} --help`);
      }
    });

    await t.step("plan, plan --json, config show|check, completion, doctor", async () => {
      assert.match(ok(await dtk(["plan"]), "plan").stdout, /template/);
      assert.ok(JSON.parse(ok(await dtk(["plan", "--json"]), "plan --json").stdout));
      assert.match(ok(await dtk(["config", "show"]), "config show").stdout, /^cluster:/m);
      const json = JSON.parse(
        ok(await dtk(["config", "show", "-o", "json"]), "show -o json").stdout,
      );
      assert.equal(json.virt, "kvm");
      assert.match(ok(await dtk(["config", "check"]), "config check").stderr, /valid: <built-in>/);
      await Deno.writeTextFile(join(cwd, "bad.yaml"), "virt: nope\n");
      const bad = await dtk(["config", "check", "-c", "bad.yaml"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /bad\.yaml:1:\d+/);
      for (const shell of ["bash", "zsh", "fish"]) {
        const script = ok(await dtk(["completion", shell]), `completion ${shell}`).stdout;
        assert.match(script, /cluster/, `${shell} completion names the commands`);
      }
      const doctor = await dtk(["doctor"]);
      assert.ok([0, 3].includes(doctor.code), `doctor exited ${doctor.code}:\n${doctor.stderr}`);
    });

    await t.step("certs generate|check|list", async () => {
      const ips = ["vm1", "vm2", "vm3"].flatMap((vm, i) => ["--node-ip", `${vm}=10.9.8.${10 + i}`]);
      const made = ok(await dtk(["certs", "generate", ...ips]), "certs generate");
      assert.match(made.stderr, /30 of 30 files written/);
      ok(await dtk(["certs", "check", ...ips]), "certs check");
      assert.match(ok(await dtk(["certs", "list"]), "certs list").stdout, /kubelet-vm3\.pem/);
      const key = await Deno.stat(join(cwd, "generated/dtk/pki/ca-key.pem"));
      assert.equal(key.mode! & 0o777, 0o600);
    });

    await t.step("lock from pins, fetch --offline, store commands on a temp store", async () => {
      await Deno.writeTextFile(join(cwd, "config.yaml"), PINNED_CONFIG);
      ok(await dtk(["lock"]), "lock");
      ok(await dtk(["lock", "--frozen"]), "lock --frozen");
      const missing = await dtk(["fetch", "--offline"]);
      assert.equal(missing.code, 1, "nothing is in the store yet");
      assert.match(missing.stderr, /missing: /);
      // Hand-written: each artifact's hash and size replaced by those of a small local file.
      const lock = JSON.parse(await Deno.readTextFile(join(cwd, "dtk.lock")));
      for (const [name, entry] of Object.entries<Record<string, unknown>>(lock.artifacts)) {
        // An image is a closure of manifests and layers, not one file: dropped from this lock.
        if (entry.kind === "image") {
          delete lock.artifacts[name];
          continue;
        }
        const bytes = new TextEncoder().encode(`bundle test stand-in for ${name}\n`);
        await Deno.writeFile(join(cwd, `${name}.bin`), bytes);
        const added = ok(await dtk(["store", "add", `${name}.bin`]), `store add ${name}`);
        entry.hash = added.stdout.trim();
        entry.size = bytes.length;
      }
      await Deno.writeTextFile(join(cwd, "dtk.lock"), JSON.stringify(lock, null, 2) + "\n");
      const fetched = ok(await dtk(["fetch", "--offline"]), "fetch --offline");
      assert.match(fetched.stderr, /All 13 artifacts of .* are in the store/);
      ok(await dtk(["verify", "files"]), "verify files");
      ok(await dtk(["store", "verify"]), "store verify");
      const rows = JSON.parse(ok(await dtk(["--json", "store", "ls"]), "store ls").stdout);
      assert.equal(rows.length, 13);
      const hash = lock.artifacts["etcd"].hash as string;
      const path = ok(await dtk(["store", "path", hash]), "store path").stdout.trim();
      assert.equal(path, join(env.DTK_STORE!, "objects/sha256", hash.replace("sha256:", "")));
      ok(await dtk(["store", "gc", "--dry-run"]), "store gc --dry-run");
      ok(await dtk(["store", "export", "usb"]), "store export");
      const store2 = { DTK_STORE: join(home, "store2") };
      ok(await dtk(["store", "import", "usb", "--lock", "imported.lock"], store2), "store import");
      ok(await dtk(["fetch", "--offline", "--lock", "imported.lock"], store2), "fetch imported");
    });

    await t.step("the kickstart a template build uses is rendered from the bundle", async () => {
      // cluster create up to the template on recording fakes of virsh and virt-install; a
      // virt-clone that fails stops it there, before anything needs a real VM.
      const bin = join(work, "fakebin");
      await Deno.mkdir(bin);
      for await (const entry of Deno.readDir(FAKES)) {
        await Deno.copyFile(join(FAKES, entry.name), join(bin, entry.name));
      }
      await Deno.writeTextFile(
        join(bin, "virt-clone"),
        "#!/bin/sh\necho 'stop after the template' >&2\nexit 1\n",
        { mode: 0o755 },
      );
      const fake = join(work, "fake-state");
      await Deno.mkdir(fake);
      const run = await dtk(["cluster", "create", "--frozen", "--skip-preflight", "-j", "1"], {
        PATH: `${bin}:${env.PATH}`,
        FAKE_STATE: fake,
      });
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /template: done/);
      assert.match(run.stderr, /stop after the template/);
      const ks = await Deno.readTextFile(join(cwd, "generated/dtk/vm/ks.cfg"));
      const key = (await Deno.readTextFile(join(cwd, "generated/dtk/ssh/id_ed25519.pub"))).trim();
      const config = defaultConfig();
      assert.equal(
        ks,
        renderKickstart(config.kvm.kickstart, { linux: config.vm.linux, authorizedKey: key }),
      );
      assert.ok(ks.includes(key));
      const calls = (await Deno.readTextFile(join(fake, "calls.log"))).split("\n")
        .map((line) => line.split("\x1f"));
      const install = calls.find((argv) => argv[0] === "virt-install");
      assert.equal(
        install?.[install.indexOf("--initrd-inject") + 1],
        join(cwd, "generated/dtk/vm/ks.cfg"),
      );
    });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
