/**
 * The test-only `Driver`: "VMs" are `systemd-nspawn` containers booting real systemd and sshd from
 * the cached debootstrap rootfs, each on its own overlayfs and in its own network namespace on a
 * bridge of the test subnet. Selected by the hidden config value `virt: test-nspawn`.
 *
 * State lives on disk (not in this object), so separate `dtk` processes see the same nodes: under
 * `stateDir` one folder per node with `meta.json` (address, nspawn PID), `upper/`, `work/`,
 * `merged/` and `console.log`. The nspawn processes are started detached and outlive the process
 * that started them, like VMs do.
 *
 * Hidden settings (`test-nspawn:` in config, `config.testNspawn`):
 * - `state-dir` / `stateDir`: where node state lives (default: per cluster under the run root)
 * - `owner-pid` / `ownerPid`: a PID; once it is gone, `sweepStale` may remove these nodes
 * - `subnet-index` / `subnetIndex`: force `10.231.<index>.0/24`
 * - `nspawn-args` / `nspawnArgs`: extra `systemd-nspawn` arguments
 * - `containers`: true to let nodes run containers (runc, containerd, kubelet): all capabilities,
 *   the keyring syscalls, writable cgroup v1 controllers (a boot unit binds the node's own
 *   subtree `dtk-test-<id>` of each hierarchy; removed when the node stops), and
 *   `/var/lib/containerd` bound from the host fs (overlayfs snapshots cannot live on overlayfs)
 *
 * cpu, mem and disk of a clone are recorded but not enforced.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "../../lib/config/types.ts";
import type { Runner } from "../../lib/exec/mod.ts";
import { ConfigError, DtkError, PrerequisiteError, q, TimeoutError } from "../../lib/errors/mod.ts";
import { exists, writeFileAtomic, writeSecretAtomic } from "../../lib/fs/mod.ts";
import type {
  CloneSpec,
  Driver,
  HostEndpoint,
  NodeAddress,
  PreflightProblem,
  TemplateSpec,
  VmState,
  VmStatus,
  WaitOptions,
} from "../../drivers/types.ts";
import {
  claimSubnet,
  deleteBridge,
  deleteNodeNetns,
  ensureBridge,
  ensureNodeNetns,
  type NetClaim,
  netnsName,
  releaseClaim,
  subnetBase,
  writeClaimCopy,
} from "./_net.ts";
import { ensureRootfs } from "./rootfs.ts";
import { CGROUP_SCRIPT, CGROUP_UNIT, removeCgroupTree } from "./_cgroup.ts";
import { mountPoints, pidAlive, runRoot, sha256Text, waitFor } from "./_util.ts";

export interface NspawnSettings {
  stateDir: string;
  ownerPid: number | undefined;
  subnetIndex: number | undefined;
  nspawnArgs: string[];
  /** Nodes may run containers (see the module doc). */
  containers: boolean;
}

/** nspawn arguments that let runc work inside a node. */
export const CONTAINER_NSPAWN_ARGS: readonly string[] = [
  "--capability=all",
  // runc joins a fresh session keyring; nspawn's default seccomp filter refuses that.
  "--system-call-filter=add_key keyctl request_key",
  // The kubelet's OOM watcher reads the kernel log; a VM has it, a container must be given it.
  "--bind-ro=/dev/kmsg",
];

interface TemplateMeta {
  name: string;
  rootfs: string;
  authorizedKey: string;
}

/** What `meta.json` of a node holds. */
export interface NodeMeta {
  name: string;
  ip: string;
  template: string;
  rootfs: string;
  cpu: number;
  mem: number;
  hostKeyPublic: string;
  /** PID of `systemd-nspawn` while started. */
  pid: number | undefined;
  /** `/proc/<pid>/stat` start time, so a reused PID is never mistaken for the node. */
  pidStart: string | undefined;
  paused: boolean;
  /** The node's cgroup subtree (`containers` only). */
  cgroup?: string;
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

function settingError(message: string): ConfigError {
  const path = message.split(" ")[0] ?? "test-nspawn";
  return new ConfigError([{
    file: "<config>",
    line: 0,
    column: 0,
    path,
    message,
  }]);
}

function pick(settings: Record<string, unknown>, ...keys: string[]): unknown {
  for (const key of keys) if (settings[key] !== undefined) return settings[key];
  return undefined;
}

/** Reads the hidden `test-nspawn:` settings of a config. */
export function nspawnSettings(
  config: Pick<Config, "testNspawn" | "cluster" | "source">,
): NspawnSettings {
  const raw = config.testNspawn ?? {};
  const stateDir = pick(raw, "stateDir", "state-dir");
  const ownerPid = pick(raw, "ownerPid", "owner-pid");
  const subnetIndex = pick(raw, "subnetIndex", "subnet-index");
  const nspawnArgs = pick(raw, "nspawnArgs", "nspawn-args") ?? [];
  const containers = pick(raw, "containers") ?? false;
  if (typeof containers !== "boolean") {
    throw settingError("test-nspawn.containers must be true or false");
  }
  if (stateDir !== undefined && typeof stateDir !== "string") {
    throw settingError("test-nspawn.state-dir must be a string");
  }
  if (ownerPid !== undefined && typeof ownerPid !== "number") {
    throw settingError("test-nspawn.owner-pid must be a number");
  }
  if (
    subnetIndex !== undefined &&
    (typeof subnetIndex !== "number" || subnetIndex < 1 || subnetIndex > 250)
  ) {
    throw settingError("test-nspawn.subnet-index must be a number from 1 to 250");
  }
  if (!Array.isArray(nspawnArgs) || !nspawnArgs.every((a) => typeof a === "string")) {
    throw settingError("test-nspawn.nspawn-args must be a list of strings");
  }
  return {
    stateDir: stateDir ??
      join(
        runRoot(),
        "clusters",
        `${config.cluster.name}-${sha256Text(config.source.dir).slice(0, 8)}`,
      ),
    ownerPid,
    subnetIndex,
    nspawnArgs: nspawnArgs as string[],
    containers,
  };
}

function procStart(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** PIDs of every process in the PID namespace whose init is the child of `nspawnPid`. */
export function containerPids(nspawnPid: number): number[] {
  let init: number | undefined;
  try {
    const children = Deno.readTextFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`).trim();
    init = children ? Number(children.split(" ")[0]) : undefined;
  } catch {
    return [];
  }
  if (init === undefined) return [];
  let ns: string;
  try {
    ns = Deno.readLinkSync(`/proc/${init}/ns/pid`);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      if (Deno.readLinkSync(`/proc/${entry.name}/ns/pid`) === ns) pids.push(Number(entry.name));
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

/** Waits until something accepts TCP on `host:22` and speaks SSH. */
async function sshBanner(host: string): Promise<string | undefined> {
  // A connect to an address nobody answers ARP for hangs in SYN retries: bound it.
  const pending = Deno.connect({ hostname: host, port: 22 });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const conn = await Promise.race([
    pending,
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 2000)),
  ]).finally(() => clearTimeout(timer));
  if (conn === undefined) {
    pending.then((late) => late.close(), () => {});
    return undefined;
  }
  try {
    const buffer = new Uint8Array(256);
    const timer = setTimeout(() => conn.close(), 2000);
    const n = await conn.read(buffer).finally(() => clearTimeout(timer));
    const text = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
    return text.startsWith("SSH-") ? text.trim() : undefined;
  } finally {
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

export class NspawnDriver implements Driver {
  readonly name = "test-nspawn";
  readonly settings: NspawnSettings;
  #runner: Runner;

  constructor(settings: NspawnSettings, options: { runner: Runner }) {
    this.settings = settings;
    this.#runner = options.runner;
  }

  get stateDir(): string {
    return this.settings.stateDir;
  }

  #nodeDir(name: string): string {
    return join(this.stateDir, "nodes", name);
  }

  async preflight(): Promise<PreflightProblem[]> {
    const problems: PreflightProblem[] = [];
    for (
      const [tool, pkg] of [["systemd-nspawn", "systemd-container"], ["ip", "iproute2"], [
        "debootstrap",
        "debootstrap",
      ], ["ssh-keygen", "openssh-client"]]
    ) {
      const found = await this.#runner.run(["sh", "-c", `command -v ${tool}`], { check: false });
      if (!found.success) {
        problems.push({ message: `${tool} is not installed`, fix: `apt-get install -y ${pkg}` });
      }
    }
    if (Deno.uid() !== 0) {
      problems.push({
        message: "The test-nspawn driver needs root",
        fix: "Run the tests as root",
      });
    }
    return problems;
  }

  async exists(name: string): Promise<boolean> {
    return await exists(join(this.#nodeDir(name), "meta.json")) ||
      await exists(join(this.stateDir, "templates", `${name}.json`));
  }

  async createTemplate(spec: TemplateSpec, options: WaitOptions): Promise<void> {
    const rootfs = await ensureRootfs(this.#runner, { timeoutMs: options.timeoutMs });
    const meta: TemplateMeta = { name: spec.name, rootfs, authorizedKey: spec.authorizedKey };
    await writeFileAtomic(
      join(this.stateDir, "templates", `${spec.name}.json`),
      JSON.stringify(meta, null, 2) + "\n",
    );
  }

  async #template(name: string): Promise<TemplateMeta> {
    try {
      return JSON.parse(await Deno.readTextFile(join(this.stateDir, "templates", `${name}.json`)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new DtkError(`Template ${q(name)} does not exist`, {
          hint: "Create it first: dtk template create",
        });
      }
      throw error;
    }
  }

  async #readMeta(name: string): Promise<NodeMeta | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(join(this.#nodeDir(name), "meta.json")));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  async #meta(name: string): Promise<NodeMeta> {
    const meta = await this.#readMeta(name);
    if (!meta) {
      throw new DtkError(`VM ${q(name)} does not exist`, { hint: "List VMs with: dtk vm list" });
    }
    return meta;
  }

  async #writeMeta(meta: NodeMeta): Promise<void> {
    await writeFileAtomic(
      join(this.#nodeDir(meta.name), "meta.json"),
      JSON.stringify(meta, null, 2) + "\n",
    );
  }

  /** The subnet of this state dir, claimed on first use. */
  async #claim(): Promise<NetClaim> {
    const path = join(this.stateDir, "net.json");
    try {
      return JSON.parse(await Deno.readTextFile(path));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    await Deno.mkdir(this.stateDir, { recursive: true });
    const claim = await claimSubnet(this.stateDir, {
      ownerPid: this.settings.ownerPid,
      index: this.settings.subnetIndex,
    });
    await writeClaimCopy(this.stateDir, claim);
    return claim;
  }

  async #nodeNames(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(join(this.stateDir, "nodes"))) {
        if (entry.isDirectory) names.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return names.sort();
  }

  /**
   * Serialises state changes across processes and concurrent calls (dtk clones and starts nodes
   * in parallel): subnet claim, address allocation and bridge creation must not race.
   */
  async #withLock<T>(fn: () => Promise<T>): Promise<T> {
    await Deno.mkdir(this.stateDir, { recursive: true });
    const file = await Deno.open(join(this.stateDir, ".lock"), {
      read: true,
      write: true,
      create: true,
    });
    try {
      await file.lock(true);
      return await fn();
    } finally {
      file.close();
    }
  }

  async clone(spec: CloneSpec, _options: WaitOptions): Promise<void> {
    if (!NAME_RE.test(spec.name)) {
      throw new DtkError(`Invalid node name ${q(spec.name)}`, {
        hint: "Use lower-case letters, digits and dashes, at most 32 characters",
      });
    }
    await this.#withLock(() => this.#clone(spec));
  }

  async #clone(spec: CloneSpec): Promise<void> {
    if (await this.#readMeta(spec.name)) {
      throw new DtkError(`VM ${q(spec.name)} already exists`, {
        hint: `Delete it first: dtk vm delete ${spec.name}`,
      });
    }
    const template = await this.#template(spec.template);
    const claim = await this.#claim();
    const used = new Set<string>();
    for (const other of await this.#nodeNames()) {
      const meta = await this.#readMeta(other);
      if (meta) used.add(meta.ip);
    }
    let ip: string | undefined;
    for (let octet = 10; octet < 250 && ip === undefined; octet++) {
      const candidate = `${subnetBase()}.${claim.index}.${octet}`;
      if (!used.has(candidate)) ip = candidate;
    }
    if (ip === undefined) throw new DtkError(`No free address left in ${q(claim.hostIp)}/24`);

    const dir = this.#nodeDir(spec.name);
    const upper = join(dir, "upper");
    await Deno.mkdir(join(dir, "work"), { recursive: true });
    await Deno.mkdir(join(dir, "merged"), { recursive: true });
    // overlayfs cannot be an upper layer of overlayfs: containerd's snapshots need a real fs.
    if (this.settings.containers) await Deno.mkdir(join(dir, "containerd"), { mode: 0o711 });
    // Upper-layer folders shadow the lower ones' modes: keep them as in the rootfs.
    await Deno.mkdir(join(upper, "etc", "ssh"), { recursive: true, mode: 0o755 });
    await Deno.mkdir(join(upper, "root", ".ssh"), { recursive: true });
    await Deno.chmod(join(upper, "root"), 0o700);
    await Deno.chmod(join(upper, "root", ".ssh"), 0o700);

    let hostKey = spec.hostKey;
    if (!hostKey) {
      const temp = await Deno.makeTempDir({ prefix: "dtk-hostkey-" });
      try {
        await this.#runner.run([
          "ssh-keygen",
          "-q",
          "-t",
          "ed25519",
          "-N",
          "",
          "-C",
          `root@${spec.name}`,
          "-f",
          join(temp, "key"),
        ]);
        hostKey = {
          privateKey: await Deno.readTextFile(join(temp, "key")),
          publicKey: (await Deno.readTextFile(join(temp, "key.pub"))).trim(),
        };
      } finally {
        await Deno.remove(temp, { recursive: true });
      }
    }
    await writeSecretAtomic(join(upper, "etc/ssh/ssh_host_ed25519_key"), hostKey.privateKey);
    await writeFileAtomic(
      join(upper, "etc/ssh/ssh_host_ed25519_key.pub"),
      hostKey.publicKey + "\n",
    );
    await writeFileAtomic(join(upper, "etc/hostname"), spec.name + "\n");
    await writeFileAtomic(
      join(upper, "etc/hosts"),
      `127.0.0.1 localhost\n${ip} ${spec.name}\n::1 localhost ip6-localhost ip6-loopback\n`,
    );
    const machineId = crypto.randomUUID().replaceAll("-", "");
    await writeFileAtomic(join(upper, "etc/machine-id"), machineId + "\n", { mode: 0o444 });
    const cgroup = this.settings.containers ? `dtk-test-${machineId.slice(0, 16)}` : undefined;
    if (cgroup) {
      await writeFileAtomic(join(upper, "etc/dtk-test-cgroup"), cgroup + "\n");
      await writeFileAtomic(join(upper, "usr/local/sbin/dtk-test-cgroups"), CGROUP_SCRIPT, {
        mode: 0o755,
      });
      await writeFileAtomic(
        join(upper, "etc/systemd/system/dtk-test-cgroups.service"),
        CGROUP_UNIT,
      );
      const wants = join(upper, "etc/systemd/system/sysinit.target.wants");
      await Deno.mkdir(wants, { recursive: true });
      await Deno.symlink("../dtk-test-cgroups.service", join(wants, "dtk-test-cgroups.service"));
    }
    const keys = [...new Set([template.authorizedKey, spec.authorizedKey].filter((k) => k))];
    await writeFileAtomic(join(upper, "root/.ssh/authorized_keys"), keys.join("\n") + "\n", {
      mode: 0o600,
      mkdir: false,
    });
    await this.#writeMeta({
      name: spec.name,
      ip,
      template: spec.template,
      rootfs: template.rootfs,
      cpu: spec.cpu,
      mem: spec.mem,
      hostKeyPublic: hostKey.publicKey.trim(),
      pid: undefined,
      pidStart: undefined,
      paused: false,
      ...(cgroup ? { cgroup } : {}),
    });
  }

  /** The nspawn PID of a started node, or undefined when it is not running. */
  #livePid(meta: NodeMeta): number | undefined {
    if (meta.pid === undefined || !pidAlive(meta.pid)) return undefined;
    if (procStart(meta.pid) !== meta.pidStart) return undefined;
    return meta.pid;
  }

  async start(name: string, options: WaitOptions): Promise<void> {
    const meta = await this.#meta(name);
    if (this.#livePid(meta) !== undefined) return;
    const ns = await this.#withLock(async () => {
      const claim = await this.#claim();
      await ensureBridge(this.#runner, claim);
      return await ensureNodeNetns(this.#runner, claim, meta);
    });
    const dir = this.#nodeDir(name);
    const merged = join(dir, "merged");
    if (!mountPoints().includes(merged)) {
      await this.#runner.run([
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        `lowerdir=${meta.rootfs},upperdir=${join(dir, "upper")},workdir=${join(dir, "work")}`,
        merged,
      ], { what: `mount the overlay of node ${q(name)}` });
    }
    const argv = [
      "systemd-nspawn",
      "-q",
      "-D",
      merged,
      "-M",
      name,
      "--boot",
      "--register=no",
      "--keep-unit",
      `--network-namespace-path=/run/netns/${ns}`,
      // The rootfs holds the resolv.conf of the host that built it; on a systemd-resolved host
      // that is the 127.0.0.53 stub, which dtk's prep refuses (k8s.resolv-conf). The host's
      // upstream servers are what a VM on it would get by DHCP.
      `--resolv-conf=${
        (await exists("/run/systemd/resolve/resolv.conf")) ? "replace-uplink" : "replace-host"
      }`,
      "--console=pipe",
      ...(this.settings.containers
        ? [
          ...CONTAINER_NSPAWN_ARGS,
          `--bind=${join(dir, "containerd")}:/var/lib/containerd`,
        ]
        : []),
      ...this.settings.nspawnArgs,
    ].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    // setsid: the node must outlive the dtk process that started it, and Ctrl-C in that
    // terminal must not reach it. A background job of a non-interactive shell is no group
    // leader, so setsid does not fork and $! is the nspawn PID.
    const out = await this.#runner.run([
      "sh",
      "-c",
      `setsid ${argv} </dev/null >>'${join(dir, "console.log")}' 2>&1 & echo $!`,
    ], { what: `start node ${q(name)}` });
    const pid = Number(out.stdout.trim());
    meta.pid = pid;
    meta.pidStart = procStart(pid);
    meta.paused = false;
    await this.#writeMeta(meta);
    await waitFor(`sshd of node ${q(name)} on ${meta.ip}:22`, async () => {
      if (!pidAlive(pid)) {
        const log = await Deno.readTextFile(join(dir, "console.log")).catch(() => "");
        throw new DtkError(`Node ${q(name)} exited while booting`, {
          hint: `See its console: ${join(dir, "console.log")}\n${
            log.split("\n").slice(-15).join("\n")
          }`,
        });
      }
      return await sshBanner(meta.ip);
    }, { timeoutMs: options.timeoutMs, signal: options.signal, intervalMs: 50 }).catch(
      (error) => {
        // A boot failure is final: do not keep polling a dead node for the whole timeout.
        if (error instanceof TimeoutError && error.cause instanceof DtkError) throw error.cause;
        throw error;
      },
    );
  }

  stop(name: string, options: WaitOptions): Promise<void> {
    return this.#halt(name, { timeoutMs: options.timeoutMs, force: false });
  }

  /**
   * Powers a node off (SIGTERM to nspawn: systemd shuts down), or with `force` kills it at once,
   * for nodes whose data is about to be discarded anyway. An etcd member alone in a shutting
   * down cluster can hold a graceful stop for 10 s and more.
   */
  async #halt(name: string, options: { timeoutMs: number; force: boolean }): Promise<void> {
    const meta = await this.#readMeta(name);
    if (!meta) return;
    const pid = this.#livePid(meta);
    if (pid !== undefined) {
      if (meta.paused) this.#signalContainer(pid, "SIGCONT");
      const gone = () => Promise.resolve(pidAlive(pid) ? undefined : true);
      let poweredOff = false;
      if (!options.force) {
        try {
          Deno.kill(pid, "SIGTERM");
        } catch { /* gone */ }
        poweredOff = await waitFor(`node ${q(name)} to power off`, gone, {
          timeoutMs: options.timeoutMs,
          intervalMs: 50,
        }).then(() => true, (error) => {
          if (error instanceof TimeoutError) return false;
          throw error;
        });
      }
      if (!poweredOff) {
        for (const p of [pid, ...containerPids(pid)]) {
          try {
            Deno.kill(p, "SIGKILL");
          } catch { /* gone */ }
        }
        await waitFor(`node ${q(name)} to die after SIGKILL`, gone, {
          timeoutMs: 10_000,
          intervalMs: 50,
        });
      }
    }
    await this.#teardownNode(meta);
  }

  /** Unmounts the overlay, deletes the netns and the cgroups of a node whose nspawn is gone. */
  async #teardownNode(meta: NodeMeta): Promise<void> {
    if (meta.cgroup) {
      const cgroup = meta.cgroup;
      // The last processes of the node may still be leaving their cgroups.
      await waitFor(`the cgroups of node ${q(meta.name)} to be removable`, () => {
        return Promise.resolve(removeCgroupTree(cgroup).length === 0 ? true : undefined);
      }, { timeoutMs: 10_000, intervalMs: 100 });
    }
    const merged = join(this.#nodeDir(meta.name), "merged");
    if (mountPoints().includes(merged)) {
      await this.#runner.run(["umount", merged], { what: `unmount node ${q(meta.name)}` });
    }
    const claimPath = join(this.stateDir, "net.json");
    if (await exists(claimPath)) {
      const claim: NetClaim = JSON.parse(await Deno.readTextFile(claimPath));
      await deleteNodeNetns(this.#runner, netnsName(claim.index, meta.name));
    }
    if (meta.pid !== undefined) {
      meta.pid = undefined;
      meta.pidStart = undefined;
      meta.paused = false;
      await this.#writeMeta(meta);
    }
  }

  #signalContainer(pid: number, signal: Deno.Signal): void {
    for (const p of containerPids(pid)) {
      try {
        Deno.kill(p, signal);
      } catch { /* exited */ }
    }
  }

  async pause(name: string): Promise<void> {
    const meta = await this.#meta(name);
    const pid = this.#livePid(meta);
    if (pid === undefined) throw new DtkError(`VM ${q(name)} is not running`);
    this.#signalContainer(pid, "SIGSTOP");
    meta.paused = true;
    await this.#writeMeta(meta);
  }

  async resume(name: string): Promise<void> {
    const meta = await this.#meta(name);
    const pid = this.#livePid(meta);
    if (pid === undefined) throw new DtkError(`VM ${q(name)} is not running`);
    this.#signalContainer(pid, "SIGCONT");
    meta.paused = false;
    await this.#writeMeta(meta);
  }

  delete(name: string, options: WaitOptions): Promise<boolean> {
    return this.#delete(name, { timeoutMs: options.timeoutMs, force: false });
  }

  async #delete(name: string, options: { timeoutMs: number; force: boolean }): Promise<boolean> {
    const templatePath = join(this.stateDir, "templates", `${name}.json`);
    const meta = await this.#readMeta(name);
    if (!meta) {
      if (await exists(templatePath)) {
        await Deno.remove(templatePath);
        await this.#withLock(() => this.#releaseIfEmpty());
        return true;
      }
      return false;
    }
    await this.#halt(name, options);
    await Deno.remove(this.#nodeDir(name), { recursive: true });
    await this.#withLock(() => this.#releaseIfEmpty());
    return true;
  }

  /** With no node left, the bridge and the subnet claim go too. */
  async #releaseIfEmpty(): Promise<void> {
    if ((await this.#nodeNames()).length > 0) return;
    const claimPath = join(this.stateDir, "net.json");
    if (!(await exists(claimPath))) return;
    const claim: NetClaim = JSON.parse(await Deno.readTextFile(claimPath));
    await deleteBridge(this.#runner, claim.bridge);
    await Deno.remove(claimPath);
    await releaseClaim(claim.index);
  }

  async status(name: string): Promise<VmState> {
    const meta = await this.#readMeta(name);
    if (!meta) {
      return await exists(join(this.stateDir, "templates", `${name}.json`)) ? "stopped" : "absent";
    }
    if (this.#livePid(meta) === undefined) return "stopped";
    return meta.paused ? "paused" : "running";
  }

  async list(): Promise<VmStatus[]> {
    const result: VmStatus[] = [];
    for (const name of await this.#nodeNames()) {
      result.push({ name, state: await this.status(name) });
    }
    return result;
  }

  async address(name: string, options: WaitOptions): Promise<NodeAddress> {
    const meta = await waitFor(`the address of VM ${q(name)}`, async () => {
      const meta = await this.#readMeta(name);
      return meta && this.#livePid(meta) !== undefined ? meta : undefined;
    }, { timeoutMs: options.timeoutMs, signal: options.signal, intervalMs: 100 });
    return { ip: meta.ip, ssh: { host: meta.ip, port: 22 } };
  }

  /** The bridge's address: the host as every node of this state dir reaches it. */
  async hostEndpoint(): Promise<HostEndpoint | undefined> {
    const path = join(this.stateDir, "net.json");
    if (!(await exists(path))) return undefined;
    const claim: NetClaim = JSON.parse(await Deno.readTextFile(path));
    return { listen: claim.hostIp, reach: claim.hostIp };
  }

  /** The node's recorded state, or undefined when it does not exist. */
  nodeMeta(name: string): Promise<NodeMeta | undefined> {
    return this.#readMeta(name);
  }

  /** The node's pinned public host key (`ssh-ed25519 AAAA…`). */
  async hostKey(name: string): Promise<string> {
    return (await this.#meta(name)).hostKeyPublic;
  }

  /** Every process of a running node (nspawn, and all in its PID namespace). */
  async pids(name: string): Promise<number[]> {
    const meta = await this.#readMeta(name);
    const pid = meta && this.#livePid(meta);
    return pid === undefined ? [] : [pid, ...containerPids(pid)];
  }

  /**
   * Deletes every node (killed at once: their disks are discarded anyway) and template, the
   * bridge, the claim and the state folder.
   */
  async destroy(options: WaitOptions): Promise<void> {
    const errors: unknown[] = [];
    await Promise.all(
      (await this.#nodeNames()).map((name) =>
        this.#delete(name, { timeoutMs: options.timeoutMs, force: true }).catch((error) =>
          errors.push(error)
        )
      ),
    );
    try {
      await Deno.remove(join(this.stateDir, "templates"), { recursive: true }).catch(() => {});
      await this.#withLock(() => this.#releaseIfEmpty());
      await Deno.remove(this.stateDir, { recursive: true }).catch(() => {});
    } catch (error) {
      errors.push(error);
    }
    if (errors.length > 0) {
      throw new DtkError(`Teardown of ${q(this.stateDir)} failed`, { cause: errors[0] });
    }
  }
}

/** The factory `createDriver` calls for `virt: test-nspawn`. */
export function createNspawnDriver(
  config: Pick<Config, "testNspawn" | "cluster" | "source">,
  options: { runner: Runner },
): NspawnDriver {
  if (Deno.build.os !== "linux") {
    throw new PrerequisiteError("The test-nspawn driver runs on Linux only");
  }
  return new NspawnDriver(nspawnSettings(config), options);
}
