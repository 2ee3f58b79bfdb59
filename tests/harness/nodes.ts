/**
 * `startNodes(n)`: N booted nspawn nodes reachable by ssh with pinned host keys, for a test.
 * Built on the test driver, so the driver is exercised by every test that uses nodes.
 *
 * ```ts
 * await using nodes = await startNodes(3);
 * await nodes.ssh.run(nodes.at(0).ip, "hostname");
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { LocalRunner, type Runner, type RunOptions, type RunResult } from "../../lib/exec/mod.ts";
import { DtkError } from "../../lib/errors/mod.ts";
import { writeFileAtomic } from "../../lib/fs/mod.ts";
import { NspawnDriver } from "./nspawn_driver.ts";
import { bridgeName, netnsName } from "./_net.ts";
import { listBridges, listNetns } from "./_net.ts";
import { SshClient } from "./ssh.ts";
import { cgroupDirs } from "./_cgroup.ts";
import { sweepStale } from "./sweep.ts";
import { logTiming, mountPoints, pidAlive, runRoot } from "./_util.ts";

export interface Node {
  name: string;
  ip: string;
  /** Pinned public host key, `ssh-ed25519 AAAA…`. */
  hostKey: string;
  /** Runs a shell command on the node as root. */
  run(command: string, options?: RunOptions): Promise<RunResult>;
  /** Copies local files into `remotePath` on the node. */
  copyTo(local: string[], remotePath: string, options?: RunOptions): Promise<RunResult>;
}

/** What a node set owned, for asserting after teardown that nothing is left. */
export interface ResourceSnapshot {
  pids: number[];
  netns: string[];
  mounts: string[];
  bridge: string;
  stateDir: string;
  /** Cgroup folders of nodes that run containers. */
  cgroups: string[];
}

export interface StartNodesOptions {
  /** Node names; default `node1`…`nodeN`. */
  names?: string[];
  runner?: Runner;
  /** Extra systemd-nspawn arguments for every node. */
  nspawnArgs?: string[];
  /** Let the nodes run containers (runc, containerd, kubelet); see `NspawnSettings.containers`. */
  containers?: boolean;
  /** Per node boot timeout. Default 60 s. */
  bootTimeoutMs?: number;
}

export class NodeSet implements AsyncDisposable {
  readonly nodes: Node[];
  readonly driver: NspawnDriver;
  readonly ssh: SshClient;
  readonly subnetIndex: number;
  #stopped = false;

  constructor(
    init: { nodes: Node[]; driver: NspawnDriver; ssh: SshClient; subnetIndex: number },
  ) {
    this.nodes = init.nodes;
    this.driver = init.driver;
    this.ssh = init.ssh;
    this.subnetIndex = init.subnetIndex;
  }

  at(index: number): Node {
    const node = this.nodes[index];
    if (!node) throw new RangeError(`No node at index ${index}`);
    return node;
  }

  /** The host's address on the node bridge (nodes reach the host there). */
  get hostIp(): string {
    const ip = this.at(0).ip.split(".");
    return `${ip[0]}.${ip[1]}.${ip[2]}.1`;
  }

  /** Everything this set owns right now. */
  async snapshot(): Promise<ResourceSnapshot> {
    const pids: number[] = [...this.ssh.masterPids()];
    const cgroups: string[] = [];
    for (const node of this.nodes) {
      pids.push(...await this.driver.pids(node.name));
      const cgroup = (await this.driver.nodeMeta(node.name))?.cgroup;
      if (cgroup) cgroups.push(...cgroupDirs(cgroup));
    }
    return {
      pids,
      netns: this.nodes.map((n) => netnsName(this.subnetIndex, n.name)),
      mounts: mountPoints().filter((m) => m.startsWith(this.driver.stateDir + "/")),
      bridge: bridgeName(this.subnetIndex),
      stateDir: this.driver.stateDir,
      cgroups,
    };
  }

  /** Stops every node and removes everything (idempotent). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const started = performance.now();
    try {
      await this.ssh.close();
      await this.driver.destroy({ timeoutMs: 15_000 });
    } finally {
      untrack(this);
    }
    logTiming(`stop ${this.nodes.length} node(s)`, performance.now() - started);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** What of a snapshot still exists: empty when the teardown was clean. */
export async function leftovers(
  snapshot: ResourceSnapshot,
  runner: Runner = new LocalRunner(),
  options: { settleMs?: number } = {},
) {
  // A killed process can take a moment to leave /proc on a loaded machine: wait (bounded) for
  // the processes to go before judging, so that only a process that stays is reported.
  const deadline = Date.now() + (options.settleMs ?? 10_000);
  let pids = livePids(snapshot);
  while (pids.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    pids = livePids(snapshot);
  }
  const netns = await listNetns();
  const bridges = await listBridges(runner);
  const mounts = mountPoints();
  let stateDir = false;
  try {
    await Deno.lstat(snapshot.stateDir);
    stateDir = true;
  } catch { /* removed */ }
  return {
    pids,
    netns: snapshot.netns.filter((n) => netns.includes(n)),
    mounts: mounts.filter((m) =>
      snapshot.mounts.includes(m) || m.startsWith(snapshot.stateDir + "/")
    ),
    bridge: bridges.includes(snapshot.bridge) ? [snapshot.bridge] : [],
    stateDir: stateDir ? [snapshot.stateDir] : [],
    cgroups: snapshot.cgroups.filter((dir) => {
      try {
        return Deno.statSync(dir).isDirectory;
      } catch {
        return false;
      }
    }),
  };
}

/** Our PIDs still alive, and any process still rooted inside a node's overlay. */
function livePids(snapshot: ResourceSnapshot): number[] {
  const rooted: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      if (Deno.readLinkSync(`/proc/${entry.name}/root`).startsWith(snapshot.stateDir + "/")) {
        rooted.push(Number(entry.name));
      }
    } catch { /* exited or not ours to read */ }
  }
  return [...new Set([...snapshot.pids.filter(pidAlive), ...rooted])];
}

// Node sets of this process that are up, so that Ctrl-C or SIGTERM tears them down (a SIGKILL
// cannot be caught: sweepStale handles that case on the next run).
const active = new Set<NodeSet>();
let sweptThisProcess = false;

async function onSignal(): Promise<void> {
  console.error(`[harness] interrupted: stopping ${active.size} node set(s)`);
  const timer = setTimeout(() => Deno.exit(130), 30_000);
  await Promise.allSettled([...active].map((set) => set.stop()));
  clearTimeout(timer);
  Deno.exit(130);
}

function track(set: NodeSet): void {
  if (active.size === 0) {
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  }
  active.add(set);
}

function untrack(set: NodeSet): void {
  if (!active.delete(set) || active.size > 0) return;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
}

/** Starts `count` nodes; on any failure, everything already started is torn down. */
export async function startNodes(count: number, options: StartNodesOptions = {}): Promise<NodeSet> {
  const runner = options.runner ?? new LocalRunner();
  const names = options.names ?? Array.from({ length: count }, (_, i) => `node${i + 1}`);
  if (names.length !== count) throw new RangeError("names must hold one name per node");
  const runId = crypto.randomUUID().slice(0, 8);
  const stateDir = join(runRoot(), "runs", runId);
  const driver = new NspawnDriver({
    stateDir,
    ownerPid: Deno.pid,
    subnetIndex: undefined,
    nspawnArgs: options.nspawnArgs ?? [],
    containers: options.containers ?? false,
  }, { runner });
  const sshDir = join(stateDir, "ssh");
  const ssh = new SshClient({
    runner,
    identity: join(sshDir, "id_ed25519"),
    knownHosts: join(sshDir, "known_hosts"),
    controlDir: sshDir,
  });
  const started = performance.now();
  if (!sweptThisProcess) {
    sweptThisProcess = true;
    const swept = await sweepStale(runner);
    if (swept.dirs.length + swept.netns.length + swept.bridges.length > 0) {
      console.error(`[harness] removed leftovers of killed runs: ${JSON.stringify(swept)}`);
    }
  }
  let set: NodeSet | undefined;
  try {
    await Deno.mkdir(sshDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(stateDir, "owner.json"), JSON.stringify({ pid: Deno.pid }) + "\n");
    await runner.run([
      "ssh-keygen",
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      `dtk-test-${runId}`,
      "-f",
      ssh.identity,
    ]);
    const authorizedKey = (await Deno.readTextFile(`${ssh.identity}.pub`)).trim();
    const workDir = join(stateDir, "work");
    await driver.createTemplate({ name: "template", authorizedKey, media: {}, workDir }, {
      timeoutMs: 20 * 60_000,
    });
    for (const name of names) {
      await driver.clone({
        name,
        template: "template",
        cpu: 1,
        mem: 1024,
        disk: undefined,
        staticIp: undefined,
        hostKey: undefined,
        authorizedKey,
        workDir,
      }, { timeoutMs: 30_000 });
    }
    const bootTimeoutMs = options.bootTimeoutMs ?? 60_000;
    const nodes: Node[] = [];
    const netJson = JSON.parse(await Deno.readTextFile(join(stateDir, "net.json")));
    set = new NodeSet({ nodes, driver, ssh, subnetIndex: netJson.index });
    track(set);
    // One boot at a time, so that each node's boot timeout measures that node alone.
    for (const name of names) {
      await driver.start(name, { timeoutMs: bootTimeoutMs });
      const address = await driver.address(name, { timeoutMs: 5_000 });
      const hostKey = await driver.hostKey(name);
      await ssh.pin(address.ssh.host, hostKey);
      const ip = address.ip;
      nodes.push({
        name,
        ip,
        hostKey,
        run: (command, runOptions) => ssh.run(ip, command, runOptions),
        copyTo: (local, remotePath, runOptions) => ssh.copyTo(ip, local, remotePath, runOptions),
      });
    }
    logTiming(`start ${count} node(s) to ssh-ready`, performance.now() - started);
    return set;
  } catch (error) {
    try {
      if (set) untrack(set);
      await ssh.close();
      await driver.destroy({ timeoutMs: 15_000 });
    } catch (cleanupError) {
      throw new DtkError(`Starting nodes failed, and so did the cleanup: ${cleanupError}`, {
        cause: error,
      });
    }
    throw error;
  }
}
