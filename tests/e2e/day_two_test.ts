/**
 * Day two on the real-node harness, as a user runs it (the test entry of dtk in a subprocess):
 * two clusters side by side in one folder, a create with an injected failing command and the run
 * log that names it, `dtk cluster list`, `dtk cluster status` of a healthy cluster and of one
 * with a node stopped and a unit failed, and `dtk export logs` of both, scanned for every secret
 * dtk made.
 *
 * Runs in the e2e tier (`DTK_E2E=1`, `deno task e2e`) when the harness can run here; start it
 * under `flock /tmp/dtk-harness.lock`. `DTK_E2E_KEEP_OUTPUT=<prefix>` keeps the status outputs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../../lib/config/parse.ts";
import { LocalRunner } from "../../lib/exec/mod.ts";
import {
  createNspawnDriver,
  prepareArtifacts,
  startArtifactMirror,
  sweepStale,
  writeTestImages,
  writeTestLock,
} from "../harness/mod.ts";
import {
  clusterSkipReason,
  type CommandRun,
  DTK_TEST_MAIN,
  execOnNode,
  NSPAWN_RENDER_OVERRIDES,
  runDtk,
} from "./_cluster.ts";

const MAIN = DTK_TEST_MAIN;
const skip = clusterSkipReason();

function dtk(
  args: string[],
  options: { env: Record<string, string>; cwd: string },
): Promise<CommandRun> {
  return runDtk(args, { ...options, echo: "tail" });
}

/** Every secret value in a cluster's owner-only files, found without dtk's redactor. */
async function secretsOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      // dtk's own run logs are owner-only too, but hold no secret of their own.
      if (e.isDirectory) {
        if (e.name !== "logs") await walk(p);
      } else if (e.isFile && ((await Deno.stat(p)).mode! & 0o077) === 0) {
        for (const line of (await Deno.readTextFile(p)).split("\n")) {
          const l = line.trim();
          // PEM body lines, kubeconfig key data, token file and encryption key values.
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
  return [...new Set(out)];
}

async function filesUnder(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name));
      else files.push(join(d, e.name).slice(root.length + 1));
    }
  };
  await walk(root);
  return files.sort();
}

Deno.test({
  name: `e2e: day two: list, status, run logs, export logs${skip ? ` (skipped: ${skip})` : ""}`,
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-e2e-day2-" });
  const id = crypto.randomUUID().slice(0, 5);
  const set = await prepareArtifacts();
  await using mirror = startArtifactMirror(set);
  await writeTestLock(join(dir, "dtk.lock"), set, { mirrorUrl: mirror.url });
  await writeTestImages(join(dir, "images", "box.tar"));
  const env = { DTK_STORE: join(dir, "store") };
  const clusters = {
    a: { name: `healthy${id}`, vms: ["a1"] },
    b: { name: `broken${id}`, vms: ["b1", "b2"] },
  };
  const configOf = (which: "a" | "b", extra: Record<string, unknown> = {}) => {
    const c = clusters[which];
    return stringify({
      cluster: { name: c.name },
      virt: "test-nspawn",
      addons: [],
      k8s: { "kube-proxy": false },
      versions: {
        "kubernetes": set.versions.kubernetes,
        "etcd": set.versions.etcd,
        "containerd": set.versions.containerd,
        "runc": set.versions.runc,
        "crictl": set.versions.crictl,
        "cni-plugins": set.versions.cniPlugins,
      },
      vm: { "create-template": true, "template-vmname": `${c.name}-tpl` },
      vms: c.vms.map((name) => ({ name, cpu: 2, mem: 2048 })),
      "test-nspawn": {
        "state-dir": join(dir, "nodes", which),
        "owner-pid": Deno.pid,
        "containers": true,
        "renderOverrides": NSPAWN_RENDER_OVERRIDES,
        "timeouts": { nodesReady: 240_000 },
        ...extra,
      },
    });
  };
  const path = { a: join(dir, "a.yaml"), b: join(dir, "b.yaml") };
  await Deno.writeTextFile(path.a, configOf("a"));
  const create = (which: "a" | "b") =>
    dtk(["cluster", "create", "-c", path[which], "--frozen", "--jobs", "4"], { env, cwd: dir });
  const generated = (which: "a" | "b") => join(dir, "generated", clusters[which].name);
  const keep = Deno.env.get("DTK_E2E_KEEP_OUTPUT");
  const onNode = (which: "a" | "b", node: string, command: string) =>
    execOnNode(generated(which), node, {
      cluster: clusters[which].name,
      command,
      timeoutMs: 60_000,
    });

  try {
    await t.step(
      "a create with a failing command writes a log naming the step and command",
      async () => {
        await Deno.writeTextFile(
          path.b,
          configOf("b", {
            failCommand: { step: "node/b2/kubelet", command: "echo injected-boom >&2; exit 7" },
          }),
        );
        const failed = await create("b");
        assert.equal(failed.code, 1, failed.stderr.slice(-2000));
        const logPath = failed.stderr.match(/The log of this run: (\S+\.log)/)?.[1];
        assert.ok(logPath, `the log's path is printed: ${failed.stderr.slice(-1000)}`);
        assert.ok(logPath.startsWith(join(generated("b"), "logs") + "/"));
        assert.match(logPath, /\/\d{8}T\d{6}Z-create\.log$/);
        const log = await Deno.readTextFile(logPath);
        assert.match(log, /step start node\/b1\/runtime \(b1\)/);
        assert.match(log, /step done {2}node\/b1\/runtime in /);
        assert.match(log, /run \[node\/b2\/kubelet\] ssh .*echo injected-boom >&2; exit 7/);
        assert.match(log, /→ exit 7 in /);
        assert.match(log, /stderr\| injected-boom/);
        assert.match(log, /step FAILED node\/b2\/kubelet after .*failed with exit code 7/);
        assert.match(log, /failed command: ssh .*injected-boom.* \(exit 7\)/);
        assert.match(log, /result: FAILED after /);
        assert.equal((await Deno.stat(logPath)).mode! & 0o777, 0o600);
        const secrets = await secretsOf(generated("b"));
        assert.ok(secrets.length > 20);
        for (const s of secrets) {
          assert.ok(!log.includes(s), `the log holds a secret (${s.slice(0, 6)}…)`);
        }
      },
    );

    await t.step(
      "both clusters created side by side; the create ends with its critical path",
      async () => {
        await Deno.writeTextFile(path.b, configOf("b"));
        const b = await create("b");
        assert.equal(b.code, 0, b.stderr.slice(-3000));
        assert.match(b.stdout, /PHASE\s+TIME\s+RUN\s+UNCHANGED\s+FAILED/);
        assert.match(b.stdout, /Critical path \(.* of step time\):\n\s+\S+\s+\S+/);
        const a = await dtk(["cluster", "create", "-c", path.a, "--frozen", "--json"], {
          env,
          cwd: dir,
        });
        assert.equal(a.code, 0, a.stderr.slice(-3000));
        const summary = JSON.parse(a.stdout) as {
          criticalPath: { step: string; elapsedMs: number }[];
          log: string;
        };
        assert.ok(summary.criticalPath.some((p) => p.step === "gates/nodes-ready"), a.stdout);
        assert.ok(summary.log.startsWith(join(generated("a"), "logs") + "/"));
        const logs = (await Array.fromAsync(Deno.readDir(join(generated("b"), "logs")))).map((e) =>
          e.name
        ).sort();
        assert.equal(logs.length, 2);
        const ok = await Deno.readTextFile(join(generated("b"), "logs", logs[1]!));
        assert.match(ok, /Phases and critical path:/);
        assert.match(ok, /result: ok in /);
      },
    );

    await t.step(
      "cluster list: both, with driver, nodes, version, VM state, last create",
      async () => {
        const r = await dtk(["cluster", "list", "--json"], { env, cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        const entries = JSON.parse(r.stdout) as {
          name: string;
          driver: string;
          nodes: string[];
          kubernetes: string;
          vms: string;
          config: string;
          lastCreate: { result: string };
        }[];
        const mine = entries.filter((e) => e.name.endsWith(id)).sort((x, y) =>
          x.name.localeCompare(y.name)
        );
        assert.deepEqual(
          mine.map((e) => [e.name, e.driver, e.nodes, e.vms, e.config, e.lastCreate.result]),
          [
            [clusters.b.name, "test-nspawn", ["b1", "b2"], "running", path.b, "ok"],
            [clusters.a.name, "test-nspawn", ["a1"], "running", path.a, "ok"],
          ],
        );
        assert.equal(mine[0]!.kubernetes, set.versions.kubernetes);
        const text = await dtk(["cluster", "list"], { env, cwd: dir });
        assert.match(
          text.stdout,
          /^NAME\s+DRIVER\s+NODES\s+KUBERNETES\s+VMS\s+CREATED\s+LAST CREATE\s+CONFIG/,
        );
      },
    );

    await t.step("cluster status: healthy clusters exit 0", async () => {
      for (const which of ["a", "b"] as const) {
        const r = await dtk(["cluster", "status", "-c", path[which]], { env, cwd: dir });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /Cluster ".*" is healthy/);
        assert.match(r.stdout, /units\/\w+\s+ok\s+\d+ units active/);
        assert.match(r.stdout, /etcd\s+ok/);
        assert.match(r.stdout, /scheduler\s+ok\s+held by/);
        if (keep && which === "a") {
          await Deno.writeTextFile(`${keep}.status-healthy.txt`, r.stdout);
        }
      }
      const json = await dtk(["cluster", "status", "-c", path.a, "--json", "--verify"], {
        env,
        cwd: dir,
      });
      assert.equal(json.code, 0, json.stdout + json.stderr);
      const report = JSON.parse(json.stdout) as {
        outcome: string;
        results: { name: string; status: string; summary: string }[];
      };
      assert.equal(report.outcome, "healthy");
      const verify = report.results.find((r) => r.name === "verify");
      assert.equal(verify?.status, "ok", JSON.stringify(verify));
      assert.match(verify!.summary, /^matches the lock and the config \(\d+ ok/);
      // --watch checks again every interval until Ctrl-C, then exits with the last verdict.
      const watch = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          MAIN,
          "cluster",
          "status",
          "-c",
          path.a,
          "--watch",
          "--interval",
          "1",
        ],
        cwd: dir,
        env: { NO_COLOR: "1", DTK_TEST_DRIVERS: "1", ...env },
        stdout: "piped",
        stderr: "null",
      }).spawn();
      let seen = "";
      const reader = watch.stdout.getReader();
      const deadline = Date.now() + 120_000;
      while (
        (seen.match(/^Cluster "\S+" is healthy/gm) ?? []).length < 2 && Date.now() < deadline
      ) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      watch.kill("SIGINT");
      reader.releaseLock();
      await watch.stdout.cancel().catch(() => {});
      const status = await watch.status;
      assert.equal((seen.match(/^Every 1s: /gm) ?? []).length >= 2, true, seen);
      assert.equal(status.code, 0);
    });

    await t.step("a stopped node and a failed unit: status exits 1 and names both", async () => {
      await onNode(
        "b",
        "b1",
        "mkdir -p /etc/systemd/system/kube-scheduler.service.d && " +
          "printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\nRestart=no\\n' > /etc/systemd/system/kube-scheduler.service.d/zz-broken.conf && " +
          "systemctl daemon-reload && (systemctl restart kube-scheduler || true)",
      );
      const { config } = parseConfig(await Deno.readTextFile(path.b), {
        file: path.b,
        dir,
        allowTestDrivers: true,
      });
      await createNspawnDriver(config, { runner: new LocalRunner() }).stop("b2", {
        timeoutMs: 60_000,
      });
      const r = await dtk(["cluster", "status", "-c", path.b], { env, cwd: dir });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /vm\/b2\s+degraded\s+stopped/);
      assert.match(r.stdout, /ssh\/b2\s+skipped/);
      assert.match(r.stdout, /units\/b1\s+degraded\s+kube-scheduler\.service failed/);
      assert.match(r.stderr, /Cluster "broken\w+" is degraded: .*units\/b1.*vm\/b2/);
      assert.doesNotMatch(r.stdout, /Cluster "broken\w+" is degraded/, "the verdict is said once");
      if (keep) await Deno.writeTextFile(`${keep}.status-degraded.txt`, r.stdout + r.stderr);
      const list = await dtk(["cluster", "list", "--json"], { env, cwd: dir });
      const b = (JSON.parse(list.stdout) as { name: string; vms: string }[]).find((e) =>
        e.name === clusters.b.name
      );
      assert.equal(b?.vms, "partial (1/2 running)");
    });

    await t.step("export logs: each node's journal, the run logs, no secret", async () => {
      for (const which of ["a", "b"] as const) {
        const out = join(dir, "bundles", which);
        const r = await dtk(["export", "logs", out, "-c", path[which]], { env, cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        const bundle = r.stdout.trim();
        assert.match(
          bundle,
          new RegExp(`^${out}/dtk-${clusters[which].name}-\\d{8}T\\d{6}Z\\.tar\\.gz$`),
        );
        const unpacked = join(dir, "unpacked", which);
        await Deno.mkdir(unpacked, { recursive: true });
        const tar = await new Deno.Command("tar", { args: ["-xzf", bundle, "-C", unpacked] })
          .output();
        assert.equal(tar.code, 0);
        const root = join(unpacked, `dtk-${clusters[which].name}`);
        const files = await filesUnder(root);
        const running = which === "a" ? ["a1"] : ["b1"];
        for (const node of running) {
          for (const unit of ["containerd.service", "kubelet.service"]) {
            const f = `nodes/${node}/journal/${unit}.log`;
            assert.ok(files.includes(f), `${f} in ${files.join(", ")}`);
            assert.match(await Deno.readTextFile(join(root, f)), /\S/, `${f} is not empty`);
          }
          assert.ok(files.includes(`nodes/${node}/crictl-ps.txt`));
        }
        assert.ok(files.includes(`nodes/${running[0]}/journal/etcd.service.log`));
        for (
          const f of [
            "manifest.json",
            "dtk/state.json",
            "dtk/plan.json",
            "dtk/doctor.json",
            "dtk/version.json",
            "cluster/events.txt",
          ]
        ) {
          assert.ok(files.includes(f), `${f} in the bundle`);
        }
        assert.ok(files.some((f) => f.startsWith("dtk/logs/") && f.endsWith("-create.log")));
        assert.ok(
          files.some((f) =>
            f.startsWith(`rendered/${running[0]}/etc/systemd/system/kubelet.service`)
          ),
        );
        const manifest = JSON.parse(await Deno.readTextFile(join(root, "manifest.json")));
        if (which === "b") {
          assert.ok(
            manifest.problems.some((p: { what: string }) => p.what === "node b2"),
            JSON.stringify(manifest.problems),
          );
          assert.match(
            await Deno.readTextFile(join(root, "nodes/b1/journal/kube-scheduler.service.log")),
            /kube-scheduler/,
          );
        }
        const secrets = await secretsOf(generated(which));
        assert.ok(secrets.length > 20, `${secrets.length} secrets to look for`);
        for (const f of files) {
          const text = await Deno.readTextFile(join(root, f));
          for (const s of secrets) {
            assert.ok(!text.includes(s), `${f} holds a secret (${s.slice(0, 6)}…)`);
          }
        }
      }
    });
  } finally {
    for (const which of ["a", "b"] as const) {
      await dtk(["cluster", "delete", "-c", path[which], "--template"], { env, cwd: dir }).catch(
        () => {},
      );
    }
    await sweepStale().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
