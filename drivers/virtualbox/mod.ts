/**
 * The VirtualBox driver: `VBoxManage` through the `Runner` port. Follows the original's recipe
 * (OEMDRV Kickstart volume, Guest Additions, host-only network found or created, per-clone
 * `CFGENP0S8` volume with the static IP) and fixes what it got wrong: bridged mode reads the IP the
 * guest reports instead of waiting forever for a host-only one, "already locked" errors are retried
 * with backoff instead of fixed sleeps, every wait has a deadline, and no ISO holds a private key
 * of dtk's (only a clone's own host key, when dtk made one, in that clone's 0600 seed).
 *
 * @module
 */
import { join } from "node:path";
import {
  commandFailed,
  formatCommand,
  type Runner,
  type RunOptions,
  type RunResult,
} from "../../lib/exec/mod.ts";
import { DtkError, q } from "../../lib/errors/mod.ts";
import { writeIso } from "../../lib/iso/mod.ts";
import type { IsoFile } from "../../lib/iso/mod.ts";
import type { Linux } from "../../lib/config/types.ts";
import { oemdrvFiles } from "../../kickstart/mod.ts";
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
import { pollFor, realSleep } from "../_wait.ts";
import { missing, requireMedia } from "../_common.ts";

export interface VirtualBoxDriverOptions {
  runner: Runner;
  /** Bridged mode: the host NIC. Exclusive with `hostOnlyNetwork`. */
  hostNetworkInterface: string | undefined;
  /** NAT + host-only mode: the first three octets, e.g. `192.168.56`. */
  hostOnlyNetwork: string | undefined;
  kickstart: string;
  /** Base folder of the VMs; empty = VirtualBox's default machine folder. */
  vboxdir: string | undefined;
  linux: Linux;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Backoff of "already locked" retries: first delay and number of attempts. */
  lockRetry?: { firstDelayMs: number; attempts: number };
}

const LOCKED =
  /already locked|is locked for a session|session.*(lock|busy)|VBOX_E_INVALID_OBJECT_STATE/i;
const MISSING = /Could not find a registered machine|VBOX_E_OBJECT_NOT_FOUND/i;

export class VirtualBoxDriver implements Driver {
  readonly name = "virtualbox";
  #o: VirtualBoxDriverOptions;

  constructor(options: VirtualBoxDriverOptions) {
    this.#o = options;
  }

  /** Runs VBoxManage, retrying "already locked" failures with exponential backoff. */
  async #vbox(args: string[], options: RunOptions = {}): Promise<RunResult> {
    const retry = this.#o.lockRetry ?? { firstDelayMs: 500, attempts: 8 };
    const sleep = this.#o.sleep ?? realSleep;
    const argv = ["VBoxManage", ...args];
    for (let attempt = 1;; attempt++) {
      const result = await this.#o.runner.run(argv, {
        timeoutMs: 120_000,
        ...options,
        check: false,
      });
      if (result.success) return result;
      if (LOCKED.test(result.stderr) && attempt < retry.attempts) {
        await sleep(Math.min(retry.firstDelayMs * 2 ** (attempt - 1), 10_000));
        continue;
      }
      if (options.check === false) return result;
      throw commandFailed(argv, result, {
        what: options.what,
        hint: LOCKED.test(result.stderr)
          ? "Another VirtualBox session holds the VM; close the VirtualBox GUI or wait, then retry"
          : undefined,
      });
    }
  }

  #poll<T>(probe: () => Promise<T | undefined>, awaited: string, wait: WaitOptions, hint?: string) {
    return pollFor(this.#o, probe, { awaited, wait, hint });
  }

  async preflight(_options: PreflightOptions = {}): Promise<PreflightProblem[]> {
    const problems: PreflightProblem[] = [];
    const version = await this.#vbox(["--version"], { check: false }).catch(() => undefined);
    if (!version?.success) {
      return [{
        message: "VBoxManage does not run",
        fix:
          "Install VirtualBox (https://www.virtualbox.org/wiki/Linux_Downloads), or set virt: kvm",
      }];
    }
    const bridged = Boolean(this.#o.hostNetworkInterface);
    const hostOnly = Boolean(this.#o.hostOnlyNetwork);
    if (bridged === hostOnly) {
      problems.push({
        message:
          "Exactly one of vbox.host-network-interface and vbox.host-only-network must be set",
        fix: "Set vbox.host-only-network: 192.168.56 (NAT + host-only), or " +
          "vbox.host-network-interface to a host NIC (bridged), not both",
      });
    }
    const dir = await this.#vboxdir().catch(() => undefined);
    if (!dir || !(await Deno.stat(dir).then((s) => s.isDirectory, () => false))) {
      problems.push({
        message: `The VirtualBox machine folder ${q(dir ?? "")} does not exist`,
        fix: "Create it, or set vbox.vboxdir to an existing folder",
      });
    }
    return problems;
  }

  async #vboxdir(): Promise<string> {
    if (this.#o.vboxdir) return this.#o.vboxdir;
    const props = await this.#vbox(["list", "systemproperties"]);
    const m = props.stdout.match(/^Default machine folder:\s*(.+)$/m);
    if (!m) {
      throw new DtkError("VirtualBox reports no default machine folder", {
        hint: "Set vbox.vboxdir",
      });
    }
    return m[1]!.trim();
  }

  /** The host-only interface on `<octets>.0/24`, created (host address `.1`) when missing. */
  async hostOnlyInterface(octets: string): Promise<string> {
    const list = await this.#vbox(["list", "hostonlyifs"]);
    for (const block of list.stdout.split(/\n\s*\n/)) {
      const name = block.match(/^Name:\s+(\S+)/m)?.[1];
      const ip = block.match(/^IPAddress:\s+(\S+)/m)?.[1];
      if (name && ip?.startsWith(`${octets}.`)) return name;
    }
    const created = await this.#vbox(["hostonlyif", "create"]);
    const name = created.stdout.match(/Interface '([^']+)' was successfully created/)?.[1];
    if (!name) {
      throw new DtkError("VBoxManage hostonlyif create did not name the interface it made", {
        hint: "Create it by hand: VBoxManage hostonlyif create",
      });
    }
    await this.#vbox([
      "hostonlyif",
      "ipconfig",
      name,
      "--ip",
      `${octets}.1`,
      "--netmask",
      "255.255.255.0",
    ]);
    return name;
  }

  async exists(name: string): Promise<boolean> {
    return (await this.status(name)) !== "absent";
  }

  async status(name: string): Promise<VmState> {
    const info = await this.#vbox(["showvminfo", name, "--machinereadable"], { check: false });
    if (!info.success) {
      if (MISSING.test(info.stderr)) return "absent";
      throw commandFailed(["VBoxManage", "showvminfo", name], info);
    }
    switch (info.stdout.match(/^VMState="([^"]*)"/m)?.[1]) {
      case "running":
      case "starting":
      case "stopping":
        return "running";
      case "poweroff":
      case "aborted":
      case "saved":
        return "stopped";
      case "paused":
        return "paused";
      default:
        return "unknown";
    }
  }

  async list(): Promise<VmStatus[]> {
    const vms = await this.#vbox(["list", "vms"]);
    const out: VmStatus[] = [];
    for (const m of vms.stdout.matchAll(/^"(.*)" \{[0-9a-f-]+\}$/gm)) {
      out.push({ name: m[1]!, state: await this.status(m[1]!) });
    }
    return out;
  }

  async createTemplate(spec: TemplateSpec, wait: WaitOptions): Promise<void> {
    const t = spec.name;
    if (await this.exists(t)) {
      throw new DtkError(`The template VM ${q(t)} already exists`, {
        hint: "Reuse it with --create-template=false, or remove it: dtk cluster delete --template",
      });
    }
    const iso = requireMedia(spec, "iso");
    const ga = requireMedia(spec, "guestAdditions");
    const dir = await this.#vboxdir();
    const ksIso = join(spec.workDir, "kickstart.iso");
    // Only the public key travels, inside ks.cfg; the volume holds nothing secret.
    await writeIso(
      ksIso,
      oemdrvFiles(this.#o.kickstart, { linux: this.#o.linux, authorizedKey: spec.authorizedKey }),
      {
        label: "OEMDRV",
        mode: 0o644,
      },
    );
    await this.#vbox([
      "createvm",
      "--name",
      t,
      "--ostype",
      "RedHat_64",
      "--register",
      "--basefolder",
      dir,
    ]);
    await this.#vbox([
      "modifyvm",
      t,
      "--ioapic",
      "on",
      "--cpus",
      "2",
      "--memory",
      "4096",
      "--vram",
      "128",
      "--graphicscontroller",
      "vmsvga",
      "--boot1",
      "dvd",
      "--boot2",
      "disk",
      "--boot3",
      "none",
      "--boot4",
      "none",
      ...await this.#nicArgs(),
    ]);
    const vdi = join(dir, t, `${t}.vdi`);
    await this.#vbox([
      "createmedium",
      "disk",
      "--filename",
      vdi,
      "--size",
      "40000",
      "--format",
      "VDI",
    ]);
    await this.#vbox([
      "storagectl",
      t,
      "--name",
      "SATA",
      "--add",
      "sata",
      "--controller",
      "IntelAhci",
    ]);
    await this.#attach(t, "SATA", 1, 0, "hdd", vdi);
    await this.#vbox(["storagectl", t, "--name", "IDE", "--add", "ide", "--controller", "PIIX4"]);
    await this.#attach(t, "IDE", 1, 0, "dvddrive", iso);
    await this.#attach(t, "IDE", 1, 1, "dvddrive", ksIso);
    await this.#vbox(["startvm", t, "--type", "headless"]);
    await this.#waitOff(t, "the Kickstart install of template VM", wait);
    await this.#attach(t, "IDE", 1, 0, "dvddrive", "none");
    await this.#attach(t, "IDE", 1, 1, "dvddrive", "none");
    // Guest Additions: built by the first-boot unit, which powers the VM off when done.
    await this.#attach(t, "IDE", 0, 0, "dvddrive", ga);
    await this.#vbox(["modifyvm", t, "--boot1", "disk", "--boot2", "none"]);
    await this.#vbox(["startvm", t, "--type", "headless"]);
    await this.#waitOff(t, "the Guest Additions install in template VM", wait);
    await this.#attach(t, "IDE", 0, 0, "dvddrive", "none");
  }

  async #nicArgs(): Promise<string[]> {
    const nic1 = [
      "--nictype1",
      "82540EM",
      "--cableconnected1",
      "on",
      "--nicpromisc1",
      "deny",
      "--macaddress1",
      "auto",
    ];
    if (this.#o.hostNetworkInterface) {
      return ["--nic1", "bridged", ...nic1, "--bridgeadapter1", this.#o.hostNetworkInterface];
    }
    const hostOnly = await this.hostOnlyInterface(this.#o.hostOnlyNetwork ?? "192.168.56");
    return [
      "--nic1",
      "nat",
      ...nic1,
      "--nic2",
      "hostonly",
      "--cableconnected2",
      "on",
      "--macaddress2",
      "auto",
      "--hostonlyadapter2",
      hostOnly,
    ];
  }

  #attach(vm: string, ctl: string, port: number, device: number, type: string, medium: string) {
    return this.#vbox([
      "storageattach",
      vm,
      "--storagectl",
      ctl,
      "--port",
      String(port),
      "--device",
      String(device),
      "--type",
      type,
      "--medium",
      medium,
    ]);
  }

  #waitOff(name: string, what: string, wait: WaitOptions) {
    return this.#poll(
      async () => (await this.status(name)) === "stopped" ? true : undefined,
      `${what} ${q(name)} to finish (VM powered off)`,
      wait,
      `Watch it in the VirtualBox GUI, or: ${formatCommand(["VBoxManage", "showvminfo", name])}`,
    );
  }

  async clone(spec: CloneSpec, _wait: WaitOptions): Promise<void> {
    if (await this.exists(spec.name)) {
      throw new DtkError(`A VM named ${q(spec.name)} already exists`, {
        hint: "Remove it first (dtk cluster delete), or run with --create-vms=false",
      });
    }
    const dir = await this.#vboxdir();
    await this.#vbox([
      "clonevm",
      spec.template,
      `--basefolder=${dir}`,
      "--mode=machine",
      `--name=${spec.name}`,
      "--register",
    ]);
    await this.#vbox([
      "modifyvm",
      spec.name,
      "--cpus",
      String(spec.cpu),
      "--memory",
      String(spec.mem),
    ]);
    const files: IsoFile[] = [];
    if (this.#o.hostOnlyNetwork && spec.staticIp) {
      const net = this.#o.hostOnlyNetwork;
      files.push({
        name: "ifcfg-enp0s8",
        data: [
          "TYPE=Ethernet",
          "DEVICE=enp0s8",
          "NAME=enp0s8",
          "ONBOOT=yes",
          "BOOTPROTO=none",
          `IPADDR=${spec.staticIp}`,
          "NETMASK=255.255.255.0",
          `NETWORK=${net}.0`,
          `BROADCAST=${net}.255`,
          `GATEWAY=${net}.1`,
          "",
        ].join("\n"),
      });
    }
    if (spec.hostKey) {
      files.push({ name: "ssh_host_ed25519_key", data: spec.hostKey.privateKey });
      files.push({ name: "ssh_host_ed25519_key.pub", data: `${spec.hostKey.publicKey}\n` });
    }
    if (files.length > 0) {
      const seed = join(spec.workDir, `${spec.name}-cfgenp0s8.iso`);
      await writeIso(seed, files, { label: "CFGENP0S8" });
      // Stays attached: the first-boot unit applies it at every boot, so no power-cycle dance.
      await this.#attach(spec.name, "IDE", 0, 0, "dvddrive", seed);
    }
    // The template's last known IPs were cloned too; a stale one must never be taken as the node's.
    for (const n of [0, 1]) {
      await this.#vbox([
        "guestproperty",
        "delete",
        spec.name,
        `/VirtualBox/GuestInfo/Net/${n}/V4/IP`,
      ]);
    }
  }

  async start(name: string, _wait: WaitOptions): Promise<void> {
    const state = await this.status(name);
    if (state === "running") return;
    if (state === "paused") return this.resume(name);
    if (state === "absent") throw missing(name);
    await this.#vbox(["startvm", name, "--type", "headless"], { what: `start VM ${q(name)}` });
  }

  async stop(name: string, wait: WaitOptions): Promise<void> {
    const state = await this.status(name);
    if (state === "stopped" || state === "absent") return;
    if (state === "running") {
      await this.#vbox(["controlvm", name, "acpipowerbutton"], { check: false });
      try {
        await this.#poll(
          async () => (await this.status(name)) === "stopped" ? true : undefined,
          `VM ${q(name)} to shut down`,
          wait,
        );
        return;
      } catch (error) {
        if (!(error instanceof DtkError && error.exitCode === 5)) throw error;
      }
    }
    await this.#vbox(["controlvm", name, "poweroff"], { what: `power off VM ${q(name)}` });
  }

  async pause(name: string): Promise<void> {
    if ((await this.status(name)) === "paused") return;
    await this.#vbox(["controlvm", name, "pause"], { what: `pause VM ${q(name)}` });
  }

  async resume(name: string): Promise<void> {
    if ((await this.status(name)) !== "paused") return;
    await this.#vbox(["controlvm", name, "resume"], { what: `resume VM ${q(name)}` });
  }

  async delete(name: string, wait: WaitOptions): Promise<boolean> {
    const state = await this.status(name);
    if (state === "absent") return false;
    if (state === "running" || state === "paused") {
      await this.#vbox(["controlvm", name, "poweroff"], { check: false });
      await this.#waitOff(name, "power-off of VM", wait);
    }
    await this.#vbox(["unregistervm", name, "--delete"], { what: `delete VM ${q(name)}` });
    return true;
  }

  async address(name: string, wait: WaitOptions): Promise<NodeAddress> {
    const prefix = this.#o.hostNetworkInterface ? undefined : `${this.#o.hostOnlyNetwork}.`;
    const ip = await this.#poll(
      async () => {
        const found: Record<string, string> = {};
        for (const n of [0, 1]) {
          const ifname = await this.#property(name, `/VirtualBox/GuestInfo/Net/${n}/Name`);
          const addr = await this.#property(name, `/VirtualBox/GuestInfo/Net/${n}/V4/IP`);
          if (ifname && addr) found[ifname] = addr;
        }
        // Host-only: the cluster address is enp0s8's, on the host-only net. Bridged: enp0s3's.
        const candidate = prefix ? found["enp0s8"] : (found["enp0s3"] ?? found["enp0s8"]);
        return candidate && (!prefix || candidate.startsWith(prefix)) ? candidate : undefined;
      },
      `IP address of VM ${q(name)}`,
      wait,
      "The Guest Additions report it; check they run in the guest (VBoxManage guestproperty " +
        `enumerate ${name})`,
    );
    return { ip, ssh: { host: ip, port: 22 } };
  }

  /**
   * Host-only networking: the host's address on the host-only interface. Bridged: no address
   * known to be routed from the guests.
   */
  async hostEndpoint(): Promise<HostEndpoint | undefined> {
    const octets = this.#o.hostOnlyNetwork;
    if (this.#o.hostNetworkInterface || !octets) return undefined;
    const list = await this.#vbox(["list", "hostonlyifs"]);
    for (const block of list.stdout.split(/\n\s*\n/)) {
      const ip = block.match(/^IPAddress:\s+(\S+)/m)?.[1];
      if (ip?.startsWith(`${octets}.`)) return { listen: ip, reach: ip };
    }
    return undefined;
  }

  async #property(vm: string, key: string): Promise<string | undefined> {
    const r = await this.#vbox(["guestproperty", "get", vm, key], { check: false });
    if (!r.success) {
      if (MISSING.test(r.stderr)) throw missing(vm);
      return undefined;
    }
    return r.stdout.match(/^Value:\s*(\S+)/m)?.[1];
  }
}
