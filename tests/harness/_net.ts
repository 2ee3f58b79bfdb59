/**
 * The harness network: one bridge per node set on a /24 of the test subnet, and per node a
 * network namespace with a veth on that bridge. Subnets are claimed with an O_EXCL file under
 * `<runRoot>/nets/`, so concurrent test processes never share one, and `sweepStale` can find
 * what a killed run left behind.
 *
 * @module
 */
import { join } from "node:path";
import type { Runner } from "../../lib/exec/mod.ts";
import { DtkError } from "../../lib/errors/mod.ts";
import { writeFileAtomic } from "../../lib/fs/mod.ts";
import { runRoot } from "./_util.ts";

/** First two octets of the test subnets (`10.231.X.0/24`). */
export function subnetBase(): string {
  return Deno.env.get("DTK_TEST_SUBNET_BASE") ?? "10.231";
}

/** A claimed /24: the bridge has `.1`, nodes get `.10` and up. */
export interface NetClaim {
  index: number;
  bridge: string;
  hostIp: string;
  prefix: number;
  /** Folder of the driver state that owns the claim. */
  stateDir: string;
  /** When set, the claim is stale once this process is gone. */
  ownerPid: number | undefined;
}

export function netsDir(): string {
  return join(runRoot(), "nets");
}

export function bridgeName(index: number): string {
  return `dtkbr${index}`;
}

export function netnsName(index: number, node: string): string {
  return `dtkt${index}-${node}`;
}

export function vethName(index: number, octet: number): string {
  return `dtkv${index}n${octet}`;
}

/** Claims the lowest free subnet index for `stateDir`. */
export async function claimSubnet(
  stateDir: string,
  options: { ownerPid: number | undefined; index?: number },
): Promise<NetClaim> {
  await Deno.mkdir(netsDir(), { recursive: true });
  const candidates = options.index !== undefined
    ? [options.index]
    : Array.from({ length: 250 }, (_, i) => i + 1);
  for (const index of candidates) {
    const claim: NetClaim = {
      index,
      bridge: bridgeName(index),
      hostIp: `${subnetBase()}.${index}.1`,
      prefix: 24,
      stateDir,
      ownerPid: options.ownerPid,
    };
    try {
      const file = await Deno.open(join(netsDir(), `${index}.json`), {
        write: true,
        createNew: true,
      });
      await file.write(new TextEncoder().encode(JSON.stringify(claim) + "\n"));
      file.close();
      return claim;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) continue;
      throw error;
    }
  }
  throw new DtkError("No free test subnet left", {
    hint:
      `Remove leftovers of killed runs: the harness's sweepStale(), or delete ${netsDir()}/*.json`,
  });
}

export async function readClaims(): Promise<NetClaim[]> {
  const claims: NetClaim[] = [];
  try {
    for await (const entry of Deno.readDir(netsDir())) {
      if (!entry.name.endsWith(".json")) continue;
      try {
        claims.push(JSON.parse(await Deno.readTextFile(join(netsDir(), entry.name))));
      } catch { /* a claim being written; its writer owns it */ }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return claims;
}

export async function releaseClaim(index: number): Promise<void> {
  await Deno.remove(join(netsDir(), `${index}.json`)).catch(() => {});
}

async function linkExists(runner: Runner, name: string, netns?: string): Promise<boolean> {
  const argv = netns ? ["ip", "-n", netns, "link", "show", name] : ["ip", "link", "show", name];
  return (await runner.run(argv, { check: false })).success;
}

export async function ensureBridge(runner: Runner, claim: NetClaim): Promise<void> {
  if (await linkExists(runner, claim.bridge)) return;
  await runner.run(["ip", "link", "add", claim.bridge, "type", "bridge"]);
  await runner.run(["ip", "addr", "add", `${claim.hostIp}/${claim.prefix}`, "dev", claim.bridge]);
  await runner.run(["ip", "link", "set", claim.bridge, "up"]);
}

export async function deleteBridge(runner: Runner, bridge: string): Promise<void> {
  if (await linkExists(runner, bridge)) {
    await runner.run(["ip", "link", "del", bridge]);
  }
}

export async function netnsExists(name: string): Promise<boolean> {
  try {
    await Deno.lstat(`/run/netns/${name}`);
    return true;
  } catch {
    return false;
  }
}

/** Creates the node's namespace, its veth on the bridge and its address (idempotent). */
export async function ensureNodeNetns(
  runner: Runner,
  claim: NetClaim,
  node: { name: string; ip: string },
): Promise<string> {
  const ns = netnsName(claim.index, node.name);
  const octet = Number(node.ip.split(".")[3]);
  const veth = vethName(claim.index, octet);
  if (!(await netnsExists(ns))) {
    await runner.run(["ip", "netns", "add", ns]);
  }
  if (!(await linkExists(runner, "eth0", ns))) {
    if (await linkExists(runner, veth)) await runner.run(["ip", "link", "del", veth]);
    await runner.run([
      "ip",
      "link",
      "add",
      veth,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns,
    ]);
    await runner.run(["ip", "link", "set", veth, "master", claim.bridge, "up"]);
    await runner.run(["ip", "-n", ns, "addr", "add", `${node.ip}/${claim.prefix}`, "dev", "eth0"]);
    await runner.run(["ip", "-n", ns, "link", "set", "lo", "up"]);
    await runner.run(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    await runner.run(["ip", "-n", ns, "route", "add", "default", "via", claim.hostIp]);
  }
  // A node's /proc/sys is read-only inside nspawn: set, from the host, the per-namespace keys
  // that dtk's sysctl step wants, as a VM would let dtk set them itself.
  await runner.run([
    "ip",
    "netns",
    "exec",
    ns,
    "sysctl",
    "-qw",
    "net.ipv4.ip_forward=1",
    "net.bridge.bridge-nf-call-iptables=1",
    "net.bridge.bridge-nf-call-ip6tables=1",
  ], { check: false });
  return ns;
}

/** Deletes the node's namespace; its veth pair goes with it. */
export async function deleteNodeNetns(runner: Runner, ns: string): Promise<void> {
  if (await netnsExists(ns)) {
    await runner.run(["ip", "netns", "del", ns]);
  }
}

export async function listNetns(): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir("/run/netns")) names.push(entry.name);
  } catch { /* none yet */ }
  return names;
}

export async function listBridges(runner: Runner): Promise<string[]> {
  const out = await runner.run(["ip", "-o", "link", "show", "type", "bridge"], { check: false });
  return out.stdout.split("\n").map((l) => l.split(": ")[1]?.split("@")[0] ?? "").filter((n) =>
    n.length > 0
  );
}

export async function writeClaimCopy(stateDir: string, claim: NetClaim): Promise<void> {
  await writeFileAtomic(join(stateDir, "net.json"), JSON.stringify(claim, null, 2) + "\n");
}
