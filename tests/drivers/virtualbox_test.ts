import assert from "node:assert/strict";
import { join } from "node:path";
import { VirtualBoxDriver, type VirtualBoxDriverOptions } from "../../drivers/virtualbox/mod.ts";
import { CommandError, TimeoutError } from "../../lib/errors/mod.ts";
import { fakeHost } from "./_fake.ts";

const KEY = "ssh-ed25519 AAAAC3/&\\x+/key dtk@test";
const B = "VBoxManage";

function driver(
  runner: VirtualBoxDriverOptions["runner"],
  state: string,
  extra: Partial<VirtualBoxDriverOptions> = {},
) {
  return new VirtualBoxDriver({
    runner,
    hostNetworkInterface: undefined,
    hostOnlyNetwork: "192.168.56",
    kickstart: "vbox.text.ks.cfg",
    vboxdir: join(state, "vms"),
    linux: "alma9",
    pollMs: 1,
    lockRetry: { firstDelayMs: 1, attempts: 5 },
    ...extra,
  });
}

const readIso = async (path: string) => new TextDecoder().decode(await Deno.readFile(path));

Deno.test("virtualbox template: host-only network created, OEMDRV without private key, exact argv", async () => {
  const fake = await fakeHost();
  const vms = join(fake.state, "vms");
  const work = join(fake.state, "work");
  try {
    fake.env.FAKE_INSTALL_DONE = "1";
    const d = driver(fake.runner, fake.state);
    await d.createTemplate({
      name: "alma9.7",
      authorizedKey: KEY,
      media: { iso: "/store/alma.iso", guestAdditions: "/store/ga.iso" },
      workDir: work,
    }, { timeoutMs: 1000 });
    const ks = join(work, "kickstart.iso");
    const calls = (await fake.calls()).filter((c) => c[1] !== "showvminfo");
    const attach = (port: string, dev: string, type: string, medium: string) => [
      B,
      "storageattach",
      "alma9.7",
      "--storagectl",
      port === "1s" ? "SATA" : "IDE",
      "--port",
      port === "1s" ? "1" : port,
      "--device",
      dev,
      "--type",
      type,
      "--medium",
      medium,
    ];
    assert.deepEqual(calls, [
      [
        B,
        "createvm",
        "--name",
        "alma9.7",
        "--ostype",
        "RedHat_64",
        "--register",
        "--basefolder",
        vms,
      ],
      [B, "list", "hostonlyifs"],
      [B, "hostonlyif", "create"],
      [
        B,
        "hostonlyif",
        "ipconfig",
        "vboxnet7",
        "--ip",
        "192.168.56.1",
        "--netmask",
        "255.255.255.0",
      ],
      [
        B,
        "modifyvm",
        "alma9.7",
        ...["--ioapic", "on", "--cpus", "2", "--memory", "4096", "--vram", "128"],
        ...["--graphicscontroller", "vmsvga", "--boot1", "dvd", "--boot2", "disk"],
        ...["--boot3", "none", "--boot4", "none"],
        ...["--nic1", "nat", "--nictype1", "82540EM", "--cableconnected1", "on"],
        ...["--nicpromisc1", "deny", "--macaddress1", "auto", "--nic2", "hostonly"],
        ...["--cableconnected2", "on", "--macaddress2", "auto", "--hostonlyadapter2", "vboxnet7"],
      ],
      [
        B,
        "createmedium",
        "disk",
        "--filename",
        `${vms}/alma9.7/alma9.7.vdi`,
        "--size",
        "40000",
        "--format",
        "VDI",
      ],
      [B, "storagectl", "alma9.7", "--name", "SATA", "--add", "sata", "--controller", "IntelAhci"],
      attach("1s", "0", "hdd", `${vms}/alma9.7/alma9.7.vdi`),
      [B, "storagectl", "alma9.7", "--name", "IDE", "--add", "ide", "--controller", "PIIX4"],
      attach("1", "0", "dvddrive", "/store/alma.iso"),
      attach("1", "1", "dvddrive", ks),
      [B, "startvm", "alma9.7", "--type", "headless"],
      attach("1", "0", "dvddrive", "none"),
      attach("1", "1", "dvddrive", "none"),
      attach("0", "0", "dvddrive", "/store/ga.iso"),
      [B, "modifyvm", "alma9.7", "--boot1", "disk", "--boot2", "none"],
      [B, "startvm", "alma9.7", "--type", "headless"],
      attach("0", "0", "dvddrive", "none"),
    ]);
    const iso = await readIso(ks);
    assert.ok(iso.includes(KEY), "public key in ks.cfg, intact");
    assert.ok(!iso.includes("PRIVATE KEY"), "no private key in the OEMDRV volume");
    assert.ok(iso.includes("OEMDRV") && iso.includes("desktop-kubernetes.service"));
  } finally {
    await fake.cleanup();
  }
});

Deno.test("virtualbox clone: static IP volume, stale IPs cleared, locked sessions retried", async () => {
  const fake = await fakeHost();
  const work = join(fake.state, "work");
  try {
    fake.env.FAKE_HOSTONLY = "vboxnet0 192.168.56.1";
    const d = driver(fake.runner, fake.state);
    fake.env.FAKE_INSTALL_DONE = "1";
    await d.createTemplate({
      name: "t",
      authorizedKey: KEY,
      media: { iso: "/a.iso", guestAdditions: "/ga.iso" },
      workDir: work,
    }, { timeoutMs: 1000 });
    delete fake.env.FAKE_INSTALL_DONE;
    // The template's last IP, which the clone inherits.
    await Deno.writeTextFile(
      join(fake.state, "vbox/t/props/_VirtualBox_GuestInfo_Net_1_V4_IP"),
      "192.168.56.99",
    );
    await Deno.remove(join(fake.state, "locked")).catch(() => {});
    fake.env.FAKE_LOCKED = "3";
    await fake.reset();
    await d.clone({
      name: "vm1",
      template: "t",
      cpu: 3,
      mem: 8192,
      disk: undefined,
      staticIp: "192.168.56.200",
      hostKey: {
        privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nHK\n",
        publicKey: "ssh-ed25519 HKPUB",
      },
      authorizedKey: KEY,
      workDir: work,
    }, { timeoutMs: 1000 });
    const seed = join(work, "vm1-cfgenp0s8.iso");
    const clone = [
      B,
      "clonevm",
      "t",
      `--basefolder=${fake.state}/vms`,
      "--mode=machine",
      "--name=vm1",
      "--register",
    ];
    assert.deepEqual((await fake.calls()).filter((c) => c[1] !== "showvminfo"), [
      clone,
      clone,
      clone,
      clone, // three "already locked" failures, then success
      [B, "modifyvm", "vm1", "--cpus", "3", "--memory", "8192"],
      [
        B,
        "storageattach",
        "vm1",
        ...["--storagectl", "IDE", "--port", "0", "--device", "0", "--type", "dvddrive"],
        "--medium",
        seed,
      ],
      [B, "guestproperty", "delete", "vm1", "/VirtualBox/GuestInfo/Net/0/V4/IP"],
      [B, "guestproperty", "delete", "vm1", "/VirtualBox/GuestInfo/Net/1/V4/IP"],
    ]);
    const iso = await readIso(seed);
    assert.match(iso, /CFGENP0S8/);
    assert.match(iso, /IPADDR=192\.168\.56\.200/);
    assert.match(iso, /GATEWAY=192\.168\.56\.1/);
    assert.ok(iso.includes("HKPUB"));
    assert.equal((await Deno.stat(seed)).mode! & 0o777, 0o600);

    // The stale template IP is gone; the guest's enp0s8 address appears late.
    await d.start("vm1", { timeoutMs: 1000 });
    Object.assign(fake.env, {
      FAKE_IP_AFTER: "9",
      FAKE_IF0: "enp0s3",
      FAKE_IP0: "10.0.2.15",
      FAKE_IF1: "enp0s8",
      FAKE_IP1: "192.168.56.200",
    });
    assert.deepEqual(await d.address("vm1", { timeoutMs: 5000 }), {
      ip: "192.168.56.200",
      ssh: { host: "192.168.56.200", port: 22 },
    });

    // Locked beyond the retry budget: a clear error with a hint.
    await Deno.remove(join(fake.state, "locked")).catch(() => {});
    fake.env.FAKE_LOCKED = "99";
    const error = await d.pause("vm1").catch((e) => e);
    assert.ok(error instanceof CommandError);
    assert.match(error.message, /pause VM "vm1" failed/);
    assert.match(error.hint ?? "", /Another VirtualBox session/);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("virtualbox bridged: IP from enp0s3; never-appearing IP times out naming the VM", async () => {
  const fake = await fakeHost();
  try {
    const d = driver(fake.runner, fake.state, {
      hostNetworkInterface: "eth0",
      hostOnlyNetwork: undefined,
    });
    await fake.runner.run(["VBoxManage", "createvm", "--name", "b1"]);
    await d.start("b1", { timeoutMs: 1000 });
    Object.assign(fake.env, { FAKE_IF0: "enp0s3", FAKE_IP0: "192.168.1.77" });
    assert.equal((await d.address("b1", { timeoutMs: 1000 })).ip, "192.168.1.77");
    fake.env.FAKE_IP_AFTER = "0";
    await Deno.remove(join(fake.state, "vbox/b1/ipreads"));
    const error = await d.address("b1", { timeoutMs: 25 }).catch((e) => e);
    assert.ok(error instanceof TimeoutError);
    assert.equal(error.awaited, 'IP address of VM "b1"');
    assert.match(error.hint ?? "", /Guest Additions/);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("virtualbox up, down (graceful then forced), pause, resume, delete idempotent", async () => {
  const fake = await fakeHost();
  try {
    const d = driver(fake.runner, fake.state);
    await fake.runner.run(["VBoxManage", "createvm", "--name", "n1"]);
    await fake.reset();
    await d.start("n1", { timeoutMs: 1000 });
    await d.pause("n1");
    assert.equal(await d.status("n1"), "paused");
    await d.resume("n1");
    await d.stop("n1", { timeoutMs: 1000 });
    await d.start("n1", { timeoutMs: 1000 });
    fake.env.FAKE_IGNORE_ACPI = "1";
    await d.stop("n1", { timeoutMs: 20 });
    assert.equal(await d.status("n1"), "stopped");
    await d.start("n1", { timeoutMs: 1000 });
    assert.deepEqual(await d.list(), [{ name: "n1", state: "running" }]);
    assert.equal(await d.delete("n1", { timeoutMs: 1000 }), true);
    assert.equal(await d.delete("n1", { timeoutMs: 1000 }), false);
    assert.equal(await d.status("n1"), "absent");
    await assert.rejects(d.start("n1", { timeoutMs: 1000 }), /VM "n1" does not exist/);
    const calls = (await fake.calls()).filter((c) => !["showvminfo", "list"].includes(c[1]!));
    assert.deepEqual(calls, [
      [B, "startvm", "n1", "--type", "headless"],
      [B, "controlvm", "n1", "pause"],
      [B, "controlvm", "n1", "resume"],
      [B, "controlvm", "n1", "acpipowerbutton"],
      [B, "startvm", "n1", "--type", "headless"],
      [B, "controlvm", "n1", "acpipowerbutton"],
      [B, "controlvm", "n1", "poweroff"],
      [B, "startvm", "n1", "--type", "headless"],
      [B, "controlvm", "n1", "poweroff"],
      [B, "unregistervm", "n1", "--delete"],
    ]);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("virtualbox preflight wants exactly one network mode and a machine folder", async () => {
  const fake = await fakeHost();
  try {
    const both = driver(fake.runner, fake.state, {
      hostNetworkInterface: "eth0",
      vboxdir: undefined,
    });
    const problems = await both.preflight();
    assert.equal(problems.length, 2);
    assert.match(problems[0]!.message, /Exactly one of vbox\.host-network-interface/);
    assert.match(
      problems[1]!.message,
      new RegExp(`machine folder "${fake.state}/machines" does not exist`),
    );
    await Deno.mkdir(join(fake.state, "vms"));
    assert.deepEqual(await driver(fake.runner, fake.state).preflight(), []);
  } finally {
    await fake.cleanup();
  }
});
