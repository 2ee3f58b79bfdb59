import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { DtkError } from "../errors/mod.ts";
import type { RunResult } from "../exec/mod.ts";
import type { Remote } from "../remote/mod.ts";
import type { NodeFile } from "../render/mod.ts";
import {
  CGROUP_PROBE,
  checkCgroupVersion,
  checkResolvConf,
  isLoopbackServer,
  parsePrepProbe,
  PREP_COMMANDS,
  prepProbe,
  resolvConfServers,
  runPrep,
  SYSTEMD_RESOLVED_CONF,
} from "./_prep.ts";

Deno.test("prep: a cgroup v1 node fails for Kubernetes 1.35 with the reason and the fix", () => {
  for (const fsType of ["tmpfs\n", "cgroupfs", ""]) {
    assert.throws(
      () => checkCgroupVersion("vm2", fsType, { kubernetes: "v1.35.0" }),
      (e: unknown) => {
        assert.ok(e instanceof DtkError);
        assert.match(e.message, /^Node "vm2" runs cgroup v1 \("\/sys\/fs\/cgroup" is "/);
        assert.match(e.message, /the kubelet of Kubernetes "v1\.35\.0" refuses to start on$/);
        assert.match(e.hint ?? "", /systemd\.unified_cgroup_hierarchy=1/);
        assert.match(e.hint ?? "", /below v1\.35/);
        return true;
      },
    );
  }
  checkCgroupVersion("vm2", "cgroup2fs\n", { kubernetes: "v1.35.0" });
  checkCgroupVersion("vm2", "cgroup2fs", { kubernetes: "v1.36.2" });
  // Older kubelets still run on v1: the 1.20 harness nodes are on a v1 host.
  checkCgroupVersion("vm2", "tmpfs", { kubernetes: "v1.34.3" });
  checkCgroupVersion("vm2", "tmpfs", { kubernetes: "v1.20.2" });
});

Deno.test("prep: the probe names the cgroup root's file system type on this host", async () => {
  const out = await new Deno.Command("sh", { args: ["-c", CGROUP_PROBE] }).output();
  assert.equal(out.code, 0);
  const type = new TextDecoder().decode(out.stdout).trim();
  // v2 (cgroup2fs) or v1/hybrid (tmpfs): nothing else is a Linux cgroup root.
  assert.ok(["cgroup2fs", "tmpfs"].includes(type), type);
  const procV2 = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n").some((l) =>
    / \/sys\/fs\/cgroup .* - cgroup2 /.test(l)
  );
  assert.equal(type === "cgroup2fs", procV2);
});

// ---------------------------------------------------------------- resolv.conf

const STUB =
  "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n" +
  "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n";
const UPSTREAM =
  "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n" +
  "nameserver 192.0.2.1\nnameserver 2001:db8::53\nsearch example.internal\n";

function resolvError(
  content: string | undefined,
  options: { resolved?: string; path?: string } = {},
): DtkError {
  let caught: unknown;
  try {
    checkResolvConf("vm2", { resolvConf: content, systemdResolvConf: options.resolved }, {
      path: options.path ?? "/etc/resolv.conf",
    });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DtkError, `no error for ${JSON.stringify(content)}`);
  return caught;
}

Deno.test("prep: resolv.conf servers are read as the kubelet reads them", () => {
  const { servers, empty } = resolvConfServers(
    "# nameserver 10.9.9.9\n  # nameserver 10.9.9.8\n; nameserver 10.9.9.7\n" +
      "nameserver 10.0.0.1   \t\n\tnameserver\t10.0.0.2\t\nnameserver 10.0.0.3 # inline\r\n" +
      "nameservers 10.9.9.6\nsearch a b\n\n",
  );
  assert.deepEqual(servers, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  assert.equal(empty, 0);
  // A bare keyword, trailing blanks and all: the kubelet refuses the whole file.
  assert.equal(resolvConfServers("nameserver 10.0.0.1\nnameserver \t \n").empty, 1);
  assert.deepEqual(resolvConfServers("").servers, []);
});

Deno.test("prep: loopback name servers, v4 and v6, in every spelling", () => {
  for (
    const s of [
      "127.0.0.53",
      "127.0.0.1",
      "127.1.2.3",
      "::1",
      "0:0:0:0:0:0:0:1",
      "::ffff:127.0.0.1",
      "::1%lo",
      "0.0.0.0",
      "::",
    ]
  ) {
    assert.ok(isLoopbackServer(s), s);
  }
  for (
    const s of [
      "10.0.0.1",
      "192.0.2.1",
      "128.0.0.1",
      "2001:db8::53",
      "::2",
      "fe80::1%eth0",
      "dns.example",
      "1227.0.0.1",
    ]
  ) {
    assert.ok(!isLoopbackServer(s), s);
  }
});

Deno.test("prep: a resolv.conf with only loopback servers stops prep, naming node, file and servers", () => {
  for (
    const content of [STUB, "nameserver 127.0.0.1\n", "nameserver ::1\nnameserver 127.0.0.53\n"]
  ) {
    const e = resolvError(content);
    assert.match(
      e.message,
      /^Node "vm2" lists only loopback name servers in "\/etc\/resolv\.conf" \(k8s\.resolv-conf\): "(127\.0\.0\.|::1)/,
    );
    assert.match(e.message, /CoreDNS would forward to itself and crash-loop$/);
    assert.match(
      e.hint ?? "",
      /^Set k8s\.resolv-conf to a file on every node that lists the upstream name servers/,
    );
  }
  assert.match(
    resolvError("nameserver ::1\nnameserver 127.0.0.53\n").message,
    /: "::1", "127\.0\.0\.53";/,
  );
  // The kubelet gives a Pod the first three only: a fourth, real server never reaches CoreDNS.
  const four = resolvError(
    "nameserver 127.0.0.1\nnameserver 127.0.0.2\nnameserver ::1\nnameserver 10.0.0.1\n",
  );
  assert.match(
    four.message,
    /"127\.0\.0\.1", "127\.0\.0\.2", "::1" \(the first 3, all that the kubelet passes on\)/,
  );
});

Deno.test("prep: systemd-resolved's upstream list is the hint when it has a real server", () => {
  const e = resolvError(STUB, { resolved: UPSTREAM });
  assert.equal(
    e.hint,
    'Set k8s.resolv-conf: /run/systemd/resolve/resolv.conf (systemd-resolved\'s upstream servers on "vm2": "192.0.2.1", "2001:db8::53")',
  );
  // Not when that list is loopback too, or when it is the file that failed.
  assert.doesNotMatch(resolvError(STUB, { resolved: STUB }).hint ?? "", /\/run\/systemd/);
  const self = resolvError(STUB, { resolved: STUB, path: "/run/systemd/resolve/resolv.conf" });
  assert.match(self.message, /in "\/run\/systemd\/resolve\/resolv\.conf" \(k8s\.resolv-conf\)/);
  assert.doesNotMatch(self.hint ?? "", /k8s\.resolv-conf: /);
  // Missing, or a file with no server at all, gets the same hint.
  assert.match(
    resolvError(undefined, { resolved: UPSTREAM }).hint ?? "",
    /^Set k8s\.resolv-conf: \/run\/systemd\/resolve\/resolv\.conf /,
  );
  assert.match(
    resolvError("search x\n", { resolved: UPSTREAM }).hint ?? "",
    /^Set k8s\.resolv-conf: \/run\/systemd\/resolve\/resolv\.conf /,
  );
});

Deno.test("prep: a missing resolv.conf, or one without a usable nameserver line, stops prep", () => {
  const missing = resolvError(undefined, { path: "/etc/kubelet-resolv.conf" });
  assert.equal(
    missing.message,
    'Node "vm2" has no "/etc/kubelet-resolv.conf" (k8s.resolv-conf), the file whose name servers the kubelet gives Pods with dnsPolicy Default',
  );
  assert.match(missing.hint ?? "", /^Create it on the node, or set k8s\.resolv-conf to a file/);
  for (const content of ["", "# nameserver 10.0.0.1\nsearch example\n", "options edns0\n"]) {
    assert.match(
      resolvError(content).message,
      /^Node "vm2" lists no name server in "\/etc\/resolv\.conf"/,
    );
  }
  const bare = resolvError("nameserver 10.0.0.1\nnameserver\t \n");
  assert.match(
    bare.message,
    /^Node "vm2" has a nameserver line without an address in "\/etc\/resolv\.conf"/,
  );
});

Deno.test("prep: a resolv.conf with a real server passes, loopback ones beside it or not", () => {
  for (
    const content of [
      "nameserver 10.0.0.1\n",
      "nameserver 127.0.0.53\nnameserver 192.0.2.1\n", // mixed
      "nameserver ::1\nnameserver 2001:db8::53 \t\n",
      "# generated\nnameserver\t192.0.2.1\t\t\nsearch example\n",
      UPSTREAM,
    ]
  ) {
    checkResolvConf("vm2", { resolvConf: content, systemdResolvConf: undefined }, {
      path: "/etc/resolv.conf",
    });
  }
});

/** Node files under a temp root: the probe reads them there, by real `sh`; the rest is logged. */
class FakeNode implements Remote {
  readonly node = "vm2";
  readonly address = "vm2";
  readonly log: string[] = [];
  readonly uploads: string[] = [];
  readonly #root: string;
  readonly #paths: string[];

  constructor(root: string, files: Record<string, string>) {
    this.#root = root;
    this.#paths = Object.keys(files);
    for (const [path, content] of Object.entries(files)) {
      Deno.mkdirSync(dirname(join(root, path)), { recursive: true });
      Deno.writeTextFileSync(join(root, path), content);
    }
  }

  async exec(command: string | readonly string[]): Promise<RunResult> {
    const line = typeof command === "string" ? command : command.join(" ");
    this.log.push(line);
    if (!line.startsWith(CGROUP_PROBE)) {
      return { code: 0, success: true, stdout: "", stderr: "" } as RunResult;
    }
    let local = line;
    for (const p of new Set([...this.#paths, SYSTEMD_RESOLVED_CONF])) {
      local = local.replaceAll(p, join(this.#root, p));
    }
    const out = await new Deno.Command("sh", { args: ["-c", local] }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return {
      code: 0,
      success: true,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: "",
    } as RunResult;
  }

  upload(files: NodeFile | readonly NodeFile[]): Promise<void> {
    for (const f of [files].flat()) this.uploads.push(f.path);
    return Promise.resolve();
  }
  uploadFile(_local: string, remotePath: string): Promise<void> {
    this.uploads.push(remotePath);
    return Promise.resolve();
  }
  pipe(): Promise<void> {
    return Promise.reject(new Error("not used"));
  }
  sha256(): Promise<Map<string, string | undefined>> {
    return Promise.reject(new Error("not used"));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("prep: a node with a systemd-resolved stub stops create's prep after one probe, nothing changed", async () => {
  const root = await Deno.makeTempDir({ prefix: "dtk-prep-" });
  try {
    const node = new FakeNode(root, {
      "/etc/resolv.conf": STUB,
      [SYSTEMD_RESOLVED_CONF]: UPSTREAM,
    });
    // v1.20: the cgroup check passes on any host, so only the resolv.conf check can stop it.
    const options = { kubernetes: "v1.20.2", resolvConf: "/etc/resolv.conf" };
    await assert.rejects(runPrep(node, options), (e: unknown) => {
      assert.ok(e instanceof DtkError);
      assert.equal(
        e.message,
        'Node "vm2" lists only loopback name servers in "/etc/resolv.conf" (k8s.resolv-conf): "127.0.0.53"; CoreDNS would forward to itself and crash-loop',
      );
      assert.match(e.hint ?? "", /^Set k8s\.resolv-conf: \/run\/systemd\/resolve\/resolv\.conf /);
      return true;
    });
    // One round trip, and neither swap, firewalld nor any file touched.
    assert.deepEqual(node.log, [prepProbe("/etc/resolv.conf")]);
    assert.deepEqual(node.uploads, []);

    // With the key set as the hint says, prep goes on to its commands.
    const fixed = { ...options, resolvConf: SYSTEMD_RESOLVED_CONF };
    await runPrep(node, fixed);
    assert.deepEqual(node.log.slice(1), [prepProbe(SYSTEMD_RESOLVED_CONF), ...PREP_COMMANDS]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("prep: the probe reads both files in one command, by a real shell", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dtk-prep-" });
  try {
    // A name a shell would split, and a last line without its newline.
    const path = join(dir, "it's resolv.conf");
    await Deno.writeTextFile(path, "nameserver 10.0.0.1\nnameserver 10.0.0.2");
    const run = async (file: string) => {
      const out = await new Deno.Command("sh", { args: ["-c", prepProbe(file)] }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return parsePrepProbe(new TextDecoder().decode(out.stdout));
    };
    const facts = await run(path);
    assert.ok(["cgroup2fs", "tmpfs"].includes(facts.cgroupFsType), facts.cgroupFsType);
    assert.deepEqual(resolvConfServers(facts.resolvConf ?? "").servers, ["10.0.0.1", "10.0.0.2"]);
    let resolved: string | undefined;
    try {
      resolved = await Deno.readTextFile(SYSTEMD_RESOLVED_CONF);
    } catch {
      resolved = undefined;
    }
    assert.equal(facts.systemdResolvConf?.trimEnd(), resolved?.trimEnd());
    assert.equal((await run(join(dir, "absent"))).resolvConf, undefined);
    // A folder is not a resolv.conf.
    assert.equal((await run(dir)).resolvConf, undefined);
    assert.equal((await run(join(dir, "empty"))).resolvConf, undefined);
    await Deno.writeTextFile(join(dir, "empty"), "");
    assert.equal((await run(join(dir, "empty"))).resolvConf, "\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
