/**
 * `dtk cluster list`: every cluster dtk knows on this machine. They are found from the store's
 * roots (each cluster's folder, registered by `cluster create`; each lock, beside whose config a
 * `generated/` folder may hold clusters) and from extra folders (the current one), then read
 * from their state files. A cluster whose folder or config is gone is listed as such.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { exists } from "../fs/mod.ts";
import type { ClusterMeta, StateData } from "../pipeline/state.ts";
import type { VmState } from "../../drivers/types.ts";

export type FolderState = "present" | "gone";

export interface ClusterEntry {
  name: string;
  /** `generated/<name>`. */
  dir: string;
  folder: FolderState;
  /** The config file, `<built-in>`, or undefined when the state does not record it. */
  config: string | undefined;
  configState: "present" | "gone" | "unknown" | "built-in";
  driver: string | undefined;
  nodes: string[];
  kubernetes: string | undefined;
  /** Per VM, from the driver; empty when it could not be asked. */
  vmStates: Record<string, VmState>;
  /** `running`, `stopped`, `paused`, `missing`, `partial (1/3 running)`, or `unknown`. */
  vms: string;
  createdAt: string | undefined;
  lastCreate: ClusterMeta["lastCreate"];
  /** Why the VM state is unknown. */
  note?: string;
}

export interface ListSources {
  /** Root records of the store: `{ path, kind }`. */
  roots: readonly { path: string; kind: string }[];
  /** Folders whose `generated/` is searched too (the current one). */
  extraDirs: readonly string[];
}

/** The cluster folders named by the sources, deduplicated, sorted. */
export async function clusterFolders(sources: ListSources): Promise<string[]> {
  const found = new Set<string>();
  const scan = async (configDir: string) => {
    try {
      for await (const e of Deno.readDir(join(configDir, "generated"))) {
        if (e.isDirectory && await exists(join(configDir, "generated", e.name, "state.json"))) {
          found.add(join(configDir, "generated", e.name));
        }
      }
    } catch { /* no generated/ there */ }
  };
  for (const root of sources.roots) {
    if (root.kind === "cluster") found.add(root.path);
    else await scan(dirname(root.path));
  }
  for (const dir of sources.extraDirs) await scan(dir);
  return [...found].sort();
}

/** What a VM-state list says as one word or phrase. */
export function aggregateVms(states: readonly VmState[]): string {
  if (states.length === 0) return "unknown";
  const all = (s: VmState) => states.every((x) => x === s);
  if (all("running")) return "running";
  if (all("stopped")) return "stopped";
  if (all("paused")) return "paused";
  if (all("absent")) return "missing";
  if (states.includes("unknown")) return "unknown";
  return `partial (${states.filter((s) => s === "running").length}/${states.length} running)`;
}

/** One cluster folder read into an entry (VM state not yet asked). */
export async function readEntry(dir: string): Promise<ClusterEntry> {
  const base: ClusterEntry = {
    name: basename(dir),
    dir,
    folder: "gone",
    config: undefined,
    configState: "unknown",
    driver: undefined,
    nodes: [],
    kubernetes: undefined,
    vmStates: {},
    vms: "unknown",
    createdAt: undefined,
    lastCreate: undefined,
  };
  let state: StateData;
  try {
    state = JSON.parse(await Deno.readTextFile(join(dir, "state.json"))) as StateData;
  } catch {
    return { ...base, folder: await exists(dir) ? "present" : "gone", note: "no state file" };
  }
  const meta = state.meta;
  const config = meta?.config;
  return {
    ...base,
    name: state.cluster ?? base.name,
    folder: "present",
    config,
    configState: config === undefined
      ? "unknown"
      : config === "<built-in>"
      ? "built-in"
      : await exists(config)
      ? "present"
      : "gone",
    driver: meta?.virt,
    nodes: meta?.nodes ?? Object.keys(state.nodes ?? {}),
    kubernetes: meta?.kubernetes,
    createdAt: meta?.createdAt,
    lastCreate: meta?.lastCreate,
  };
}
