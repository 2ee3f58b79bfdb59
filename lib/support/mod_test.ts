import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/mod.ts";
import type { Runner, RunOptions, RunResult } from "../exec/mod.ts";
import { writeFileAtomic, writeSecretAtomic } from "../fs/mod.ts";
import { clusterDir, pkiLayout } from "../paths/mod.ts";
import { ensurePki, ensureSshKey, readAdminToken } from "../pki/mod.ts";
import type { ExecOptions, Remote } from "../remote/mod.ts";
import { collectBundle, failingContainers, writeBundle } from "./mod.ts";

const result = (stdout: string, code = 0): RunResult => ({
  code,
  success: code === 0,
  stdout,
  stderr: code === 0 ? "" : "failed",
  elapsedMs: 1,
});

/** Every secret value in the cluster's owner-only files, found independently of dtk's redactor. */
async function secretsOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      // dtk's own run logs are owner-only too, but hold no secret of their own.
      if (e.isDirectory) {
        if (e.name !== "logs") await walk(p);
      } else if (((await Deno.stat(p)).mode! & 0o077) === 0) {
        const text = await Deno.readTextFile(p);
        for (const line of text.split("\n")) {
          const l = line.trim();
          if (l.length >= 20 && !l.startsWith("-----") && !l.includes(" ")) out.push(l);
          const field = l.match(/^(?:secret|client-key-data|token):\s*(\S{20,})$/);
          if (field) out.push(field[1]!);
          const csv = l.match(/^([0-9a-f]{32,}),/);
          if (csv) out.push(csv[1]!);
        }
      }
    }
  };
  await walk(dir);
  return out;
}

Deno.test("export logs: every node's journal and dtk's files, no secret, a manifest", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "dtk-bundle-" });
  try {
    const config = defaultConfig({ dir: tmp });
    config.vms = config.vms.slice(0, 2);
    config.addons = [];
    const names = config.vms.map((v) => v.name);
    await ensureSshKey(config);
    await ensurePki(config, names.map((name, i) => ({ name, ip: `10.0.0.${i + 2}` })));
    const dir = clusterDir(config);
    const token = (await readAdminToken(config))!;
    const key = await Deno.readTextFile(pkiLayout(config).key("admin"));
    await writeFileAtomic(join(dir, "state.json"), JSON.stringify({ version: 1, cluster: "dtk" }));
    // Run logs are owner-only, like secrets, but go in (redacted).
    await writeSecretAtomic(
      join(dir, "logs", "20261203T100000Z-create.log"),
      `run curl -H 'Authorization: Bearer ${token}'\nstep FAILED node/vm2/kubelet\n`,
    );
    await writeSecretAtomic(join(dir, "addons", "headlamp", "values.yaml"), `token: ${token}\n`);
    await writeFileAtomic(join(dir, "addons", "cilium", "values.yaml"), "ipam: {}\n");
    const commands: string[] = [];
    const remote = (node: string): Remote => ({
      node,
      address: node,
      exec(command: string | readonly string[], _o?: ExecOptions) {
        const line = typeof command === "string" ? command : command.join(" ");
        commands.push(`${node}: ${line}`);
        if (node === "vm2" && line === "true") return Promise.reject(new Error("ssh: refused"));
        if (line.startsWith("journalctl")) {
          // A journal that leaked secrets: a token and a whole private key.
          return Promise.resolve(result(`${node} kubelet started, token=${token}\n${key}`));
        }
        if (line === "crictl ps -a -o json") {
          return Promise.resolve(result(JSON.stringify({
            containers: [
              { id: "aaaaaaaaaaaaaaaa", state: "CONTAINER_RUNNING", metadata: { name: "ok" } },
              {
                id: "bbbbbbbbbbbbbbbb",
                state: "CONTAINER_EXITED",
                metadata: { name: "cilium-agent" },
                labels: {
                  "io.kubernetes.pod.namespace": "kube-system",
                  "io.kubernetes.pod.name": "cilium-x",
                },
              },
            ],
          })));
        }
        return Promise.resolve(result(`${line} output`));
      },
      upload: () => Promise.resolve(),
      uploadFile: () => Promise.resolve(),
      pipe: () => Promise.resolve(),
      sha256: () => Promise.resolve(new Map()),
      close: () => Promise.resolve(),
    });
    const runner: Runner = {
      run(argv: readonly string[], _o?: RunOptions) {
        commands.push(`host: ${argv.join(" ")}`);
        return Promise.resolve(result(`kubectl ${argv.slice(4).join(" ")} output`));
      },
    };
    const { entries, manifest } = await collectBundle(config, {
      runner,
      remote,
      units: () => ["containerd.service", "kubelet.service"],
      rendered: (n) => [{ path: "/etc/containerd/config.toml", content: `# for ${n}\n` }],
      plan: () => "{}",
      extras: [
        { path: "dtk/version.json", produce: () => Promise.resolve('{"version":"x"}') },
        { path: "dtk/doctor.json", produce: () => Promise.reject(new Error("no doctor here")) },
      ],
    });
    const bundle = join(tmp, "out", "bundle.tar.gz");
    await writeBundle(bundle, entries);
    const unpacked = join(tmp, "unpacked");
    await Deno.mkdir(unpacked);
    const tar = await new Deno.Command("tar", { args: ["-xzf", bundle, "-C", unpacked] }).output();
    assert.equal(tar.code, 0, new TextDecoder().decode(tar.stderr));
    const root = join(unpacked, "dtk-dtk");
    const files: string[] = [];
    const walk = async (d: string) => {
      for await (const e of Deno.readDir(d)) {
        if (e.isDirectory) await walk(join(d, e.name));
        else files.push(join(d, e.name).slice(root.length + 1));
      }
    };
    await walk(root);
    files.sort();
    for (
      const f of [
        "manifest.json",
        "dtk/logs/20261203T100000Z-create.log",
        "dtk/state.json",
        "dtk/plan.json",
        "dtk/version.json",
        "rendered/addons/cilium/values.yaml",
        "rendered/vm1/etc/containerd/config.toml",
        "nodes/vm1/journal/kubelet.service.log",
        "nodes/vm1/journal/containerd.service.log",
        "nodes/vm1/crictl-ps.txt",
        "nodes/vm1/containers/kube-system_cilium-x_cilium-agent-bbbbbbbbbbbb.log",
        "cluster/events.txt",
        "cluster/nodes.txt",
      ]
    ) assert.ok(files.includes(f), `${f} is in the bundle: ${files.join(", ")}`);
    assert.ok(!files.some((f) => f.includes("headlamp")), "an owner-only file never goes in");
    assert.ok(!files.some((f) => f.startsWith("nodes/vm2/")), "vm2 answered nothing");
    const m = JSON.parse(await Deno.readTextFile(join(root, "manifest.json")));
    assert.deepEqual(m, JSON.parse(JSON.stringify(manifest)));
    assert.ok(m.problems.some((p: { what: string }) => p.what === "node vm2"));
    assert.ok(m.problems.some((p: { what: string }) => p.what === "dtk/doctor.json"));
    assert.equal(m.files.length, files.length - 1);
    assert.ok(commands.includes("vm1: crictl logs --tail 200 bbbbbbbbbbbbbbbb 2>&1"));
    assert.ok(
      commands.some((c) => /journalctl -u kubelet\.service --since -24h .*tail -c 1048576/.test(c)),
    );
    // Scan every byte of every file for every secret dtk made.
    const secrets = await secretsOf(dir);
    assert.ok(secrets.length > 20, `found ${secrets.length} secret values to look for`);
    assert.ok(secrets.includes(token));
    for (const f of files) {
      const text = await Deno.readTextFile(join(root, f));
      for (const secret of secrets) {
        assert.ok(!text.includes(secret), `${f} holds a secret (${secret.slice(0, 8)}…)`);
      }
    }
    const journal = await Deno.readTextFile(join(root, "nodes/vm1/journal/kubelet.service.log"));
    assert.match(journal, /vm1 kubelet started, token=\[redacted\]/);
    assert.match(journal, /\[redacted private key\]/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("failingContainers: every container not running, named by pod", () => {
  assert.deepEqual(failingContainers("not json"), []);
  assert.deepEqual(
    failingContainers(JSON.stringify({
      containers: [{ id: "abc", state: "CONTAINER_CREATED", metadata: { name: "c" } }],
    })),
    [{ id: "abc", name: "c", state: "CONTAINER_CREATED" }],
  );
});
