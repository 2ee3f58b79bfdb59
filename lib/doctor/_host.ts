/**
 * What the doctor knows about the host: files under a root folder (`/proc`, `/sys`, `/dev`,
 * `/etc/group`), commands found on the `PATH` of the given environment and run through the
 * runner with a timeout, and the identity of the user. Probes never throw: a missing file or
 * command is an answer, not an error.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { formatDuration } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";

/** The user dtk runs as, as `id` reports it. */
export interface Identity {
  uid: number;
  user: string;
  gid: number;
  /** The groups of the running process (`id -G`): what a new login adds is not here yet. */
  groups: { gid: number; name: string }[];
}

/** One entry of `/etc/group`. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** The outcome of running a command: its output, or why there is none. */
export type Probe =
  | { ok: true; code: number; stdout: string; stderr: string; path: string }
  | { ok: false; reason: string; path?: string };

export interface HostOptions {
  runner: Runner;
  root: string;
  env: (name: string) => string | undefined;
  timeoutMs: number;
}

export class Host {
  readonly root: string;
  readonly env: (name: string) => string | undefined;
  readonly timeoutMs: number;
  #runner: Runner;
  #identity: Promise<Identity | undefined> | undefined;
  #modules: Promise<Set<string>> | undefined;

  constructor(options: HostOptions) {
    this.#runner = options.runner;
    this.root = options.root;
    this.env = options.env;
    this.timeoutMs = options.timeoutMs;
  }

  /** A host path under the root: `/proc/cpuinfo` → `<root>/proc/cpuinfo`. */
  path(absolute: string): string {
    return this.root === "/" ? absolute : join(this.root, absolute);
  }

  /** The text of `<root><absolute>`, or undefined when it cannot be read. */
  async read(absolute: string): Promise<string | undefined> {
    try {
      return await Deno.readTextFile(this.path(absolute));
    } catch {
      return undefined;
    }
  }

  /** The first of `names` found on the environment's `PATH`, as an absolute path. */
  async which(...names: string[]): Promise<string | undefined> {
    // The PATH of the given environment, not of this process: tests put fake tools first.
    const dirs = (this.env("PATH") ?? "").split(":").filter((d) => d !== "");
    for (const dir of dirs) {
      for (const name of names) {
        const candidate = join(dir, name);
        try {
          const info = await Deno.stat(candidate);
          if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
        } catch { /* not here */ }
      }
    }
    return undefined;
  }

  /**
   * Runs the first of `names` found on `PATH` with `args`, in the C locale (libvirt and
   * coreutils translate the words the doctor reads), bounded by the timeout.
   */
  async run(names: string | string[], args: string[]): Promise<Probe> {
    const list = typeof names === "string" ? [names] : names;
    const path = await this.which(...list);
    if (path === undefined) return { ok: false, reason: "not found" };
    try {
      const result = await this.#runner.run([path, ...args], {
        check: false,
        timeoutMs: this.timeoutMs,
        env: { LC_ALL: "C", PATH: this.env("PATH") ?? "" },
      });
      return { ok: true, code: result.code, stdout: result.stdout, stderr: result.stderr, path };
    } catch (error) {
      // The runner throws only when the process could not start or did not finish in time.
      const message = error instanceof Error ? error.message : String(error);
      const reason = /did not finish/.test(message)
        ? `no answer within ${formatDuration(this.timeoutMs)}`
        : message;
      return { ok: false, reason, path };
    }
  }

  /** The user, from `id` (one call; the C locale keeps its `groups=` word). */
  identity(): Promise<Identity | undefined> {
    this.#identity ??= this.run("id", []).then((p) =>
      p.ok && p.code === 0 ? parseId(p.stdout) : undefined
    );
    return this.#identity;
  }

  /** `/etc/group` under the root, falling back to `getent group` for directory services. */
  async group(name: string): Promise<GroupEntry | undefined> {
    const text = await this.read("/etc/group");
    const local = text === undefined ? undefined : parseGroups(text).find((g) => g.name === name);
    if (local) return local;
    const probe = await this.run("getent", ["group", name]);
    if (!probe.ok || probe.code !== 0) return undefined;
    return parseGroups(probe.stdout).find((g) => g.name === name);
  }

  /** A group's name by gid, from `/etc/group` under the root. */
  async groupName(gid: number): Promise<string | undefined> {
    const text = await this.read("/etc/group");
    return text === undefined ? undefined : parseGroups(text).find((g) => g.gid === gid)?.name;
  }

  /**
   * Kernel modules present: loadable ones from `/proc/modules`, and built-in ones too, which
   * only show as `/sys/module/<name>` (a kernel booted with `nomodule` has no `/proc/modules`).
   */
  modules(): Promise<Set<string>> {
    this.#modules ??= (async () => {
      const names = new Set<string>();
      const text = await this.read("/proc/modules");
      for (const line of (text ?? "").split("\n")) {
        const name = line.split(" ")[0];
        if (name) names.add(name);
      }
      try {
        for await (const entry of Deno.readDir(this.path("/sys/module"))) names.add(entry.name);
      } catch { /* no sysfs */ }
      return names;
    })();
    return this.#modules;
  }

  /** Free space of the filesystem holding `path` (or its nearest existing parent), by `df`. */
  async freeSpace(path: string): Promise<DiskSpace | { error: string }> {
    let existing = path;
    while (!(await exists(existing))) {
      const parent = dirname(existing);
      if (parent === existing) break;
      existing = parent;
    }
    const probe = await this.run("df", ["-Pk", existing]);
    if (!probe.ok) return { error: `df: ${probe.reason}` };
    if (probe.code !== 0) return { error: `df failed: ${firstLine(probe.stderr)}` };
    const parsed = parseDf(probe.stdout);
    return parsed ?? { error: `unrecognised df output: ${firstLine(probe.stdout)}` };
  }
}

export interface DiskSpace {
  availableBytes: number;
  mountPoint: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `uid=1000(alice) gid=1000(alice) groups=1000(alice),27(sudo),108(libvirt)`. */
export function parseId(text: string): Identity | undefined {
  const uid = /uid=(\d+)\(([^)]*)\)/.exec(text);
  const gid = /gid=(\d+)/.exec(text);
  if (!uid?.[1] || uid[2] === undefined || !gid?.[1]) return undefined;
  const groups: Identity["groups"] = [];
  const list = /groups=(\S+)/.exec(text)?.[1] ?? "";
  for (const item of list.split(",")) {
    const match = /^(\d+)(?:\(([^)]*)\))?$/.exec(item);
    if (match?.[1]) groups.push({ gid: Number(match[1]), name: match[2] ?? match[1] });
  }
  return { uid: Number(uid[1]), user: uid[2], gid: Number(gid[1]), groups };
}

/** Lines of `/etc/group` (`name:x:gid:member,member`). */
export function parseGroups(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const [name, , gid, members] = line.trim().split(":");
    if (!name || gid === undefined || !/^\d+$/.test(gid)) continue;
    entries.push({
      name,
      gid: Number(gid),
      members: (members ?? "").split(",").map((m) => m.trim()).filter((m) => m !== ""),
    });
  }
  return entries;
}

/** POSIX `df -Pk` output: header, then `fs 1024-blocks used available capacity mountpoint`. */
export function parseDf(text: string): DiskSpace | undefined {
  const lines = text.trim().split("\n");
  const last = lines[lines.length - 1];
  if (lines.length < 2 || !last) return undefined;
  const fields = last.trim().split(/\s+/);
  const available = fields[3];
  if (fields.length < 6 || available === undefined || !/^\d+$/.test(available)) return undefined;
  return { availableBytes: Number(available) * 1024, mountPoint: fields.slice(5).join(" ") };
}

/** `MemAvailable` of `/proc/meminfo`, in bytes. */
export function parseMemAvailable(text: string): number | undefined {
  const match = /^MemAvailable:\s+(\d+)\s*kB/m.exec(text);
  return match?.[1] ? Number(match[1]) * 1024 : undefined;
}

/** The CPU's virtualisation flag from `/proc/cpuinfo`: `vmx` (Intel), `svm` (AMD), or none. */
export function virtFlag(cpuinfo: string): "vmx" | "svm" | undefined {
  for (const line of cpuinfo.split("\n")) {
    if (!/^flags\s*:/.test(line)) continue;
    const flags = line.slice(line.indexOf(":") + 1).trim().split(/\s+/);
    if (flags.includes("vmx")) return "vmx";
    if (flags.includes("svm")) return "svm";
  }
  return undefined;
}

export function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.trim() ?? "";
}
