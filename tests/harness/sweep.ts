/**
 * `sweepStale()`: removes what a killed earlier run left behind (nspawn processes, overlay mounts,
 * network namespaces, bridges, subnet claims, run folders). Only things whose owner is provably
 * gone are touched, so it is safe while other test processes run.
 *
 * @module
 */
import { join } from "node:path";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";
import {
  bridgeName,
  deleteBridge,
  deleteNodeNetns,
  listBridges,
  listNetns,
  type NetClaim,
  readClaims,
  releaseClaim,
} from "./_net.ts";
import { containerPids } from "./nspawn_driver.ts";
import { cgroupDirs, removeCgroupTree } from "./_cgroup.ts";
import { mountPoints, pidAlive, runRoot, sleep } from "./_util.ts";

export interface SweepReport {
  killed: number[];
  unmounted: string[];
  netns: string[];
  bridges: string[];
  claims: number[];
  dirs: string[];
  cgroups: string[];
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** nspawn processes whose command line names a folder under `dir`. */
function nspawnPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      if (argv[0]?.endsWith("systemd-nspawn") && argv.some((a) => a.startsWith(dir + "/"))) {
        pids.push(Number(entry.name));
      }
    } catch { /* exited */ }
  }
  return pids;
}

async function killAll(pids: number[], report: SweepReport): Promise<void> {
  const all = pids.flatMap((pid) => [pid, ...containerPids(pid)]);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* gone */ }
  }
  const deadline = performance.now() + 10_000;
  while (all.some(pidAlive) && performance.now() < deadline) await sleep(100);
  for (const pid of all.filter(pidAlive)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  report.killed.push(...all);
}

async function unmountUnder(runner: Runner, dir: string, report: SweepReport): Promise<void> {
  // Deepest first, so nested mounts go before their parents.
  const mounts = mountPoints().filter((m) => m.startsWith(dir + "/")).sort((a, b) =>
    b.length - a.length
  );
  for (const mount of mounts) {
    const result = await runner.run(["umount", mount], { check: false });
    if (!result.success) await runner.run(["umount", "-l", mount], { check: false });
    report.unmounted.push(mount);
  }
}

/** Removes the cgroup subtrees recorded in the node metas under `stateDir`. */
async function removeNodeCgroups(stateDir: string, report: SweepReport): Promise<void> {
  try {
    for await (const entry of Deno.readDir(join(stateDir, "nodes"))) {
      try {
        const meta = JSON.parse(
          await Deno.readTextFile(join(stateDir, "nodes", entry.name, "meta.json")),
        );
        if (typeof meta.cgroup !== "string") continue;
        const dirs = cgroupDirs(meta.cgroup);
        const failed = removeCgroupTree(meta.cgroup);
        report.cgroups.push(...dirs.filter((d) => !failed.includes(d)));
      } catch { /* no meta: the node never got that far */ }
    }
  } catch { /* no nodes folder */ }
}

async function sweepClaim(runner: Runner, claim: NetClaim, report: SweepReport): Promise<void> {
  await killAll(nspawnPidsUnder(claim.stateDir), report);
  await removeNodeCgroups(claim.stateDir, report);
  await unmountUnder(runner, claim.stateDir, report);
  for (const ns of await listNetns()) {
    if (ns.startsWith(`dtkt${claim.index}-`)) {
      await deleteNodeNetns(runner, ns);
      report.netns.push(ns);
    }
  }
  if ((await listBridges(runner)).includes(claim.bridge)) {
    await deleteBridge(runner, claim.bridge);
    report.bridges.push(claim.bridge);
  }
  // Only folders the harness made itself are removed; a configured state dir is left alone.
  if (claim.stateDir.startsWith(runRoot() + "/") && await isDir(claim.stateDir)) {
    await Deno.remove(claim.stateDir, { recursive: true });
    report.dirs.push(claim.stateDir);
  }
  await releaseClaim(claim.index);
  report.claims.push(claim.index);
}

/** Removes the leftovers of dead runs and returns what it removed. */
export async function sweepStale(runner: Runner = new LocalRunner()): Promise<SweepReport> {
  const report: SweepReport = {
    killed: [],
    unmounted: [],
    netns: [],
    bridges: [],
    claims: [],
    dirs: [],
    cgroups: [],
  };
  const claims = await readClaims();
  const live = new Set<number>();
  for (const claim of claims) {
    const ownerGone = claim.ownerPid !== undefined && !pidAlive(claim.ownerPid);
    const stateGone = !(await isDir(claim.stateDir));
    if (ownerGone || stateGone) {
      await sweepClaim(runner, claim, report);
    } else {
      live.add(claim.index);
    }
  }
  // Claims are made before any bridge or netns exists and released after they are gone, so an
  // unclaimed one is a leftover.
  for (const ns of await listNetns()) {
    const match = ns.match(/^dtkt(\d+)-/);
    if (match && !live.has(Number(match[1]))) {
      await deleteNodeNetns(runner, ns);
      report.netns.push(ns);
    }
  }
  for (const bridge of await listBridges(runner)) {
    const match = bridge.match(/^dtkbr(\d+)$/);
    if (match && !live.has(Number(match[1])) && bridge === bridgeName(Number(match[1]))) {
      await deleteBridge(runner, bridge);
      report.bridges.push(bridge);
    }
  }
  // Run folders of dead test processes that never claimed a subnet (or whose claim is gone).
  const runs = join(runRoot(), "runs");
  try {
    for await (const entry of Deno.readDir(runs)) {
      const dir = join(runs, entry.name);
      if (claims.some((c) => c.stateDir === dir && live.has(c.index))) continue;
      let owner: number | undefined;
      try {
        owner = JSON.parse(await Deno.readTextFile(join(dir, "owner.json"))).pid;
      } catch { /* no owner file */ }
      if (owner !== undefined && pidAlive(owner)) continue;
      if (owner === undefined) {
        // Without an owner file, only touch folders old enough to be from an earlier run.
        const info = await Deno.stat(dir);
        if (Date.now() - (info.mtime?.getTime() ?? 0) < 3_600_000) continue;
      }
      await killAll(nspawnPidsUnder(dir), report);
      await removeNodeCgroups(dir, report);
      await unmountUnder(runner, dir, report);
      await Deno.remove(dir, { recursive: true });
      report.dirs.push(dir);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return report;
}
