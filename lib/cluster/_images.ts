/**
 * The lock's container images during `cluster create`: dtk's registry on the host address the
 * nodes reach (for as long as the create runs), the `hosts.toml` input that points containerd
 * at it, an OCI archive over ssh for a node that cannot reach it, and at the end every locked
 * image present and pinned on the nodes, so that the cluster runs when dtk does not.
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";
import { shellQuote } from "../exec/mod.ts";
import {
  DEFAULT_REGISTRY_PORT,
  hostPort,
  type IndexedImage,
  lockedImages,
  lockIndex,
  normalName,
  ociArchive,
  type RegistryIndex,
  type RegistryServer,
  startRegistry,
} from "../registry/mod.ts";
import type { ImageRegistryInput } from "../render/mod.ts";
import { NODE_PATHS } from "../render/mod.ts";
import type { Remote } from "../remote/mod.ts";
import type { Lockfile, ObjectStore } from "../../store/mod.ts";
import type { Driver } from "../../drivers/types.ts";

/** The label that keeps kubelet's image GC away from an image (CRI). */
export const PINNED_LABEL = "io.cri-containerd.pinned=pinned";

export interface ClusterImagesOptions {
  lock: Lockfile;
  store: ObjectStore;
  driver: Pick<Driver, "hostEndpoint">;
  /** `--offline`: dtk's registry is the `server` of every registry too. */
  offline: boolean;
  /** The cluster's arch (`linux/<arch>` for imports). */
  arch: string;
  /** Default `DEFAULT_REGISTRY_PORT`; 0 (tests) picks a free one. */
  port?: number;
  lockPath?: string;
  /** containerd's socket on the nodes. */
  socket?: string;
  log?: { info(text: string): void; warn(text: string): void; debug(text: string): void };
}

/** One image record of `ctr images ls`. */
export interface NodeImage {
  ref: string;
  digest: string;
  labels: string;
}

/** Parses `ctr images ls` (REF TYPE DIGEST SIZE PLATFORMS LABELS; sizes have a space). */
export function parseImageList(text: string): NodeImage[] {
  const out: NodeImage[] = [];
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    const digest = cols.find((c) => /^sha256:[0-9a-f]{64}$/.test(c));
    if (cols[0] === undefined || cols[0] === "" || digest === undefined) continue;
    out.push({ ref: cols[0], digest, labels: cols[cols.length - 1] ?? "" });
  }
  return out;
}

export class ClusterImages {
  readonly #o: ClusterImagesOptions;
  readonly #socket: string;
  #index: Promise<RegistryIndex> | undefined;
  #serving: Promise<{ input: ImageRegistryInput; server: RegistryServer } | undefined> | undefined;

  constructor(options: ClusterImagesOptions) {
    this.#o = options;
    this.#socket = options.socket ?? NODE_PATHS.containerdSocket;
  }

  /** True when the lock names images. */
  get enabled(): boolean {
    return lockedImages(this.#o.lock).length > 0;
  }

  /** The lock's images, every blob checked present in the store (once). */
  index(): Promise<RegistryIndex> {
    this.#index ??= lockIndex(this.#o.lock, {
      store: this.#o.store,
      lockPath: this.#o.lockPath,
    });
    return this.#index;
  }

  /**
   * Starts dtk's registry on the driver's host endpoint (once) and returns what the hosts.toml
   * files need; undefined when the lock has no images or the nodes have no route to the host.
   */
  registry(): Promise<ImageRegistryInput | undefined> {
    this.#serving ??= this.#start();
    return this.#serving.then((s) => s?.input);
  }

  async #start(): Promise<{ input: ImageRegistryInput; server: RegistryServer } | undefined> {
    if (!this.enabled) {
      if (this.#o.offline) {
        this.#o.log?.warn(
          "The lock names no container images: with --offline the nodes find none (run dtk lock)",
        );
      }
      return undefined;
    }
    const endpoint = await this.#o.driver.hostEndpoint?.();
    if (endpoint === undefined) {
      this.#o.log?.warn(
        "The nodes have no known route to this host: images go to them over ssh",
      );
      return undefined;
    }
    const index = await this.index();
    let server: RegistryServer;
    try {
      server = startRegistry(index, {
        hostname: endpoint.listen,
        port: this.#o.port ?? DEFAULT_REGISTRY_PORT,
        objectPath: (hex) => this.#o.store.objectPath(hex),
        onError: (error) => this.#o.log?.warn(`registry: ${(error as Error).message}`),
      });
    } catch (error) {
      if (!(error instanceof DtkError)) throw error;
      throw new DtkError(error.message, {
        hint: "Stop what listens there (another dtk registry or cluster create?), then run " +
          "dtk cluster create again; dtk doctor checks the port",
        cause: error,
      });
    }
    const reach = hostPort(endpoint.reach, server.port);
    this.#o.log?.info(
      `  serving ${index.images.length} image(s) to the nodes at http://${reach}` +
        (this.#o.offline ? " (offline: nothing goes upstream)" : ""),
    );
    return {
      server,
      input: {
        endpoint: `http://${reach}`,
        registries: index.registries(),
        offline: this.#o.offline,
      },
    };
  }

  /** Stops the registry (requests in flight get a second). */
  async close(): Promise<void> {
    const serving = await this.#serving?.catch(() => undefined);
    await serving?.server.shutdown(1000);
  }

  /** True when `remote`'s node reaches dtk's registry (over HTTP, 5 s). */
  async reachable(remote: Remote): Promise<boolean> {
    const input = await this.registry();
    if (input === undefined) return false;
    const url = `${input.endpoint}/v2/`;
    const { hostname, port } = new URL(input.endpoint);
    const host = hostname.replace(/^\[|\]$/g, "");
    const probe = `if command -v curl >/dev/null 2>&1; then curl -fsS -m 5 -o /dev/null ${
      shellQuote(url)
    }; else timeout 5 bash -c ${shellQuote(`exec 3<>/dev/tcp/${host}/${port}`)}; fi`;
    const r = await remote.exec(probe, { timeoutMs: 15_000, check: false });
    return r.success;
  }

  /** The image records of the node's `k8s.io` namespace. */
  async list(remote: Remote): Promise<NodeImage[]> {
    const r = await remote.exec(`ctr -n k8s.io -a ${shellQuote(this.#socket)} images ls`, {
      timeoutMs: 60_000,
      what: `list the images on ${q(remote.node)}`,
    });
    return parseImageList(r.stdout);
  }

  /**
   * Streams `images` from the store into the node's containerd as one OCI archive. The archive
   * names each image by tag and by digest itself; `--digests` would add `import-<date>@…` names,
   * which the CRI reads as `docker.io/library/import-…` and trips over once they are gone.
   */
  async importArchive(remote: Remote, images: readonly IndexedImage[]): Promise<void> {
    if (images.length === 0) return;
    const command = `ctr -n k8s.io -a ${shellQuote(this.#socket)} images import --platform ${
      shellQuote(`linux/${this.#o.arch}`)
    } -`;
    await remote.pipe(
      command,
      ociArchive(images, { objectPath: (h) => this.#o.store.objectPath(h) }),
      {
        timeoutMs: 30 * 60_000,
        what: `import of ${images.length} image(s) from dtk's store`,
      },
    );
  }

  /**
   * After containerd is up on a node: when it cannot reach dtk's registry, the images go over
   * ssh instead. Returns how the node gets its images.
   */
  async prepareNode(remote: Remote): Promise<"registry" | "archive" | "none"> {
    if (!this.enabled) return "none";
    if (await this.reachable(remote)) return "registry";
    if ((await this.registry()) !== undefined) {
      this.#o.log?.warn(
        `Node ${q(remote.node)} cannot reach dtk's registry: its images go over ssh`,
      );
    }
    const index = await this.index();
    const present = new Set((await this.list(remote)).map((i) => i.digest));
    await this.importArchive(remote, index.images.filter((i) => !present.has(`sha256:${i.hex}`)));
    return "archive";
  }

  /**
   * Every image of `wanted` (default: all of the lock) present on the node (what is missing
   * comes from the store over ssh) and pinned: every record naming a locked digest is labelled.
   */
  async pin(
    remote: Remote,
    wanted: (image: IndexedImage) => boolean = () => true,
  ): Promise<{ imported: string[]; pinned: string[] }> {
    const index = await this.index();
    const images = index.images.filter(wanted);
    let records = await this.list(remote);
    const missing = images.filter((i) => !records.some((r) => r.digest === `sha256:${i.hex}`));
    if (missing.length > 0) {
      await this.importArchive(remote, missing);
      records = await this.list(remote);
    }
    const digests = new Set(images.map((i) => `sha256:${i.hex}`));
    const refs = records.filter((r) => digests.has(r.digest)).map((r) => r.ref);
    const still = images.filter((i) => !records.some((r) => r.digest === `sha256:${i.hex}`));
    if (still.length > 0) {
      throw new DtkError(
        `Node ${q(remote.node)} lacks ${still.length} locked image(s) after the import: ${
          still.map((i) => q(normalName(i))).join(", ")
        }`,
        { hint: `See: dtk ssh ${remote.node} ctr -n k8s.io images ls` },
      );
    }
    const label = refs.map((ref) =>
      `ctr -n k8s.io -a ${shellQuote(this.#socket)} images label ${
        shellQuote(ref)
      } ${PINNED_LABEL} >/dev/null`
    );
    for (let at = 0; at < label.length; at += 20) {
      await remote.exec(label.slice(at, at + 20).join(" && "), {
        timeoutMs: 60_000,
        what: `pin the locked images on ${q(remote.node)}`,
      });
    }
    return { imported: missing.map((i) => i.name), pinned: refs };
  }
}
