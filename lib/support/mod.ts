/**
 * `dtk export logs`: a support bundle of one cluster, like `kind export logs`, as a `.tar.gz`
 * with a manifest. dtk's run logs, the state and plan, the rendered files, per node the journal
 * of every dtk unit (bounded by size and time), `crictl ps -a` and the logs of failing
 * containers, the cluster's events and node descriptions, and what the caller adds (doctor and
 * version). Owner-only files (dtk writes every secret 0600) never go in, and every text that
 * does is redacted with every secret of the cluster; the bundle is scanned for them at the end.
 *
 * @module
 */
import { join, relative } from "node:path";
import type { Config } from "../config/types.ts";
import { DtkError, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import { exists, writeFileAtomic } from "../fs/mod.ts";
import { clusterDir, lockPath, pkiLayout } from "../paths/mod.ts";
import { type Remote, shellQuote, tarArchive, type TarEntry } from "../remote/mod.ts";
import { clusterRedactor, type Redactor } from "../runlog/mod.ts";

export interface BundleFile {
  path: string;
  bytes: number;
  /** Where it came from: a local path, or `<node>: <command>`. */
  source: string;
}

export interface Manifest {
  cluster: string;
  createdAt: string;
  files: BundleFile[];
  /** What could not be collected, and why (a stopped node, a missing kubectl). */
  problems: { what: string; error: string }[];
  limits: { journalBytesPerUnit: number; journalSince: string; containerLogLines: number };
  redaction: string;
}

export interface BundleOptions {
  runner: Runner;
  /** The node's pinned ssh, or `undefined` when its address is not known. */
  remote: (node: string) => Remote | undefined;
  /** dtk's units on a node (`journalctl -u` of each). */
  units: (node: string) => string[];
  /** The files dtk renders for a node (path → content), without any PKI placement. */
  rendered: (node: string) => { path: string; content: string }[];
  /** More files, produced by the caller (doctor, version); an error is a manifest problem. */
  extras?: { path: string; produce: () => Promise<string> }[];
  /** The plan of `cluster create`, as JSON. */
  plan?: () => string;
  journalBytesPerUnit?: number;
  /** journalctl `--since` (default `-24h`: the last day). */
  journalSince?: string;
  containerLogLines?: number;
  /** Bound of each command. Default 60 s. */
  timeoutMs?: number;
  now?: Date;
}

const encoder = new TextEncoder();

interface CrictlContainer {
  id?: string;
  state?: string;
  metadata?: { name?: string };
  labels?: Record<string, string>;
}

/** Containers worth their logs: every one not running (exited, created, unknown). */
export function failingContainers(json: string): { id: string; name: string; state: string }[] {
  let data: { containers?: CrictlContainer[] };
  try {
    data = JSON.parse(json);
  } catch {
    return [];
  }
  return (data.containers ?? []).filter((c) => c.id && c.state !== "CONTAINER_RUNNING").map((
    c,
  ) => ({
    id: c.id!,
    name: [
      c.labels?.["io.kubernetes.pod.namespace"],
      c.labels?.["io.kubernetes.pod.name"],
      c.metadata?.name,
    ]
      .filter((x) => x).join("_") || c.id!.slice(0, 12),
    state: c.state ?? "unknown",
  }));
}

/** A safe bundle path segment from a name. */
function segment(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_") || "_";
}

/** Collects the bundle of `config`'s cluster; returns the archive's entries and manifest. */
export async function collectBundle(
  config: Config,
  options: BundleOptions,
): Promise<{ entries: TarEntry[]; manifest: Manifest; redactor: Redactor }> {
  const dir = clusterDir(config);
  if (!(await exists(dir))) {
    throw new DtkError(`Cluster ${q(config.cluster.name)} has no folder ${q(dir)}`, {
      hint: "Create it first (dtk cluster create), or pass its config with --config",
    });
  }
  const redactor = await clusterRedactor(dir);
  const top = `dtk-${segment(config.cluster.name)}`;
  const entries: TarEntry[] = [];
  const manifest: Manifest = {
    cluster: config.cluster.name,
    createdAt: (options.now ?? new Date()).toISOString(),
    files: [],
    problems: [],
    limits: {
      journalBytesPerUnit: options.journalBytesPerUnit ?? 1024 * 1024,
      journalSince: options.journalSince ?? "-24h",
      containerLogLines: options.containerLogLines ?? 200,
    },
    redaction:
      "owner-only files (dtk's keys, tokens and secrets) are left out; every secret value of the cluster, private key blocks and key=value secrets are replaced with [redacted]",
  };
  const add = (path: string, text: string, source: string) => {
    const data = encoder.encode(redactor.redact(text));
    entries.push({ name: `${top}/${path}`, data, mode: 0o644 });
    manifest.files.push({ path, bytes: data.length, source });
  };
  const problem = (what: string, error: unknown) =>
    manifest.problems.push({
      what,
      error: redactor.redact(error instanceof Error ? error.message : String(error)),
    });
  const timeoutMs = options.timeoutMs ?? 60_000;

  // dtk's own files: run logs, state, the lock, add-on values; never an owner-only file.
  // Run logs are owner-only too, but redacted when written (and again here): they go in.
  const local = async (path: string, as: string, ownerOnly = false) => {
    try {
      const info = await Deno.lstat(path);
      if (!info.isFile || (!ownerOnly && ((info.mode ?? 0) & 0o077) === 0)) return;
      add(as, await Deno.readTextFile(path), path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) problem(path, error);
    }
  };
  const walk = async (from: string, as: string, ownerOnly = false) => {
    let list: Deno.DirEntry[] = [];
    try {
      list = await Array.fromAsync(Deno.readDir(from));
    } catch {
      return;
    }
    for (const e of list.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory) await walk(join(from, e.name), `${as}/${segment(e.name)}`, ownerOnly);
      else if (e.isFile) await local(join(from, e.name), `${as}/${segment(e.name)}`, ownerOnly);
    }
  };
  await walk(join(dir, "logs"), "dtk/logs", true);
  await local(join(dir, "state.json"), "dtk/state.json");
  await local(lockPath(config), "dtk/dtk.lock");
  await walk(join(dir, "addons"), "rendered/addons");
  if (options.plan) add("dtk/plan.json", options.plan(), "dtk plan --json");
  for (const extra of options.extras ?? []) {
    try {
      add(extra.path, await extra.produce(), extra.path);
    } catch (error) {
      problem(extra.path, error);
    }
  }

  const since = manifest.limits.journalSince;
  const bytes = manifest.limits.journalBytesPerUnit;
  await Promise.all(config.vms.map(async ({ name: node }) => {
    const n = segment(node);
    try {
      for (const file of options.rendered(node)) {
        add(`rendered/${n}${file.path}`, file.content, `rendered for ${node}`);
      }
    } catch (error) {
      problem(`rendered files of ${node}`, error);
    }
    const remote = options.remote(node);
    if (!remote) {
      problem(`node ${node}`, "no address recorded");
      return;
    }
    const run = async (command: string, as: string) => {
      try {
        const r = await remote.exec(command, {
          timeoutMs,
          check: false,
          what: `${command} on ${node}`,
        });
        if (!r.success && r.stdout.trim() === "") {
          throw new Error(r.stderr.trim() || `exit ${r.code}`);
        }
        add(as, r.stdout, `${node}: ${command}`);
        return r.stdout;
      } catch (error) {
        problem(`${node}: ${command}`, error);
        return undefined;
      }
    };
    // Reachable at all? One quick command first, so a stopped node costs one timeout, not many.
    try {
      await remote.exec("true", { timeoutMs: Math.min(timeoutMs, 20_000) });
    } catch (error) {
      problem(`node ${node}`, error);
      return;
    }
    for (const unit of options.units(node)) {
      await run(
        `journalctl -u ${shellQuote(unit)} --since ${
          shellQuote(since)
        } --no-pager -o short-iso 2>&1 | tail -c ${bytes}`,
        `nodes/${n}/journal/${segment(unit)}.log`,
      );
    }
    await run(
      `systemctl status --no-pager -n 0 ${
        options.units(node).map(shellQuote).join(" ")
      } 2>&1; systemctl --failed --no-pager 2>&1`,
      `nodes/${n}/systemctl-status.txt`,
    );
    await run("crictl ps -a 2>&1", `nodes/${n}/crictl-ps.txt`);
    const json = await remote.exec("crictl ps -a -o json", { timeoutMs, check: false }).then(
      (r) => r.success ? r.stdout : "",
      () => "",
    );
    for (const c of failingContainers(json)) {
      await run(
        `crictl logs --tail ${manifest.limits.containerLogLines} ${shellQuote(c.id)} 2>&1`,
        `nodes/${n}/containers/${segment(c.name)}-${c.id.slice(0, 12)}.log`,
      );
    }
  }));

  // The cluster as the apiserver sees it.
  const kubeconfig = pkiLayout(config).kubeconfig("admin");
  if (await exists(kubeconfig)) {
    for (
      const [args, as] of [
        [["get", "events", "-A", "-o", "wide", "--sort-by=.lastTimestamp"], "cluster/events.txt"],
        [["describe", "nodes"], "cluster/nodes.txt"],
        [["get", "pods", "-A", "-o", "wide"], "cluster/pods.txt"],
      ] as const
    ) {
      const argv = ["kubectl", "--kubeconfig", kubeconfig, "--request-timeout=20s", ...args];
      try {
        const r = await options.runner.run(argv, { timeoutMs, check: false });
        if (!r.success) throw new Error(r.stderr.trim() || `exit ${r.code}`);
        add(as, r.stdout, `kubectl ${args.join(" ")}`);
      } catch (error) {
        problem(`kubectl ${args.join(" ")}`, error);
      }
    }
  } else problem("kubectl", "the cluster has no admin kubeconfig yet");

  manifest.files.sort((a, b) => a.path.localeCompare(b.path));
  const sorted = entries.sort((a, b) => a.name.localeCompare(b.name));
  // The last line of defence: no secret value may be in the bundle, whatever path it came by.
  const decoder = new TextDecoder();
  for (const e of sorted) {
    const text = decoder.decode(e.data);
    for (const secret of redactor.secrets) {
      if (text.includes(secret)) {
        throw new DtkError(
          `A secret of the cluster is in ${q(relative(top, e.name))} after redaction`,
          {
            hint: "This is a bug in dtk's redaction; the bundle was not written",
          },
        );
      }
    }
  }
  const manifestText = JSON.stringify(manifest, null, 2) + "\n";
  sorted.unshift({ name: `${top}/manifest.json`, data: encoder.encode(manifestText), mode: 0o644 });
  return { entries: sorted, manifest, redactor };
}

/** Writes the entries as a gzip-compressed tar, atomically. */
export async function writeBundle(path: string, entries: readonly TarEntry[]): Promise<number> {
  const tar = tarArchive(entries);
  const gz = new Uint8Array(
    await new Response(
      new Blob([tar as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        new CompressionStream("gzip"),
      ),
    )
      .arrayBuffer(),
  );
  await writeFileAtomic(path, gz, { mode: 0o644 });
  return gz.length;
}
