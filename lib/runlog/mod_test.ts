import assert from "node:assert/strict";
import { join } from "node:path";
import { CommandError, DtkError } from "../errors/mod.ts";
import type { Runner, RunOptions, RunResult } from "../exec/mod.ts";
import { writeFileAtomic, writeSecretAtomic } from "../fs/mod.ts";
import {
  clusterRedactor,
  criticalPath,
  formatRunSummary,
  LoggingRunner,
  logTimestamp,
  phaseRows,
  Redactor,
  RunLog,
  secretValues,
} from "./mod.ts";
import type { LoggedStep } from "./mod.ts";

const KEY = [
  "-----BEGIN PRIVATE KEY-----",
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQ2Zy1111111111111",
  "hRANCAAQy9AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqr",
  "-----END PRIVATE KEY-----",
  "",
].join("\n");

function b64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

class FakeRunner implements Runner {
  calls: string[][] = [];
  run(argv: readonly string[], _options?: RunOptions): Promise<RunResult> {
    this.calls.push([...argv]);
    if (argv[0] === "false") {
      return Promise.reject(
        new CommandError("false failed with exit code 7", {
          command: argv,
          code: 7,
          stderrTail: "line one\nboom: it broke",
        }),
      );
    }
    if (argv[0] === "missing") {
      return Promise.reject(
        new CommandError('Command not found: "missing"', {
          command: argv,
          code: null,
          stderrTail: "",
        }),
      );
    }
    return Promise.resolve({ code: 0, success: true, stdout: "", stderr: "", elapsedMs: 12 });
  }
}

Deno.test("redactor: known values, their base64, key blocks and key=value secrets", () => {
  const r = new Redactor();
  r.add("0123456789abcdef0123456789abcdef");
  const text = [
    "token is 0123456789abcdef0123456789abcdef here",
    `b64 ${b64("0123456789abcdef0123456789abcdef")}`,
    KEY,
    "--password=hunter2hunter2 --token=abcdefgh123",
    "Authorization: Bearer eyJhbGciOi.something",
    "client-key-data: LS0tLS1CRUdJTg==",
    "--token-auth-file=/etc/kubernetes/auth/static-token.csv",
  ].join("\n");
  const out = r.redact(text);
  assert.doesNotMatch(out, /0123456789abcdef0123456789abcdef/);
  assert.ok(!out.includes(b64("0123456789abcdef0123456789abcdef")));
  assert.doesNotMatch(out, /MIGHAgEA|hunter2|abcdefgh123|eyJhbGci|LS0tLS1CRUdJTg/);
  assert.match(out, /\[redacted private key\]/);
  // Flags that name where secrets live are not secrets.
  assert.match(out, /--token-auth-file=\/etc\/kubernetes\/auth\/static-token\.csv/);
});

Deno.test("secretValues: PEM bodies, kubeconfig keys, token files, encryption keys", () => {
  assert.ok(secretValues(KEY).includes(KEY.split("\n")[1]!));
  const kubeconfig = `users:\n- name: admin\n  user:\n    client-key-data: ${b64(KEY)}\n`;
  const fromKubeconfig = secretValues(kubeconfig);
  assert.ok(fromKubeconfig.includes(b64(KEY)));
  assert.ok(fromKubeconfig.includes(KEY.split("\n")[2]!));
  assert.deepEqual(secretValues('abcdef0123456789abcdef,admin,admin,"system:masters"\n'), [
    "abcdef0123456789abcdef",
  ]);
  assert.deepEqual(
    secretValues(
      "keys:\n  - name: key1\n    secret: c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIzNDU2Nzg=\n",
    ),
    ["c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIzNDU2Nzg="],
  );
});

Deno.test("clusterRedactor: every owner-only file of the cluster, nothing else", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeSecretAtomic(join(dir, "pki", "admin-key.pem"), KEY);
    await writeSecretAtomic(join(dir, "secrets", "static-token.csv"), "t0k3nt0k3nt0k3nt0k3n,a,b\n");
    await writeFileAtomic(
      join(dir, "pki", "ca.pem"),
      "-----BEGIN CERTIFICATE-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n",
      { mode: 0o644 },
    );
    const r = await clusterRedactor(dir);
    assert.ok(r.secrets.has("t0k3nt0k3nt0k3nt0k3n"));
    assert.ok(r.secrets.has(KEY.split("\n")[1]!));
    assert.ok(![...r.secrets].some((s) => s.includes("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run log: steps, commands under their step, the failed command, redacted, 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const redactor = new Redactor();
    redactor.add("supersecretvalue-123456");
    const log = await RunLog.open(join(dir, "logs"), {
      command: "create",
      argv: ["cluster", "create"],
      redactor,
      now: () => new Date("2026-12-03T10:51:29.123Z"),
    });
    assert.equal(log.path, join(dir, "logs", "20261203T105129Z-create.log"));
    const runner = new LoggingRunner(new FakeRunner(), log);
    const step = { id: "node/vm1/prep", phase: "nodes", needs: [], node: "vm1", title: "Prep" };
    log.stepStart(step);
    await log.inStep(step.id, () => runner.run(["echo", "supersecretvalue-123456"]));
    log.stepEnd(step.id, "done");
    const failing = { id: "node/vm2/kubelet", phase: "nodes", needs: ["node/vm1/prep"] };
    log.stepStart(failing);
    await assert.rejects(log.inStep(failing.id, () => runner.run(["false", "--x"])));
    await runner.run(["outside"]);
    log.stepEnd(failing.id, "failed", new Error("false failed with exit code 7"));
    await assert.rejects(runner.run(["missing"]));
    await log.close(new Error("Step failed"));
    const text = await Deno.readTextFile(log.path);
    assert.equal((await Deno.stat(log.path)).mode! & 0o777, 0o600);
    assert.match(text, /step start node\/vm1\/prep \(vm1\): Prep/);
    assert.match(text, /run \[node\/vm1\/prep\] echo '\[redacted\]'/);
    assert.doesNotMatch(text, /supersecretvalue/);
    assert.match(text, /step done {2}node\/vm1\/prep in \d+ms/);
    assert.match(text, /run \[node\/vm2\/kubelet\] false --x\n.*→ exit 7 in/);
    assert.match(text, /stderr\| boom: it broke/);
    assert.match(text, /step FAILED node\/vm2\/kubelet after .*: false failed with exit code 7/);
    assert.match(text, /failed command: false --x \(exit 7\)/);
    assert.match(text, /run outside\n/);
    assert.match(text, /run missing\n.*no exit code: Command not found/);
    assert.match(text, /result: FAILED after .*: Step failed/);
    const second = await RunLog.open(join(dir, "logs"), {
      command: "create",
      now: () => new Date("2026-12-03T10:51:29.900Z"),
    });
    assert.equal(second.path, join(dir, "logs", "20261203T105129Z-create-2.log"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("logTimestamp: sortable and file-name safe", () => {
  assert.equal(logTimestamp(new Date("2026-01-02T03:04:05.678Z")), "20260102T030405Z");
});

function s(id: string, phase: string, needs: string[], startMs: number, endMs: number): LoggedStep {
  return { id, phase, needs, startMs, endMs, result: "done" };
}

Deno.test("summary: phase spans and the measured critical path", () => {
  const steps = [
    s("artifacts", "prepare", [], 0, 100),
    s("vm/a", "vms", ["artifacts"], 100, 400),
    s("vm/b", "vms", ["artifacts"], 100, 900),
    s("node/a", "nodes", ["vm/a"], 400, 500),
    s("node/b", "nodes", ["vm/b"], 900, 950),
    s("gates", "gates", ["node/a", "node/b"], 950, 1000),
    { ...s("pki", "prepare", [], 0, 5), result: "skipped" as const },
  ];
  const rows = phaseRows(steps);
  assert.deepEqual(rows.map((r) => [r.phase, r.elapsedMs, r.ran, r.skipped]), [
    ["prepare", 100, 1, 1],
    ["vms", 800, 2, 0],
    ["nodes", 550, 2, 0],
    ["gates", 50, 1, 0],
  ]);
  assert.deepEqual(criticalPath(steps).map((p) => p.id), [
    "artifacts",
    "vm/b",
    "node/b",
    "gates",
  ]);
  const text = formatRunSummary(steps);
  assert.match(text, /^PHASE\s+TIME\s+RUN\s+UNCHANGED\s+FAILED\n/);
  assert.match(
    text,
    /Critical path \(1s of step time\):\n\s+100ms {2}artifacts\n\s+800ms {2}vm\/b/,
  );
});

Deno.test("run log: a secret made during the run is redacted from lines logged before", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = await RunLog.open(join(dir, "logs"), { command: "create", secretsDir: dir });
    log.note("the new token is t0k3nt0k3nt0k3nt0k3nXYZ");
    await writeSecretAtomic(
      join(dir, "secrets", "static-token.csv"),
      "t0k3nt0k3nt0k3nt0k3nXYZ,a,b\n",
    );
    await log.close();
    const text = await Deno.readTextFile(log.path);
    assert.doesNotMatch(text, /t0k3n/);
    assert.match(text, /the new token is \[redacted\]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run log: text from outside cannot forge a line (newlines, escapes and bidi escaped)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = await RunLog.open(join(dir, "logs"), {
      command: "create",
      redactor: new Redactor(),
      now: () => new Date("2026-12-03T10:51:29.123Z"),
    });
    const forged = "2026-12-03T10:51:29.123Z result: ok in 1s";
    const runner = new LoggingRunner(new FakeRunner(), log);
    const step = { id: "node/vm1/x", phase: "nodes", needs: [], title: `T\n${forged}` };
    log.stepStart(step);
    await log.inStep(step.id, () => runner.run(["echo", `a\n${forged}`, "\u001b[2J\u202e"]));
    log.stepEnd(step.id, "failed", new Error(`server said: no\n${forged}`));
    await log.close(new DtkError(`gone\r\n${forged}`, { cause: new Error(`\n${forged}`) }));
    const text = await Deno.readTextFile(log.path);
    const lines = text.trimEnd().split("\n");
    assert.deepEqual(lines.filter((l) => l === forged), []);
    assert.equal(lines.filter((l) => l.startsWith("2026-12-03T10:51:29.123Z result: ")).length, 1);
    assert.match(lines.at(-1)!, /result: FAILED/);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(text, /[\u001b\u202e\r]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A redactor that counts the characters it is given: the work a log's writes cost. */
class CountingRedactor extends Redactor {
  chars = 0;
  override redact(text: string): string {
    this.chars += text.length;
    return super.redact(text);
  }
}

Deno.test("run log: each entry is redacted once, not the whole log at every write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const redactor = new CountingRedactor();
    redactor.add("supersecretvalue-123456");
    const log = await RunLog.open(join(dir, "logs"), { command: "create", redactor });
    for (let i = 0; i < 1000; i++) {
      log.note(`line ${i}: ran with supersecretvalue-123456`);
      await log.flush();
    }
    await log.close();
    const text = await Deno.readTextFile(log.path);
    assert.equal(text.split("\n").length, 1003);
    assert.doesNotMatch(text, /supersecretvalue/);
    // Redacting the whole log at each of 1,000 writes would be about 500 times its size.
    const raw = text.replaceAll("[redacted]", "supersecretvalue-123456").length;
    assert.ok(redactor.chars <= raw, `${redactor.chars} characters redacted for a log of ${raw}`);
    // A secret learned late is still redacted from every entry before it, once more each.
    redactor.chars = 0;
    log.note("late: L4t3s3cr3tL4t3s3cr3t");
    await log.flush();
    redactor.add("L4t3s3cr3tL4t3s3cr3t");
    await log.flush();
    assert.doesNotMatch(await Deno.readTextFile(log.path), /L4t3s3cr3t/);
    assert.ok(redactor.chars <= 2 * raw + 200, `${redactor.chars} characters for ${raw}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run log: a key block over several entries and writes is never written, and what follows it is", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const stamp = "2026-12-03T10:51:29.123Z";
    const redactor = new Redactor();
    const log = await RunLog.open(join(dir, "logs"), {
      command: "create",
      redactor,
      now: () => new Date(stamp),
    });
    const [begin, body1, body2, end] = KEY.split("\n");
    const notes = [
      "before the key",
      `stderr: ${begin}\n${body1}`,
      body2!,
      `${end}\nafter the key`,
      "-----BEGIN EC PRIVATE KEY-----",
      "MHcCAQEEIIrY0123456789abcdefghijklmnopqrstuvwxyzAB",
      "-----END EC PRIVATE KEY----- then -----BEGIN RSA PRIVATE KEY-----",
      "MIIEowIBAAKCAQEA0123456789abcdefghijklmnopqrstuvwxyz",
    ];
    for (const note of notes) {
      log.note(note);
      await log.flush();
      const text = await Deno.readTextFile(log.path);
      assert.doesNotMatch(text, /MIGHAgEA|hRANCAAQ|MHcCAQEE|MIIEowIB/, note);
    }
    const text = await Deno.readTextFile(log.path);
    // The same as redacting the whole log at once.
    const raw = ["dtk create", ...notes].flatMap((n) => n.split("\n"))
      .map((l) => `${stamp} ${l}\n`).join("");
    assert.equal(text, redactor.redact(raw));
    assert.match(text, /before the key\n.*\[redacted private key\]\n.*after the key\n/);
    assert.match(text, /\[redacted EC private key\] then \[redacted RSA private key\]$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
