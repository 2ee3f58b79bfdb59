/**
 * The KVM driver: libvirt through `virsh`, `virt-install`, `virt-clone` and `qemu-img`, every
 * call through the `Runner` port. Two template paths:
 *
 * - `kickstart` (the original's): `virt-install` from the DVD with the Kickstart injected into the
 *   initrd and a serial console; clones by `virt-clone` (full copy).
 * - `cloud-image` (fast): the distribution's cloud qcow2 copied and defined as a domain that never
 *   boots; clones are qcow2 overlays on it.
 *
 * Every clone gets a `cidata` seed ISO (hostname, dtk's key, its own host key, network), so that no
 * two clones share host keys and dtk can pin each node's key before the first connection.
 *
 * @module
 */
import { basename, join } from "node:path";
import { CommandError, DtkError, q } from "../../lib/errors/mod.ts";
import { formatCommand, type Runner, type RunOptions, type RunResult } from "../../lib/exec/mod.ts";
import { writeFileAtomic } from "../../lib/fs/mod.ts";
import { writeIso } from "../../lib/iso/mod.ts";
import type { Linux } from "../../lib/config/types.ts";
import { cidataFiles, DISTROS, renderKickstart } from "../../kickstart/mod.ts";
import type {
  CloneSpec,
  Driver,
  HostEndpoint,
  NodeAddress,
  PreflightOptions,
  PreflightProblem,
  TemplateSpec,
  VmState,
  VmStatus,
  WaitOptions,
} from "../types.ts";
import { pollFor } from "../_wait.ts";
import { missing, requireMedia } from "../_common.ts";
import { domainXml, randomMac, xmlText } from "./_xml.ts";

export interface KvmDriverOptions {
  runner: Runner;
  /** libvirt URI (`kvm.uri`). */
  uri: string;
  accel: "kvm" | "tcg";
  network: "nat" | "user";
  libvirtNetwork: string;
  /** Embedded kickstart name (`kvm.kickstart`). */
  kickstart: string;
  /** `virt-install --os-variant`; empty = the distribution's. */
  osVariant: string;
  linux: Linux;
  templateSource: "kickstart" | "cloud-image";
  /** Poll interval of waits (tests shorten it). */
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Host facts, replaced in tests. */
  host?: HostProbe;
  /** A free TCP port on 127.0.0.1 for a clone's forwarded ssh (user-mode network). */
  freePort?: () => number;
}

/** What the preflight reads from the host. */
export interface HostProbe {
  cpuinfo(): Promise<string>;
  /** True when `/dev/kvm` exists. */
  devKvm(): Promise<boolean>;
  /** True when the `kvm_pvm` module is loaded (its `/dev/kvm` cannot run normal guests). */
  kvmPvm(): Promise<boolean>;
  /** True when the current user can read the file. */
  readable(path: string): Promise<boolean>;
}

export const realHost: HostProbe = {
  cpuinfo: () => Deno.readTextFile("/proc/cpuinfo").catch(() => ""),
  devKvm: () => Deno.stat("/dev/kvm").then(() => true, () => false),
  kvmPvm: () => Deno.stat("/sys/module/kvm_pvm").then(() => true, () => false),
  readable: async (path) => {
    try {
      (await Deno.open(path, { read: true })).close();
      return true;
    } catch {
      return false;
    }
  },
};

/** Why hardware KVM cannot be used here, or `undefined` when it can. */
export async function kvmUnusable(host: HostProbe): Promise<string | undefined> {
  const flags = (await host.cpuinfo()).match(/^flags\s*:(.*)$/m)?.[1] ?? "";
  if (!/\b(vmx|svm)\b/.test(flags)) {
    return "the CPU has no hardware virtualisation (no vmx or svm flag)";
  }
  if (await host.kvmPvm()) {
    return "the loaded KVM module is kvm_pvm, which cannot run normal guests";
  }
  if (!(await host.devKvm())) {
    return "/dev/kvm does not exist (module kvm_intel or kvm_amd not loaded)";
  }
  return undefined;
}

const SLIRP_GUEST_IP = "10.0.2.15";
/** slirp forwards this guest-side address to the host's loopback. */
const SLIRP_HOST_IP = "10.0.2.2";

export class KvmDriver implements Driver {
  readonly name = "kvm";
  #o: KvmDriverOptions;
  #host: HostProbe;

  constructor(options: KvmDriverOptions) {
    this.#o = options;
    this.#host = options.host ?? realHost;
  }

  #virsh(args: string[], options: RunOptions = {}): Promise<RunResult> {
    return this.#o.runner.run(["virsh", "--connect", this.#o.uri, ...args], {
      timeoutMs: 120_000,
      ...options,
    });
  }

  #poll<T>(probe: () => Promise<T | undefined>, awaited: string, wait: WaitOptions, hint?: string) {
    return pollFor(this.#o, probe, { awaited, wait, hint });
  }

  async preflight(options: PreflightOptions = {}): Promise<PreflightProblem[]> {
    const problems: PreflightProblem[] = [];
    if (this.#o.accel === "kvm") {
      const why = await kvmUnusable(this.#host);
      if (why) {
        problems.push({
          message: `No usable KVM on this host: ${why}`,
          fix: "Set kvm.accel: tcg in the config to run guests in software emulation (slow, " +
            "but works), or enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd",
        });
      }
    }
    const version = await this.#virsh(["uri"], { check: false, timeoutMs: 30_000 }).catch((e) =>
      e instanceof CommandError ? { success: false, stderr: e.message } : Promise.reject(e)
    );
    if (!version.success && /Command not found/.test(version.stderr)) {
      problems.push({
        message: "virsh is not installed",
        fix: "Install libvirt's client and virt-install: sudo apt install libvirt-clients " +
          "virtinst qemu-utils (Debian, Ubuntu) or sudo dnf install libvirt-client virt-install",
      });
      return problems;
    }
    if (!version.success) {
      problems.push({
        message: `Cannot connect to libvirt at ${q(this.#o.uri)}: ${version.stderr.trim()}`,
        fix: "Start libvirtd (sudo systemctl start libvirtd) and make sure your user may use " +
          "this URI (sudo usermod -aG libvirt $USER, then log in again), or set kvm.uri",
      });
      return problems;
    }
    if (this.#o.network === "nat") {
      const net = await this.#virsh(["net-info", this.#o.libvirtNetwork], { check: false });
      const n = this.#o.libvirtNetwork;
      if (!net.success) {
        problems.push({
          message: `The libvirt network ${q(n)} does not exist`,
          fix: `Define it (${
            formatCommand(["virsh", "--connect", this.#o.uri, "net-define", `${n}.xml`])
          }), or set kvm.network: user`,
        });
      } else if (!/^Active:\s+yes$/m.test(net.stdout)) {
        problems.push({
          message: `The libvirt network ${q(n)} is not active`,
          fix: `Run: ${formatCommand(["virsh", "--connect", this.#o.uri, "net-start", n])} && ${
            formatCommand(["virsh", "--connect", this.#o.uri, "net-autostart", n])
          }`,
        });
      }
    }
    if (options.template !== undefined && await this.exists(options.template)) {
      for (const disk of await this.#disks(options.template)) {
        if (disk.device === "disk" && !(await this.#host.readable(disk.source))) {
          problems.push({
            message: `The template's disk ${q(disk.source)} is not readable`,
            fix:
              `Give your user read access (e.g. ${
                formatCommand(["sudo", "chmod", "o+r", disk.source])
              }) or run dtk ` +
              "as a user that libvirt's storage belongs to",
          });
        }
      }
    }
    return problems;
  }

  async exists(name: string): Promise<boolean> {
    return (await this.status(name)) !== "absent";
  }

  async status(name: string): Promise<VmState> {
    const result = await this.#virsh(["domstate", name], { check: false });
    if (!result.success) {
      if (
        /failed to get domain|Domain not found|no domain with matching name/i.test(result.stderr)
      ) {
        return "absent";
      }
      throw new CommandError(`Cannot get the state of VM ${q(name)}`, {
        command: ["virsh", "domstate", name],
        code: result.code,
        stderrTail: result.stderr.trim(),
      });
    }
    return parseState(result.stdout.trim());
  }

  async list(): Promise<VmStatus[]> {
    const result = await this.#virsh(["list", "--all"]);
    const out: VmStatus[] = [];
    for (const line of result.stdout.split("\n").slice(2)) {
      const m = line.match(/^\s*(\S+)\s+(\S+)\s+(.+?)\s*$/);
      if (m) out.push({ name: m[2]!, state: parseState(m[3]!) });
    }
    return out;
  }

  async createTemplate(spec: TemplateSpec, wait: WaitOptions): Promise<void> {
    if (await this.exists(spec.name)) {
      throw new DtkError(`The template VM ${q(spec.name)} already exists`, {
        hint: "Reuse it with --create-template=false, or remove it: dtk cluster delete --template",
      });
    }
    await Deno.mkdir(spec.workDir, { recursive: true });
    const disk = join(spec.workDir, `${spec.name}.qcow2`);
    if (this.#o.templateSource === "cloud-image") {
      const image = requireMedia(spec, "cloudImage");
      // A copy, not an overlay on the store object: the store stays immutable and GC-able.
      await this.#o.runner.run(["qemu-img", "convert", "-O", "qcow2", image, disk], {
        timeoutMs: 30 * 60_000,
        what: `copy of the cloud image for template ${q(spec.name)}`,
      });
      const xmlPath = join(spec.workDir, `${spec.name}.xml`);
      await writeFileAtomic(
        xmlPath,
        domainXml({
          name: spec.name,
          type: this.#domainType(),
          memMiB: 2048,
          cpus: 2,
          disk,
          kernel: spec.media.kernel,
          initrd: spec.media.initrd,
          cmdline: spec.media.cmdline,
          // The template never boots; each clone gets its own NIC.
          network: { mode: "none" },
        }),
      );
      await this.#virsh(["define", xmlPath], { what: `define template VM ${q(spec.name)}` });
      return;
    }
    const iso = requireMedia(spec, "iso");
    const ks = join(spec.workDir, "ks.cfg");
    await writeFileAtomic(
      ks,
      renderKickstart(this.#o.kickstart, {
        linux: this.#o.linux,
        authorizedKey: spec.authorizedKey,
      }),
    );
    await this.#o.runner.run(this.templateInstallArgv(spec.name, { iso, ks, disk }), {
      timeoutMs: 10 * 60_000,
      what: `virt-install of template VM ${q(spec.name)}`,
    });
    // The kickstart ends with `shutdown`: the install is over when the domain is off.
    await this.#poll(
      async () => (await this.status(spec.name)) === "stopped" ? true : undefined,
      `the Kickstart install of template VM ${q(spec.name)} to finish (VM powered off)`,
      wait,
      `Watch the installer: ${
        formatCommand(["virsh", "--connect", this.#o.uri, "console", spec.name])
      }`,
    );
  }

  /** The `virt-install` command line of a Kickstart template install. */
  templateInstallArgv(name: string, paths: { iso: string; ks: string; disk: string }): string[] {
    return [
      "virt-install",
      "--connect",
      this.#o.uri,
      "--noautoconsole",
      "--name",
      name,
      "--memory",
      "2048",
      "--vcpus",
      "2",
      "--virt-type",
      this.#domainType(),
      "--disk",
      `path=${optionValue(paths.disk)},size=30,format=qcow2`,
      "--location",
      optionValue(paths.iso),
      "--graphics",
      "none",
      "--os-variant",
      this.#o.osVariant || DISTROS[this.#o.linux].osVariant,
      "--network",
      this.#o.network === "nat" ? `network=${optionValue(this.#o.libvirtNetwork)}` : "user",
      "--initrd-inject",
      paths.ks,
      "--extra-args",
      `inst.ks=file:/${basename(paths.ks)} console=tty0 console=ttyS0,115200n8`,
    ];
  }

  async clone(spec: CloneSpec, _wait: WaitOptions): Promise<void> {
    if (await this.exists(spec.name)) {
      throw new DtkError(`A VM named ${q(spec.name)} already exists`, {
        hint: "Remove it first (dtk cluster delete), or run with --create-vms=false",
      });
    }
    const template = await this.#disks(spec.template);
    const templateDisk = template.find((d) => d.device === "disk");
    if (!templateDisk) {
      throw new DtkError(`The template VM ${q(spec.template)} has no disk`, {
        hint: `Create it: dtk cluster create --create-template=true`,
      });
    }
    await Deno.mkdir(spec.workDir, { recursive: true });
    const disk = join(spec.workDir, `${spec.name}.qcow2`);
    const seed = join(spec.workDir, `${spec.name}-cidata.iso`);
    await writeIso(
      seed,
      cidataFiles({
        hostname: spec.name,
        authorizedKey: spec.authorizedKey,
        hostKey: spec.hostKey,
      }),
      { label: "cidata" },
    );
    if (this.#o.templateSource === "cloud-image") {
      const xml = (await this.#virsh(["dumpxml", spec.template])).stdout;
      await this.#o.runner.run([
        "qemu-img",
        "create",
        "-f",
        "qcow2",
        "-b",
        templateDisk.source,
        "-F",
        "qcow2",
        disk,
        ...(spec.disk ? [`${spec.disk}G`] : []),
      ], { timeoutMs: 60_000, what: `create the disk of VM ${q(spec.name)}` });
      const xmlPath = join(spec.workDir, `${spec.name}.xml`);
      await writeFileAtomic(
        xmlPath,
        domainXml({
          name: spec.name,
          type: this.#domainType(),
          memMiB: spec.mem,
          cpus: spec.cpu,
          disk,
          seedIso: seed,
          kernel: xmlText(xml, "kernel"),
          initrd: xmlText(xml, "initrd"),
          cmdline: xmlText(xml, "cmdline"),
          network: this.#o.network === "nat"
            ? { mode: "nat", network: this.#o.libvirtNetwork, mac: randomMac() }
            : { mode: "user", sshPort: (this.#o.freePort ?? freePort)(), mac: randomMac() },
        }),
      );
      await this.#virsh(["define", xmlPath], { what: `define VM ${q(spec.name)}` });
      return;
    }
    await this.#o.runner.run([
      "virt-clone",
      "--connect",
      this.#o.uri,
      "--original",
      spec.template,
      "--name",
      spec.name,
      "--file",
      disk,
      "--mac",
      "RANDOM",
    ], { timeoutMs: 30 * 60_000, what: `virt-clone of VM ${q(spec.name)}` });
    const cpu = String(spec.cpu);
    const mem = `${spec.mem}M`;
    await this.#virsh(["setvcpus", spec.name, cpu, "--config", "--maximum"]);
    await this.#virsh(["setvcpus", spec.name, cpu, "--config"]);
    await this.#virsh(["setmaxmem", spec.name, mem, "--config"]);
    await this.#virsh(["setmem", spec.name, mem, "--config"]);
    await this.#virsh([
      "attach-disk",
      spec.name,
      seed,
      "sda",
      "--type",
      "cdrom",
      "--targetbus",
      "sata",
      "--mode",
      "readonly",
      "--config",
    ]);
    if (spec.disk) {
      // Grown while off; cloud-init's growpart and resizefs grow the root partition on first boot.
      await this.#o.runner.run(["qemu-img", "resize", disk, `${spec.disk}G`], {
        timeoutMs: 60_000,
        what: `grow the disk of VM ${
          q(spec.name)
        } to ${spec.disk} GiB (shrinking is not supported)`,
      });
    }
  }

  async start(name: string, _wait: WaitOptions): Promise<void> {
    const state = await this.status(name);
    if (state === "running") return;
    if (state === "paused") return this.resume(name);
    if (state === "absent") throw missing(name);
    await this.#virsh(["start", name], { what: `start VM ${q(name)}` });
  }

  async stop(name: string, wait: WaitOptions): Promise<void> {
    const state = await this.status(name);
    if (state === "stopped" || state === "absent") return;
    if (state === "running") {
      await this.#virsh(["shutdown", name], { check: false });
      try {
        await this.#poll(
          async () => (await this.status(name)) === "running" ? undefined : true,
          `VM ${q(name)} to shut down`,
          wait,
        );
      } catch (error) {
        if (!(error instanceof DtkError && error.exitCode === 5)) throw error;
        // A guest that ignores ACPI (no acpid, hung) is powered off after the graceful wait.
      }
    }
    if ((await this.status(name)) !== "stopped") {
      await this.#virsh(["destroy", name], { what: `power off VM ${q(name)}` });
    }
  }

  async pause(name: string): Promise<void> {
    if ((await this.status(name)) === "paused") return;
    await this.#virsh(["suspend", name], { what: `pause VM ${q(name)}` });
  }

  async resume(name: string): Promise<void> {
    if ((await this.status(name)) !== "paused") return;
    await this.#virsh(["resume", name], { what: `resume VM ${q(name)}` });
  }

  async delete(name: string, _wait: WaitOptions): Promise<boolean> {
    const state = await this.status(name);
    if (state === "absent") return false;
    const disks = await this.#disks(name);
    if (state !== "stopped") await this.#virsh(["destroy", name], { check: false });
    // Files that libvirt does not manage as pool volumes stay behind; dtk removes its own.
    await this.#virsh(["undefine", name, "--remove-all-storage", "--nvram"], {
      what: `delete VM ${q(name)}`,
    });
    for (const disk of disks) {
      const ours = disk.device === "disk" || disk.source.endsWith("-cidata.iso");
      if (ours) await Deno.remove(disk.source).catch(() => {});
    }
    return true;
  }

  async address(name: string, wait: WaitOptions): Promise<NodeAddress> {
    if (this.#o.network === "user") {
      const xml = (await this.#virsh(["dumpxml", name])).stdout;
      const port = Number(xml.match(/hostfwd=tcp:127\.0\.0\.1:(\d+)-:22/)?.[1]);
      if (!port) {
        throw new DtkError(`VM ${q(name)} has no forwarded ssh port`, {
          hint: "It was not created with kvm.network: user; re-create it",
        });
      }
      await this.#poll(
        async () => (await this.status(name)) === "running" ? true : undefined,
        `VM ${q(name)} to run`,
        wait,
      );
      return { ip: SLIRP_GUEST_IP, ssh: { host: "127.0.0.1", port } };
    }
    const ip = await this.#poll(
      async () => {
        for (const source of ["lease", "arp"]) {
          const r = await this.#virsh(["domifaddr", name, "--source", source], { check: false });
          const m = r.stdout.match(/\sipv4\s+(\d+\.\d+\.\d+\.\d+)\/\d+/);
          if (m) return m[1];
        }
        return undefined;
      },
      `IP address of VM ${q(name)}`,
      wait,
      `Check that the guest got a DHCP lease on network ${q(this.#o.libvirtNetwork)}: ` +
        formatCommand([
          "virsh",
          "--connect",
          this.#o.uri,
          "net-dhcp-leases",
          this.#o.libvirtNetwork,
        ]),
    );
    return { ip, ssh: { host: ip, port: 22 } };
  }

  /** The libvirt network's gateway; with user-mode networking, slirp's alias of the host. */
  async hostEndpoint(): Promise<HostEndpoint | undefined> {
    if (this.#o.network === "user") return { listen: "127.0.0.1", reach: SLIRP_HOST_IP };
    const r = await this.#virsh(["net-dumpxml", this.#o.libvirtNetwork], { check: false });
    const ip = /<ip\b[^>]*\baddress=['"](\d+\.\d+\.\d+\.\d+)['"]/.exec(r.stdout)?.[1];
    return ip === undefined ? undefined : { listen: ip, reach: ip };
  }

  #domainType(): "kvm" | "qemu" {
    return this.#o.accel === "tcg" ? "qemu" : "kvm";
  }

  async #disks(name: string): Promise<{ device: string; target: string; source: string }[]> {
    const result = await this.#virsh(["domblklist", name, "--details"]);
    const disks = [];
    for (const line of result.stdout.split("\n").slice(2)) {
      const m = line.trim().match(/^(\S+)\s+(\S+)\s+(\S+)\s+(.+)$/);
      if (m && m[4] !== "-") disks.push({ device: m[2]!, target: m[3]!, source: m[4]! });
    }
    return disks;
  }
}

function parseState(text: string): VmState {
  switch (text.trim()) {
    case "running":
    case "in shutdown":
    case "idle":
      return "running";
    case "shut off":
    case "crashed":
      return "stopped";
    case "paused":
    case "pmsuspended":
      return "paused";
    default:
      return "unknown";
  }
}

/** A TCP port on 127.0.0.1 that is free right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * A value inside a virt-install `--opt key=value,…` argument. virt-install splits the argument
 * with Python's POSIX `shlex` on commas (virtinst/cli.py `parse_optstr_tuples`), so a comma,
 * quote or backslash is escaped with a backslash; a doubled comma would split there instead.
 */
export function optionValue(value: string): string {
  return value.replace(/[\\,'"]/g, "\\$&");
}
