// `runDoctor` against fake command sets on PATH and a fake /proc, /sys, /dev, /etc root: every
// check passing, then each broken on its own.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Config } from "../../lib/config/types.ts";
import { ExitCode, PrerequisiteError } from "../../lib/errors/mod.ts";
import {
  blockingFailures,
  type Check,
  preflight,
  preflightError,
  type RegistryDoctorInput,
  runDoctor,
} from "../../lib/doctor/mod.ts";
import {
  cpuinfo,
  FakeHost,
  GID,
  helmScript,
  kubectlScript,
  modules,
  OUT,
  prints,
  RecordingRunner,
  shq,
  USER,
  versionScript,
  virshScript,
} from "./_fake_host.ts";

interface Result {
  checks: Check[];
  runner: RecordingRunner;
  get(id: string): Check;
  has(id: string): boolean;
}

async function doctor(
  host: FakeHost,
  config: Config,
  options: {
    env?: Record<string, string>;
    timeoutMs?: number;
    registry?: RegistryDoctorInput;
  } = {},
): Promise<Result> {
  const runner = new RecordingRunner();
  const checks = await runDoctor(config, {
    runner,
    root: host.root,
    env: host.env(options.env),
    timeoutMs: options.timeoutMs ?? 10_000,
    ...(options.registry === undefined ? {} : { registry: options.registry }),
  });
  for (const call of runner.calls) {
    assert.ok(call.options.timeoutMs !== undefined, `no timeout on ${call.argv.join(" ")}`);
    assert.ok(call.argv[0]?.startsWith(host.bin), `not from PATH: ${call.argv[0]}`);
    assert.equal(call.options.env?.LC_ALL, "C");
  }
  for (const check of checks) {
    // Only blocking checks may fail; every problem says how to fix it.
    if (check.status === "fail") assert.ok(check.blocking, `${check.id} fails but does not block`);
    if (check.status !== "ok") assert.ok(check.fix, `${check.id} has no fix`);
  }
  return {
    checks,
    runner,
    get(id) {
      const check = checks.find((c) => c.id === id);
      assert.ok(check, `no check ${q(id)} in ${checks.map((c) => c.id).join(", ")}`);
      return check;
    },
    has: (id) => checks.some((c) => c.id === id),
  };
}

function q(s: string): string {
  return JSON.stringify(s);
}

async function withHost(
  make: () => Promise<FakeHost>,
  fn: (host: FakeHost) => Promise<void>,
): Promise<void> {
  const host = await make();
  try {
    await fn(host);
  } finally {
    await host.dispose();
  }
}

const kvm = () => FakeHost.healthyKvm();
const vbox = () => FakeHost.healthyVbox();
const asVbox = (c: Config) => {
  c.virt = "virtualbox";
};

Deno.test("doctor: a healthy KVM host passes every check, in a fixed order", async () => {
  await withHost(kvm, async (host) => {
    const r = await doctor(host, host.config());
    assert.deepEqual(r.checks.map((c) => c.id), [
      "ssh",
      "scp",
      "virsh",
      "virt-install",
      "virt-clone",
      "qemu-img",
      "kvm-accel",
      "kvm-device",
      "libvirt-group",
      "libvirt-network",
      "helm",
      "kubectl",
      "disk-store",
      "disk-vms",
      "memory",
    ]);
    for (const c of r.checks) assert.equal(c.status, "ok", `${c.id}: ${JSON.stringify(c)}`);
    assert.equal(r.get("ssh").found, "9.2p1");
    assert.equal(r.get("virsh").found, "9.0.0");
    assert.equal(r.get("qemu-img").found, "7.2.22");
    assert.equal(r.get("kvm-accel").found, "vmx (Intel VT-x)");
    assert.equal(r.get("libvirt-network").found, "active (virbr0)");
    assert.equal(r.get("helm").found, "3.14.4");
    assert.equal(r.get("kubectl").found, "1.35.0");
    assert.equal(r.get("libvirt-group").found, "alice is a member");
    assert.equal(r.get("disk-store").path, host.store);
    assert.equal(r.get("disk-vms").path, host.path("/var/lib/libvirt/images"));
    assert.deepEqual(
      await preflight(host.config(), { runner: r.runner, root: host.root, env: host.env() }),
      [],
    );
    // Same host, same answer: the output is deterministic.
    const again = await doctor(host, host.config());
    assert.deepEqual(again.checks, r.checks);
  });
});

Deno.test("doctor: ssh missing blocks, too old warns, scp missing blocks", async () => {
  await withHost(kvm, async (host) => {
    await host.removeTool("ssh");
    let r = await doctor(host, host.config());
    assert.equal(r.get("ssh").status, "fail");
    assert.equal(r.get("ssh").found, "not found");
    assert.equal(
      r.get("ssh").fix,
      "sudo apt install openssh-client\n(Fedora: sudo dnf install openssh-clients)",
    );
    await host.tool("ssh", prints("", { stderr: OUT.sshOld }));
    r = await doctor(host, host.config());
    assert.equal(r.get("ssh").status, "warn");
    assert.equal(r.get("ssh").found, "7.4p1");
    assert.equal(r.get("ssh").required, ">= 7.6");
    await host.tool("ssh", prints("", { stderr: OUT.sshUbuntu }));
    await host.removeTool("scp");
    r = await doctor(host, host.config());
    assert.equal(r.get("ssh").status, "ok");
    assert.equal(r.get("ssh").found, "9.6p1");
    assert.equal(r.get("scp").status, "fail");
    assert.deepEqual(blockingFailures(r.checks).map((c) => c.id), ["scp"]);
  });
});

Deno.test("doctor: each KVM tool missing blocks with its package, old warns, odd output warns", async () => {
  await withHost(kvm, async (host) => {
    const cases: [string, string, string][] = [
      ["virsh", "sudo apt install libvirt-clients", "libvirt-client"],
      ["virt-install", "sudo apt install virtinst", "virt-install"],
      ["virt-clone", "sudo apt install virtinst", "virt-install"],
      ["qemu-img", "sudo apt install qemu-utils", "qemu-img"],
    ];
    for (const [tool, apt, fedora] of cases) {
      const saved = await Deno.readTextFile(join(host.bin, tool));
      await host.removeTool(tool);
      const r = await doctor(host, host.config());
      assert.equal(r.get(tool).status, "fail", tool);
      assert.equal(r.get(tool).fix, `${apt}\n(Fedora: sudo dnf install ${fedora})`);
      assert.ok(blockingFailures(r.checks).some((c) => c.id === tool));
      await host.tool(tool, saved.replace(/^#!\/bin\/sh\n/, ""));
    }
    await host.tool(
      "virsh",
      virshScript({ network: "default", uri: "qemu:///system" }).replace(
        `echo ${OUT.virsh}`,
        "echo 7.0.0",
      ),
    );
    await host.tool("virt-install", versionScript("3.2.0"));
    await host.tool("qemu-img", versionScript("qemu-img: unexpected banner"));
    const r = await doctor(host, host.config());
    assert.equal(r.get("virsh").status, "warn");
    assert.equal(r.get("virsh").found, "7.0.0");
    assert.equal(r.get("virt-install").status, "warn");
    assert.equal(r.get("virt-install").found, "3.2.0");
    assert.equal(r.get("qemu-img").status, "warn");
    assert.equal(r.get("qemu-img").found, "unknown version");
    assert.match(r.get("qemu-img").detail ?? "", /unexpected banner/);
    assert.deepEqual(blockingFailures(r.checks), []);
  });
});

Deno.test("doctor: no vmx/svm, or kvm_pvm, is no usable KVM: block and offer tcg", async () => {
  await withHost(kvm, async (host) => {
    await host.file("/proc/cpuinfo", cpuinfo("fpu vme de pse tsc msr hypervisor"));
    let r = await doctor(host, host.config());
    assert.equal(r.get("kvm-accel").status, "fail");
    assert.equal(r.get("kvm-accel").found, "no vmx/svm flag in /proc/cpuinfo");
    assert.match(r.get("kvm-accel").fix ?? "", /kvm\.accel: tcg/);

    // This machine's case: the flag is hidden and kvm_pvm is built in (only in /sys/module).
    await host.file("/proc/cpuinfo", cpuinfo("fpu vme svm"));
    await host.remove("/proc/modules");
    await Deno.mkdir(host.path("/sys/module/kvm_pvm/parameters"), { recursive: true });
    r = await doctor(host, host.config());
    assert.equal(r.get("kvm-accel").status, "fail");
    assert.match(r.get("kvm-accel").found, /kvm_pvm/);
    assert.equal(
      r.get("kvm-accel").fix,
      "Set kvm.accel: tcg in the config (software emulation: slow, but works here)",
    );

    // With tcg configured nothing about KVM blocks, and /dev/kvm is not even looked at.
    await host.remove("/dev/kvm");
    r = await doctor(host, host.config((c) => (c.kvm.accel = "tcg")));
    assert.equal(r.get("kvm-accel").status, "ok");
    assert.equal(r.get("kvm-accel").found, "tcg configured");
    assert.equal(r.has("kvm-device"), false);
    assert.deepEqual(blockingFailures(r.checks), []);

    await host.remove("/sys/module/kvm_pvm");
    r = await doctor(host, host.config((c) => (c.kvm.accel = "tcg")));
    assert.equal(r.get("kvm-accel").found, "tcg configured; svm (AMD-V) is available");
  });
});

Deno.test("doctor: /dev/kvm missing or not accessible", async () => {
  await withHost(kvm, async (host) => {
    await host.remove("/dev/kvm");
    let r = await doctor(host, host.config());
    assert.equal(r.get("kvm-device").status, "fail");
    assert.equal(r.get("kvm-device").found, "missing");
    assert.match(r.get("kvm-device").fix ?? "", /^sudo modprobe kvm_intel/);

    // Group kvm may read and write, but alice is not in it at all.
    await host.kvmDevice({ mode: 0o660 });
    await host.tool(
      "id",
      prints(
        `uid=${USER.uid}(alice) gid=${USER.uid}(alice) groups=${USER.uid}(alice),107(libvirt)`,
      ),
    );
    await host.file(
      "/etc/group",
      `kvm:x:${GID.kvm}:\nlibvirt:x:107:alice\nalice:x:${USER.uid}:\n`,
    );
    const session = host.config((c) => (c.kvm.uri = "qemu:///session"));
    r = await doctor(host, session);
    assert.equal(r.get("kvm-device").status, "fail");
    assert.equal(r.get("kvm-device").found, "no");
    assert.equal(
      r.get("kvm-device").fix,
      "sudo usermod -aG kvm alice\nthen log out and back in (or run: newgrp kvm)",
    );
    // With qemu:///system libvirt's own QEMU user opens it: only a warning.
    r = await doctor(host, host.config());
    assert.equal(r.get("kvm-device").status, "warn");
    assert.equal(r.get("kvm-device").blocking, false);

    // Added to kvm in /etc/group, but this session started before: a re-login is needed.
    await host.file(
      "/etc/group",
      `kvm:x:${GID.kvm}:alice\nlibvirt:x:107:alice\nalice:x:${USER.uid}:\n`,
    );
    r = await doctor(host, session);
    assert.equal(r.get("kvm-device").status, "fail");
    assert.equal(r.get("kvm-device").found, 'no (in group "kvm" after a re-login)');
    assert.equal(r.get("kvm-device").fix, "Log out and back in (or run: newgrp kvm)");

    // Readable and writable by everyone.
    await host.kvmDevice({ mode: 0o666 });
    r = await doctor(host, session);
    assert.equal(r.get("kvm-device").status, "ok");
    // Readable only: no.
    await host.kvmDevice({ mode: 0o644 });
    r = await doctor(host, session);
    assert.equal(r.get("kvm-device").status, "fail");
  });
});

Deno.test("doctor: /dev/kvm for the process's own user is asked of the kernel", async () => {
  await withHost(kvm, async (host) => {
    const uid = Deno.uid() ?? 0;
    await host.tool("id", prints(`uid=${uid}(me) gid=${uid}(me) groups=${uid}(me)`));
    await host.kvmDevice({ mode: 0o600 });
    const r = await doctor(host, host.config((c) => (c.kvm.uri = "qemu:///session")));
    // Root, or the owner of the file: the real open succeeds either way.
    assert.equal(r.get("kvm-device").status, "ok");
    assert.equal(r.get("kvm-device").found, uid === 0 ? "yes (root)" : "yes");
  });
});

Deno.test("doctor: libvirt group membership and pending re-login", async () => {
  await withHost(kvm, async (host) => {
    const group = (libvirtMembers: string) =>
      host.file(
        "/etc/group",
        `kvm:x:${GID.kvm}:alice\nlibvirt:x:107:${libvirtMembers}\nalice:x:${USER.uid}:\n`,
      );
    const id = (groups: string) =>
      host.tool("id", prints(`uid=${USER.uid}(alice) gid=${USER.uid}(alice) groups=${groups}`));

    await group("bob");
    await id(`${USER.uid}(alice),${GID.kvm}(kvm)`);
    let r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-group").status, "warn");
    assert.equal(r.get("libvirt-group").found, "not a member");
    assert.equal(
      r.get("libvirt-group").fix,
      "sudo usermod -aG libvirt alice\nthen log out and back in (or run: newgrp libvirt)",
    );

    await group("bob,alice");
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-group").status, "warn");
    assert.equal(r.get("libvirt-group").found, "member after a re-login");
    assert.equal(r.get("libvirt-group").fix, "Log out and back in (or run: newgrp libvirt)");

    await id(`${USER.uid}(alice),${GID.kvm}(kvm),107(libvirt)`);
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-group").status, "ok");

    // Not in /etc/group but from a directory service: getent answers.
    await host.file("/etc/group", `kvm:x:${GID.kvm}:alice\nalice:x:${USER.uid}:\n`);
    await id(`${USER.uid}(alice),${GID.kvm}(kvm)`);
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-group").found, "no libvirt group");
    assert.match(r.get("libvirt-group").fix ?? "", /sudo apt install libvirt-daemon-system/);
    await host.tool(
      "getent",
      `[ "$1 $2" = "group libvirt" ] || exit 2\n${prints("libvirt:x:107:alice")}`,
    );
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-group").found, "member after a re-login");

    await host.tool("id", prints("uid=0(root) gid=0(root) groups=0(root)"));
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-group").found, "root");

    r = await doctor(host, host.config((c) => (c.kvm.uri = "qemu:///session")));
    assert.equal(r.get("libvirt-group").found, "not needed for qemu:///session");
  });
});

Deno.test("doctor: libvirt network active, inactive, missing, daemon down, hung", async () => {
  await withHost(kvm, async (host) => {
    const uri = "qemu:///system";
    const net = (options: Parameters<typeof virshScript>[0]) =>
      host.tool("virsh", virshScript(options));

    await net({ network: "default", uri, active: "no", autostart: "no" });
    let r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-network").status, "fail");
    assert.equal(r.get("libvirt-network").found, "inactive");
    assert.equal(
      r.get("libvirt-network").fix,
      "virsh -c qemu:///system net-start default && virsh -c qemu:///system net-autostart default",
    );
    assert.deepEqual(blockingFailures(r.checks).map((c) => c.id), ["libvirt-network"]);

    await net({ network: "default", uri, autostart: "no" });
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-network").status, "warn");
    assert.equal(r.get("libvirt-network").fix, "virsh -c qemu:///system net-autostart default");

    await net({ network: "default", uri, state: "missing" });
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-network").found, "not defined");
    assert.match(
      r.get("libvirt-network").fix ?? "",
      /^virsh -c qemu:\/\/\/system net-define \/usr\/share\/libvirt\/networks\/default\.xml && virsh/,
    );

    // A network of another name is asked for by that name.
    await net({ network: "dtk-net", uri });
    r = await doctor(host, host.config((c) => (c.kvm.libvirtNetwork = "dtk-net")));
    assert.equal(r.get("libvirt-network").status, "ok");
    assert.equal(r.get("libvirt-network").title, "libvirt network dtk-net");

    await net({ network: "default", uri, state: "down" });
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-network").found, "cannot connect to libvirt");
    assert.match(r.get("libvirt-network").fix ?? "", /sudo systemctl enable --now libvirtd/);

    await net({ network: "default", uri, state: "denied" });
    r = await doctor(host, host.config());
    assert.match(r.get("libvirt-network").fix ?? "", /^sudo usermod -aG libvirt/);

    await net({ network: "default", uri, state: "hang" });
    const started = performance.now();
    r = await doctor(host, host.config(), { timeoutMs: 400 });
    assert.ok(performance.now() - started < 5000, "a hung virsh hung the doctor");
    assert.equal(r.get("libvirt-network").status, "fail");
    assert.equal(r.get("libvirt-network").found, "error: no answer within 400ms");

    // User-mode networking needs no libvirt network.
    r = await doctor(host, host.config((c) => (c.kvm.network = "user")));
    assert.equal(r.has("libvirt-network"), false);

    await host.removeTool("virsh");
    r = await doctor(host, host.config());
    assert.equal(r.get("libvirt-network").status, "warn");
    assert.equal(r.get("virsh").status, "fail");
  });
});

Deno.test("doctor: VirtualBox host passes; VBoxManage missing or without vboxdrv blocks", async () => {
  await withHost(vbox, async (host) => {
    let r = await doctor(host, host.config(asVbox));
    assert.deepEqual(r.checks.map((c) => c.id), [
      "ssh",
      "scp",
      "vboxmanage",
      "kvm-vs-virtualbox",
      "helm",
      "kubectl",
      "disk-store",
      "disk-vms",
      "memory",
    ]);
    for (const c of r.checks) assert.equal(c.status, "ok", `${c.id}: ${JSON.stringify(c)}`);
    assert.equal(r.get("vboxmanage").found, "7.0.18r162988");
    assert.equal(r.get("disk-vms").path, join(host.home, "VirtualBox VMs"));

    await host.removeTool("VBoxManage");
    await host.tool("vboxmanage", versionScript(OUT.vboxUbuntu));
    r = await doctor(host, host.config(asVbox));
    assert.equal(r.get("vboxmanage").status, "ok");
    assert.equal(r.get("vboxmanage").found, "7.0.16_Ubuntur162802");

    await host.tool("vboxmanage", versionScript(OUT.vboxNoDriver));
    r = await doctor(host, host.config(asVbox));
    assert.equal(r.get("vboxmanage").status, "fail");
    assert.match(r.get("vboxmanage").fix ?? "", /^sudo \/sbin\/vboxconfig/);

    await host.tool("vboxmanage", versionScript("6.1.50_Ubuntur161033"));
    r = await doctor(host, host.config(asVbox));
    assert.equal(r.get("vboxmanage").status, "warn");

    await host.removeTool("vboxmanage");
    r = await doctor(host, host.config(asVbox));
    assert.equal(r.get("vboxmanage").status, "fail");
    assert.match(r.get("vboxmanage").fix ?? "", /sudo apt install virtualbox/);
    assert.match(r.get("vboxmanage").fix ?? "", /Fedora: sudo dnf install VirtualBox/);
  });
});

Deno.test("doctor: KVM loaded on kernel >= 6.12 warns a VirtualBox user with the module option", async () => {
  await withHost(vbox, async (host) => {
    await host.file("/proc/modules", modules(["kvm_amd", "kvm", "vboxdrv"]));
    // 6.8: KVM takes AMD-V only while its own VMs run.
    let r = await doctor(host, host.config(asVbox));
    assert.equal(r.get("kvm-vs-virtualbox").status, "ok");

    await host.file("/proc/sys/kernel/osrelease", "6.12.10-amd64\n");
    r = await doctor(host, host.config(asVbox));
    const check = r.get("kvm-vs-virtualbox");
    assert.equal(check.status, "warn");
    assert.equal(check.found, "kvm_amd loaded, kernel 6.12.10-amd64");
    assert.equal(
      check.fix,
      [
        'echo "options kvm enable_virt_at_load=0" | sudo tee /etc/modprobe.d/kvm.conf',
        "sudo modprobe -r kvm_amd kvm && sudo modprobe kvm_amd",
        "(or add kvm.enable_virt_at_load=0 to the kernel command line and reboot)",
      ].join("\n"),
    );

    // Once the option is in effect the kernel reports it.
    await host.file("/sys/module/kvm/parameters/enable_virt_at_load", "N\n");
    r = await doctor(host, host.config(asVbox));
    assert.equal(r.get("kvm-vs-virtualbox").status, "ok");

    // Built-in kvm_intel shows only under /sys/module.
    await host.file("/sys/module/kvm/parameters/enable_virt_at_load", "Y\n");
    await host.file("/proc/modules", modules(["vboxdrv"]));
    await Deno.mkdir(host.path("/sys/module/kvm_intel"), { recursive: true });
    await host.file("/proc/sys/kernel/osrelease", "7.1.0-1-generic\n");
    r = await doctor(host, host.config(asVbox));
    assert.equal(r.get("kvm-vs-virtualbox").status, "warn");
    assert.match(r.get("kvm-vs-virtualbox").fix ?? "", /modprobe -r kvm_intel kvm/);
  });
});

Deno.test("doctor: helm only with add-ons; >= 3.8 (OCI charts come from the store)", async () => {
  await withHost(kvm, async (host) => {
    const noAddons = host.config((c) => c.addons.forEach((a) => (a.enabled = false)));
    let r = await doctor(host, noAddons);
    assert.equal(r.has("helm"), false);

    await host.tool("helm", helmScript(OUT.helm4));
    r = await doctor(host, host.config());
    assert.equal(r.get("helm").found, "4.1.1");
    assert.equal(r.get("helm").status, "ok");

    await host.tool("helm", helmScript(OUT.helmOld));
    r = await doctor(host, host.config());
    assert.equal(r.get("helm").status, "warn");
    assert.equal(r.get("helm").required, ">= 3.8.0");

    await host.removeTool("helm");
    r = await doctor(host, host.config());
    assert.equal(r.get("helm").status, "warn");
    assert.equal(r.get("helm").blocking, false);
    assert.match(r.get("helm").fix ?? "", /get-helm-3/);
  });
});

Deno.test("doctor: kubectl formats of 1.27 to 1.35 and the ±1 minor skew", async () => {
  await withHost(kvm, async (host) => {
    const at = (v: string) => host.config((c) => (c.versions.kubernetes = v));
    for (const minor of [27, 28, 33, 35]) {
      await host.tool("kubectl", kubectlScript(minor));
      const r = await doctor(host, at(`v1.${minor}.0`));
      assert.equal(r.get("kubectl").status, "ok", `1.${minor}`);
      assert.equal(r.get("kubectl").found, minor <= 27 ? `1.${minor}.4` : `1.${minor}.0`);
    }
    await host.tool("kubectl", kubectlScript(34));
    let r = await doctor(host, at("v1.35.0"));
    assert.equal(r.get("kubectl").status, "ok");
    assert.equal(r.get("kubectl").required, "1.34 to 1.36");

    await host.tool("kubectl", kubectlScript(32));
    r = await doctor(host, at("1.35.0"));
    assert.equal(r.get("kubectl").status, "warn");
    const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
    assert.equal(
      r.get("kubectl").fix,
      `curl -fLo kubectl https://dl.k8s.io/release/v1.35.0/bin/linux/${arch}/kubectl && sudo install -m 0755 kubectl /usr/local/bin/kubectl`,
    );

    await host.removeTool("kubectl");
    r = await doctor(host, at("v1.35.0"));
    assert.equal(r.get("kubectl").status, "warn");
    assert.equal(r.get("kubectl").found, "not found");
    assert.deepEqual(blockingFailures(r.checks), []);
  });
});

Deno.test("doctor: free disk for the store and the VMs", async () => {
  await withHost(kvm, async (host) => {
    const images = host.path("/var/lib/libvirt/images");
    const GiB = 1024 * 1024; // in KiB, as df -Pk prints
    // Defaults: 3 VMs + template, 30 GiB each, thin: 120 GiB wanted, 16 GiB floor.
    let r = await doctor(host, host.config());
    assert.equal(r.get("disk-vms").required, "120.0 GiB (thin), at least 16.0 GiB");
    assert.equal(r.get("disk-store").required, "10.5 GiB free");

    await host.disk(host.store, 5 * GiB, "/home");
    await host.disk(images, 50 * GiB, "/");
    r = await doctor(host, host.config());
    assert.equal(r.get("disk-store").status, "warn");
    assert.equal(r.get("disk-store").found, "5.0 GiB free on /home");
    assert.match(r.get("disk-store").fix ?? "", /export DTK_STORE=/);
    assert.equal(r.get("disk-vms").status, "warn");
    assert.equal(r.get("disk-vms").found, "50.0 GiB free on /");
    assert.deepEqual(blockingFailures(r.checks), []);

    await host.disk(images, 10 * GiB, "/");
    r = await doctor(host, host.config());
    assert.equal(r.get("disk-vms").status, "fail");
    assert.match(r.get("disk-vms").fix ?? "", /vms\[\]\.disk/);

    // Smaller disks lower the need: 4 × 10 GiB.
    await host.disk(images, 45 * GiB, "/");
    r = await doctor(host, host.config((c) => c.vms.forEach((vm) => (vm.disk = 10))));
    assert.equal(r.get("disk-vms").required, "60.0 GiB (thin), at least 16.0 GiB");
    r = await doctor(
      host,
      host.config((c) => {
        c.vm.createTemplate = false;
        c.vms.forEach((vm) => (vm.disk = 10));
      }),
    );
    assert.equal(r.get("disk-vms").status, "ok");
    assert.equal(r.get("disk-store").required, "512.0 MiB free");

    // One filesystem for both: the VMs get what the store leaves.
    await host.disk(host.store, 20 * GiB, "/");
    await host.disk(images, 20 * GiB, "/");
    r = await doctor(host, host.config());
    assert.equal(r.get("disk-store").status, "ok");
    assert.equal(r.get("disk-vms").found, "9.5 GiB free on / (after the store)");
    assert.equal(r.get("disk-vms").status, "fail");

    // DTK_STORE moves the store, and the check follows it.
    const elsewhere = join(host.dir, "big-store");
    await Deno.mkdir(elsewhere);
    await host.disk(elsewhere, 900 * GiB, "/big");
    r = await doctor(host, host.config(), { env: { DTK_STORE: elsewhere } });
    assert.equal(r.get("disk-store").path, elsewhere);
    assert.equal(r.get("disk-store").found, "900.0 GiB free on /big");

    // A store folder that does not exist yet is measured on its nearest existing parent.
    r = await doctor(host, host.config(), { env: { DTK_STORE: join(elsewhere, "a", "b") } });
    assert.equal(r.get("disk-store").found, "900.0 GiB free on /big");

    await host.removeTool("df");
    r = await doctor(host, host.config());
    assert.equal(r.get("disk-store").status, "warn");
    assert.equal(r.get("disk-store").found, "unknown");
    assert.equal(r.get("disk-vms").status, "warn");
  });
});

Deno.test("doctor: memory against the sum of the VMs", async () => {
  await withHost(kvm, async (host) => {
    const mem = (kib: number) =>
      host.file("/proc/meminfo", `MemTotal: 33554432 kB\nMemAvailable:   ${kib} kB\n`);
    // Defaults: 3 × 8192 MiB = 24 GiB.
    await mem(20 * 1024 * 1024);
    let r = await doctor(host, host.config());
    assert.equal(r.get("memory").status, "warn");
    assert.equal(r.get("memory").found, "20.0 GiB available");
    assert.equal(r.get("memory").required, "24.0 GiB for 3 VMs");

    await mem(11 * 1024 * 1024);
    r = await doctor(host, host.config());
    assert.equal(r.get("memory").status, "fail");
    assert.match(r.get("memory").fix ?? "", /vms\[\]\.mem/);

    r = await doctor(host, host.config((c) => c.vms.forEach((vm) => (vm.mem = 2048))));
    assert.equal(r.get("memory").status, "ok");

    await host.remove("/proc/meminfo");
    r = await doctor(host, host.config());
    assert.equal(r.get("memory").status, "warn");
    assert.equal(r.get("memory").found, "unknown");
  });
});

Deno.test("preflight: only blocking failures, and exit code 3", async () => {
  await withHost(kvm, async (host) => {
    await host.removeTool("virt-clone");
    await host.removeTool("helm");
    await host.tool(
      "virsh",
      virshScript({ network: "default", uri: "qemu:///system", active: "no" }),
    );
    await host.file("/proc/meminfo", "MemAvailable:   1048576 kB\n");
    const runner = new RecordingRunner();
    const failures = await preflight(host.config(), { runner, root: host.root, env: host.env() });
    assert.deepEqual(failures.map((c) => c.id), ["virt-clone", "libvirt-network", "memory"]);
    const error = preflightError(failures);
    assert.ok(error instanceof PrerequisiteError);
    assert.equal(error.exitCode, ExitCode.prerequisite);
    assert.equal(
      error.message,
      'The host lacks 3 prerequisites: "virt-clone", "libvirt network default", "memory"',
    );
    const one = preflightError(failures.slice(0, 1));
    assert.equal(one.message, 'The host lacks a prerequisite: "virt-clone" (not found)');
    assert.equal(one.hint, "Try: sudo apt install virtinst");
  });
});

Deno.test("doctor: the test-nspawn driver needs ssh, not a hypervisor, disk for VMs or memory", async () => {
  await withHost(kvm, async (host) => {
    const r = await doctor(host, host.config((c) => (c.virt = "test-nspawn")));
    assert.deepEqual(r.checks.map((c) => c.id), ["ssh", "scp", "helm", "kubectl", "disk-store"]);
    assert.equal(r.get("disk-store").required, "512.0 MiB free");
  });
});

Deno.test("doctor: tools are looked up on the given PATH only, with names quoted safely", async () => {
  await withHost(kvm, async (host) => {
    // A second folder later on PATH must not shadow the first; an empty PATH finds nothing.
    const later = join(host.dir, "later");
    await Deno.mkdir(later);
    await Deno.writeTextFile(
      join(later, "ssh"),
      `#!/bin/sh\nprintf '%s\\n' ${shq("OpenSSH_1.0p1")} >&2\n`,
    );
    await Deno.chmod(join(later, "ssh"), 0o755);
    let r = await doctor(host, host.config(), { env: { PATH: `${host.bin}:${later}` } });
    assert.equal(r.get("ssh").found, "9.2p1");
    r = await doctor(host, host.config(), { env: { PATH: "" } });
    assert.equal(r.get("ssh").found, "not found");
    assert.equal(r.get("libvirt-group").found, "unknown user");
  });
});

Deno.test("doctor: every value in a printed fix is shell-quoted, so pasting it runs no injected code", async () => {
  await withHost(kvm, async (host) => {
    // Values the config check refuses; the doctor must still never print them raw.
    const uri = "qemu:///system?x=$(touch pwned)";
    const network = "n;touch pwned 'x'";
    await host.tool("virsh", virshScript({ network: "default", uri: "qemu:///system" }));
    const r = await doctor(
      host,
      host.config((c) => {
        c.kvm.uri = uri;
        c.kvm.libvirtNetwork = network;
      }),
    );
    const fix = r.get("libvirt-network").fix ?? "";
    assert.ok(fix.includes("virsh -c"), fix);
    // Run the printed line with a recording `virsh` first on PATH: each value arrives whole.
    const dir = await Deno.makeTempDir({ prefix: "dtk-doctor-paste-" });
    try {
      const log = join(dir, "args");
      await Deno.writeTextFile(
        join(dir, "virsh"),
        `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a" >> ${shq(log)}; done\n`,
      );
      await Deno.chmod(join(dir, "virsh"), 0o755);
      const line = fix.split("\n")[0]!;
      const run = await new Deno.Command("sh", {
        args: ["-c", line],
        cwd: dir,
        env: { PATH: `${dir}:/usr/bin:/bin` },
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      const args = (await Deno.readTextFile(log)).split("\n");
      assert.ok(args.includes(uri), args.join("|"));
      assert.ok(args.includes(network), args.join("|"));
      await assert.rejects(Deno.stat(join(dir, "pwned")));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

/** A port on loopback that is free now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const LOOPBACK = { listen: "127.0.0.1", reach: "127.0.0.1" };

Deno.test("doctor: the registry port, free, taken (blocking only with images locked), no route", async () => {
  await withHost(kvm, async (host) => {
    const port = freePort();
    const free = await doctor(host, host.config(), {
      registry: { endpoint: LOOPBACK, port, needed: true },
    });
    assert.equal(free.get("registry-port").status, "ok");
    assert.equal(free.get("registry-port").found, `free on 127.0.0.1:${port}`);
    assert.equal(free.get("registry-reach").found, "no firewalld");

    const taken = Deno.listen({ hostname: "127.0.0.1", port });
    try {
      const needed = await doctor(host, host.config(), {
        registry: { endpoint: LOOPBACK, port, needed: true },
      });
      const check = needed.get("registry-port");
      assert.equal(check.status, "fail");
      assert.equal(check.blocking, true);
      assert.equal(check.found, `in use on 127.0.0.1:${port}`);
      assert.match(check.fix ?? "", new RegExp(`ss -ltnp 'sport = :${port}'`));
      assert.equal(blockingFailures(needed.checks).length, 1);
      // cluster create's preflight stops on it before touching anything.
      const stops = await preflight(host.config(), {
        runner: new RecordingRunner(),
        root: host.root,
        env: host.env(),
        registry: { endpoint: LOOPBACK, port, needed: true },
      });
      assert.deepEqual(stops.map((c) => c.id), ["registry-port"]);
      assert.match(preflightError(stops).message, /dtk registry port/);
      const idle = await doctor(host, host.config(), {
        registry: { endpoint: LOOPBACK, port, needed: false },
      });
      assert.equal(idle.get("registry-port").status, "warn");
      assert.equal(blockingFailures(idle.checks).length, 0);
    } finally {
      taken.close();
    }

    // TEST-NET-1 is no address of this host: the VM network's host side is down.
    const down = await doctor(host, host.config(), {
      registry: { endpoint: { listen: "192.0.2.1", reach: "192.0.2.1" }, port, needed: true },
    });
    assert.equal(down.get("registry-port").status, "fail");
    assert.match(
      down.get("registry-port").fix ?? "",
      /virsh -c qemu:\/\/\/system net-start default/,
    );

    const bridged = await doctor(host, host.config(), {
      registry: { endpoint: undefined, port, needed: true },
    });
    assert.equal(bridged.get("registry-port").status, "warn");
    assert.equal(bridged.get("registry-reach").status, "ok");
  });
});

Deno.test("doctor: firewalld's libvirt zone refusing the registry port is a warning with the fix", async () => {
  await withHost(kvm, async (host) => {
    const port = freePort();
    const firewall = (admits: boolean) =>
      host.tool(
        "firewall-cmd",
        [
          `case "$*" in`,
          `  "--state") echo running ;;`,
          `  "--zone=libvirt --query-port=${port}/tcp") echo ${admits ? "yes" : "no"}; exit ${
            admits ? 0 : 1
          } ;;`,
          `  *) echo "unexpected: $*" >&2; exit 2 ;;`,
          "esac",
        ].join("\n"),
      );
    await firewall(false);
    const refused = await doctor(host, host.config(), {
      registry: { endpoint: LOOPBACK, port, needed: true },
    });
    const check = refused.get("registry-reach");
    assert.equal(check.status, "warn");
    assert.equal(check.found, `firewalld zone libvirt does not admit ${port}/tcp`);
    assert.equal(
      check.fix,
      `sudo firewall-cmd --zone=libvirt --add-port=${port}/tcp\n` +
        `sudo firewall-cmd --permanent --zone=libvirt --add-port=${port}/tcp`,
    );
    await firewall(true);
    const admitted = await doctor(host, host.config(), {
      registry: { endpoint: LOOPBACK, port, needed: true },
    });
    assert.equal(admitted.get("registry-reach").status, "ok");
  });
});
