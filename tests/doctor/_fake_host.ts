/**
 * A fake desktop for `dtk doctor`: a folder of small shell scripts that print what the real tools
 * print (put first, and alone, on `PATH`), and a root folder with the `/proc`, `/sys`, `/dev` and
 * `/etc/group` the doctor reads. `healthyKvm()` and `healthyVbox()` pass every check; tests
 * then break one thing at a time.
 *
 * @module
 */
import { join } from "node:path";
import { defaultConfig } from "../../lib/config/mod.ts";
import type { Config } from "../../lib/config/types.ts";
import { LocalRunner, type Runner, type RunOptions, type RunResult } from "../../lib/exec/mod.ts";

/** Exact outputs of real tools (Debian 12 unless noted). */
export const OUT = {
  ssh: "OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19 27 Jan 2026",
  sshUbuntu: "OpenSSH_9.6p1 Ubuntu-3ubuntu13.5, OpenSSL 3.0.13 30 Jan 2024",
  sshOld: "OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017",
  virsh: "9.0.0",
  virtInstall: "4.1.0",
  qemuImg:
    "qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers",
  vbox: "7.0.18r162988",
  vboxUbuntu: "7.0.16_Ubuntur162802",
  vboxNoDriver:
    "WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n         available for the current kernel (6.8.0-51-generic) or it failed to\n         load. Please recompile the kernel module and install it by\n\n           sudo /sbin/vboxconfig\n\n         You will not be able to start VMs until this problem is fixed.\n7.0.16_Ubuntur162802",
  helm3: "v3.14.4+g81c902a",
  helm4: "v4.1.1+g5caf004",
  helmOld: "v3.7.2+g663a896",
  kubectl: (minor: number) => {
    if (minor <= 27) {
      return {
        stderr:
          "WARNING: This version information is deprecated and will be replaced with the output from kubectl version --short.  Use --output=yaml|json to get the full version.",
        stdout:
          `Client Version: version.Info{Major:"1", Minor:"${minor}", GitVersion:"v1.${minor}.4", GitCommit:"fa3d7990104d7c1f16943a67f11b154b71f6a132", GitTreeState:"clean", BuildDate:"2023-07-19T12:20:54Z", GoVersion:"go1.20.6", Compiler:"gc", Platform:"linux/amd64"}\nKustomize Version: v5.0.1`,
      };
    }
    return { stdout: `Client Version: v1.${minor}.0\nKustomize Version: v5.7.1`, stderr: "" };
  },
  netInfo: (name: string, active: string, autostart = "yes") =>
    `Name:           ${name}\nUUID:           5f6b9c1e-2a3d-4c1f-9a57-0b8e6c2d1f40\nActive:         ${active}\nPersistent:     yes\nAutostart:      ${autostart}\nBridge:         virbr0\n`,
};

/** Single-quotes a string for `sh`. */
export function shq(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Shell lines that print `stdout` / `stderr` and exit with `code`. */
export function prints(stdout: string, options: { stderr?: string; code?: number } = {}): string {
  const lines: string[] = [];
  if (stdout !== "") lines.push(`printf '%s\\n' ${shq(stdout)}`);
  if (options.stderr) lines.push(`printf '%s\\n' ${shq(options.stderr)} >&2`);
  lines.push(`exit ${options.code ?? 0}`);
  return lines.join("\n");
}

/** One recorded call of the runner. */
export interface Call {
  argv: readonly string[];
  options: RunOptions;
}

/** The real runner, recording every call (tests assert each has a timeout). */
export class RecordingRunner implements Runner {
  readonly calls: Call[] = [];
  #inner = new LocalRunner();
  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv, options });
    return this.#inner.run(argv, options);
  }
}

export const USER = { uid: 4242, name: "alice" };
export const GID = { libvirt: 107, kvm: Deno.gid() ?? 0, sudo: 27 };

export class FakeHost {
  readonly dir: string;
  readonly bin: string;
  readonly root: string;
  readonly home: string;
  readonly store: string;
  #disks: { prefix: string; availableKiB: number; mount: string }[] = [];

  private constructor(dir: string) {
    this.dir = dir;
    this.bin = join(dir, "bin");
    this.root = join(dir, "root");
    this.home = join(dir, "home");
    this.store = join(dir, "home", ".cache", "dtk", "store");
  }

  static async create(): Promise<FakeHost> {
    const host = new FakeHost(await Deno.makeTempDir({ prefix: "dtk-doctor-" }));
    await Deno.mkdir(host.bin, { recursive: true });
    await Deno.mkdir(host.root, { recursive: true });
    await Deno.mkdir(host.home, { recursive: true });
    return host;
  }

  /** Everything the doctor needs for `virt: kvm` with defaults, all passing. */
  static async healthyKvm(): Promise<FakeHost> {
    const host = await FakeHost.create();
    await host.common();
    await host.tool("virsh", virshScript({ network: "default", uri: "qemu:///system" }));
    await host.tool("virt-install", versionScript(OUT.virtInstall));
    await host.tool("virt-clone", versionScript(OUT.virtInstall));
    await host.tool("qemu-img", versionScript(OUT.qemuImg));
    await host.file(
      "/proc/cpuinfo",
      cpuinfo("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov vmx ept vpid"),
    );
    await host.file("/proc/modules", modules(["kvm_intel", "kvm"]));
    await host.file("/proc/sys/kernel/osrelease", "6.1.0-28-amd64\n");
    await host.kvmDevice({ mode: 0o660 });
    await Deno.mkdir(host.path("/var/lib/libvirt/images"), { recursive: true });
    await host.disk(host.path("/var/lib/libvirt/images"), 200 * 1024 * 1024, "/");
    return host;
  }

  /** Everything the doctor needs for `virt: virtualbox`, all passing. */
  static async healthyVbox(): Promise<FakeHost> {
    const host = await FakeHost.create();
    await host.common();
    await host.tool("VBoxManage", versionScript(OUT.vbox));
    await host.file("/proc/cpuinfo", cpuinfo("fpu vme de pse tsc msr svm npt"));
    await host.file("/proc/modules", modules(["vboxnetflt", "vboxnetadp", "vboxdrv"]));
    await host.file("/proc/sys/kernel/osrelease", "6.8.0-51-generic\n");
    await Deno.mkdir(join(host.home, "VirtualBox VMs"));
    await host.disk(join(host.home, "VirtualBox VMs"), 200 * 1024 * 1024, "/");
    return host;
  }

  async common(): Promise<void> {
    await this.tool(
      "ssh",
      `[ "$1" = "-V" ] && { printf '%s\\n' ${
        shq(OUT.ssh)
      } >&2; exit 0; }\necho "usage: ssh" >&2\nexit 255`,
    );
    await this.tool("scp", `echo "usage: scp [-346ABCOpqRrsTv] source ... target" >&2\nexit 1`);
    await this.tool(
      "id",
      prints(
        `uid=${USER.uid}(${USER.name}) gid=${USER.uid}(${USER.name}) groups=${USER.uid}(${USER.name}),${GID.sudo}(sudo),${GID.kvm}(kvm),${GID.libvirt}(libvirt)`,
      ),
    );
    await this.tool("helm", helmScript(OUT.helm3));
    await this.tool("kubectl", kubectlScript(35));
    await this.file(
      "/etc/group",
      `root:x:0:\nsudo:x:${GID.sudo}:${USER.name}\nkvm:x:${GID.kvm}:${USER.name}\nlibvirt:x:${GID.libvirt}:${USER.name}\n${USER.name}:x:${USER.uid}:\n`,
    );
    await this.file(
      "/proc/meminfo",
      "MemTotal:       65727468 kB\nMemFree:        40112233 kB\nMemAvailable:   52428800 kB\n",
    );
    await this.file("/sys/module/kvm/parameters/enable_virt_at_load", "Y\n");
    await Deno.mkdir(this.store, { recursive: true });
    await this.disk(this.store, 500 * 1024 * 1024, "/home");
    await this.writeDf();
  }

  /** A host path inside the fake root. */
  path(absolute: string): string {
    return join(this.root, absolute);
  }

  /** Writes `bin/<name>`, a `sh` script with `body`. */
  async tool(name: string, body: string): Promise<void> {
    const path = join(this.bin, name);
    await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
    await Deno.chmod(path, 0o755);
  }

  async removeTool(name: string): Promise<void> {
    await Deno.remove(join(this.bin, name));
  }

  /** Writes a file under the fake root. */
  async file(absolute: string, text: string): Promise<void> {
    const path = this.path(absolute);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeTextFile(path, text);
  }

  async remove(absolute: string): Promise<void> {
    await Deno.remove(this.path(absolute), { recursive: true });
  }

  /** `/dev/kvm` as a plain file with `mode`, group `kvm` (this process's gid: no chown needed). */
  async kvmDevice(options: { mode: number }): Promise<void> {
    await this.file("/dev/kvm", "");
    await Deno.chmod(this.path("/dev/kvm"), options.mode);
  }

  /** What the fake `df` reports for paths under `prefix`. */
  async disk(prefix: string, availableKiB: number, mount: string): Promise<void> {
    this.#disks = this.#disks.filter((d) => d.prefix !== prefix);
    this.#disks.push({ prefix, availableKiB, mount });
    // Longest prefix first, as a path belongs to its deepest mount.
    this.#disks.sort((a, b) => b.prefix.length - a.prefix.length);
    await this.writeDf();
  }

  async writeDf(): Promise<void> {
    const cases = this.#disks.map((d) =>
      `  ${shq(d.prefix)}*) avail=${d.availableKiB}; mount=${shq(d.mount)} ;;`
    ).join("\n");
    await this.tool(
      "df",
      `[ "$1" = "-Pk" ] || { echo "df: expected -Pk" >&2; exit 2; }
case "$2" in
${cases}
  *) avail=1000000000; mount=/ ;;
esac
echo "Filesystem     1024-blocks     Used Available Capacity Mounted on"
echo "/dev/fake1       999999999 12345678 $avail      10% $mount"`,
    );
  }

  /** The environment the doctor sees: only the fake tools on `PATH`. */
  env(extra: Record<string, string> = {}): (name: string) => string | undefined {
    const vars: Record<string, string> = { PATH: this.bin, HOME: this.home, ...extra };
    return (name) => vars[name];
  }

  /** The built-in config, with `dir` in the temp folder. */
  config(change: (config: Config) => void = () => {}): Config {
    const config = defaultConfig({ dir: this.dir });
    change(config);
    return config;
  }

  async dispose(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true });
  }
}

export function versionScript(output: string): string {
  return `[ "$1" = "--version" ] || { echo "unexpected: $*" >&2; exit 2; }\n${prints(output)}`;
}

export function helmScript(output: string): string {
  return `[ "$1 $2" = "version --short" ] || { echo "unexpected: $*" >&2; exit 2; }\n${
    prints(output)
  }`;
}

export function kubectlScript(minor: number): string {
  const out = OUT.kubectl(minor);
  return `[ "$1 $2" = "version --client" ] || { echo "unexpected: $*" >&2; exit 2; }\n${
    prints(out.stdout, { stderr: out.stderr })
  }`;
}

/**
 * A `virsh` that answers `--version` and `-c URI net-info NAME` like libvirt 9 does, and refuses
 * to answer in anything but the C locale (libvirt translates "Active:").
 */
export function virshScript(
  options: {
    network: string;
    uri: string;
    active?: "yes" | "no";
    autostart?: "yes" | "no";
    /** `missing`: no such network; `down`: no libvirtd; `denied`: socket permission; `hang`. */
    state?: "ok" | "missing" | "down" | "denied" | "hang";
  },
): string {
  const { network, uri } = options;
  const state = options.state ?? "ok";
  const answer = {
    ok: prints(OUT.netInfo(network, options.active ?? "yes", options.autostart ?? "yes")),
    missing: prints("", {
      stderr:
        `error: failed to get network '${network}'\nerror: Network not found: no network with matching name '${network}'`,
      code: 1,
    }),
    down: prints("", {
      stderr:
        "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
      code: 1,
    }),
    denied: prints("", {
      stderr:
        "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Permission denied",
      code: 1,
    }),
    hang: "exec /bin/sleep 30",
  }[state];
  return `[ "$1" = "--version" ] && { echo ${OUT.virsh}; exit 0; }
[ "$LC_ALL" = "C" ] || { echo "Aktiv: ja"; exit 0; }
[ "$1 $2 $3" = "-c ${uri} net-info" ] || { echo "error: unexpected: $*" >&2; exit 1; }
[ "$4" = ${
    shq(network)
  } ] || { echo "error: failed to get network '$4'" >&2; echo "error: Network not found: no network with matching name '$4'" >&2; exit 1; }
${answer}`;
}

export function cpuinfo(flags: string): string {
  const one = (n: number) =>
    `processor\t: ${n}\nvendor_id\t: GenuineIntel\nmodel name\t: Fake CPU\nflags\t\t: ${flags}\n`;
  return `${one(0)}\n${one(1)}`;
}

export function modules(names: string[]): string {
  return names.map((n) => `${n} 405504 0 - Live 0x0000000000000000\n`).join("");
}
