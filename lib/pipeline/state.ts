/**
 * The cluster's state file, `generated/<cluster>/state.json`: which steps are done, with a digest
 * of their inputs, and what was learnt about the nodes. A re-run skips a step whose digest is
 * unchanged. Every save is atomic, so a crash or Ctrl-C never leaves it half written.
 *
 * @module
 */
import { writeFileAtomic } from "../fs/mod.ts";
import type { NodeAddress } from "../../drivers/types.ts";

export interface StepRecord {
  digest: string;
  finishedAt: string;
  elapsedMs: number;
}

/** What `dtk cluster list` shows of a cluster without loading its config. */
export interface ClusterMeta {
  /** The config file (absolute, or `<built-in>`). */
  config: string;
  /** The folder of the config (where `dtk.lock` and `generated/` live). */
  configDir: string;
  virt: string;
  kubernetes: string;
  nodes: string[];
  /** When a create first succeeded. */
  createdAt?: string;
  lastCreate?: {
    result: "ok" | "failed" | "interrupted";
    at: string;
    log?: string;
    error?: string;
  };
}

export interface StateData {
  version: 1;
  cluster: string;
  steps: Record<string, StepRecord>;
  nodes: Record<string, NodeAddress>;
  meta?: ClusterMeta;
}

export class StateStore {
  readonly path: string;
  #data: StateData;
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, data: StateData) {
    this.path = path;
    this.#data = data;
  }

  /** Loads the state file, or starts an empty one when there is none. */
  static async open(path: string, cluster: string): Promise<StateStore> {
    try {
      const data = JSON.parse(await Deno.readTextFile(path)) as StateData;
      if (data.version === 1 && data.cluster === cluster) {
        return new StateStore(path, { ...data, steps: data.steps ?? {}, nodes: data.nodes ?? {} });
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) && !(error instanceof SyntaxError)) throw error;
    }
    return new StateStore(path, { version: 1, cluster, steps: {}, nodes: {} });
  }

  /** An in-memory store (tests, `dtk plan`). */
  static memory(cluster: string): StateStore {
    return new StateStore("", { version: 1, cluster, steps: {}, nodes: {} });
  }

  step(id: string): StepRecord | undefined {
    return this.#data.steps[id];
  }

  node(name: string): NodeAddress | undefined {
    return this.#data.nodes[name];
  }

  get data(): Readonly<StateData> {
    return this.#data;
  }

  async recordStep(id: string, record: StepRecord): Promise<void> {
    this.#data.steps[id] = record;
    await this.#save();
  }

  async forgetStep(id: string): Promise<void> {
    delete this.#data.steps[id];
    await this.#save();
  }

  /** Merges `meta` into the recorded facts about the cluster. */
  async recordMeta(meta: Partial<ClusterMeta>): Promise<void> {
    this.#data.meta = { ...this.#data.meta, ...meta } as ClusterMeta;
    await this.#save();
  }

  async recordNode(name: string, address: NodeAddress): Promise<void> {
    this.#data.nodes[name] = address;
    await this.#save();
  }

  /** Saves are serialised: concurrent steps finishing together never interleave writes. */
  #save(): Promise<void> {
    if (this.path === "") return Promise.resolve();
    const text = JSON.stringify(this.#data, null, 2) + "\n";
    this.#writing = this.#writing.then(() => writeFileAtomic(this.path, text, { mode: 0o644 }));
    return this.#writing;
  }
}
