/**
 * A small client of the Kubernetes API over `fetch`, authenticated with a client certificate
 * from a kubeconfig dtk wrote. Enough for dtk's health gates, RBAC, labels and `verify`; no
 * kubectl needed for them.
 *
 * @module
 */
import { parse } from "yaml";
import { DtkError, q, TimeoutError } from "../errors/mod.ts";
import { readTextAtMost } from "../http/mod.ts";

/** Far more than any answer dtk asks the apiserver for (a node list, a CSR). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export interface KubeCredentials {
  server: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** Reads the server, CA and client certificate of a kubeconfig with embedded data. */
export function credentialsFromKubeconfig(text: string): KubeCredentials {
  const doc = parse(text) as {
    "current-context"?: string;
    contexts?: { name: string; context: { cluster: string; user: string } }[];
    clusters?: { name: string; cluster: Record<string, string> }[];
    users?: { name: string; user: Record<string, string> }[];
  };
  const ctx = doc.contexts?.find((c) => c.name === doc["current-context"]) ?? doc.contexts?.[0];
  const cluster = doc.clusters?.find((c) => c.name === ctx?.context.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx?.context.user)?.user;
  const b64 = (v: string | undefined, what: string) => {
    if (!v) throw new DtkError(`The kubeconfig has no ${what}`);
    return new TextDecoder().decode(Uint8Array.from(atob(v), (c) => c.charCodeAt(0)));
  };
  if (!cluster?.server) throw new DtkError("The kubeconfig has no server");
  return {
    server: cluster.server,
    caPem: b64(cluster["certificate-authority-data"], "certificate-authority-data"),
    certPem: b64(user?.["client-certificate-data"], "client-certificate-data"),
    keyPem: b64(user?.["client-key-data"], "client-key-data"),
  };
}

export interface KubeResponse {
  status: number;
  text: string;
}

export class KubeClient {
  readonly server: string;
  #client: Deno.HttpClient;
  #anonymous: Deno.HttpClient;

  constructor(credentials: KubeCredentials) {
    this.server = credentials.server.replace(/\/$/, "");
    this.#client = Deno.createHttpClient({
      caCerts: [credentials.caPem],
      cert: credentials.certPem,
      key: credentials.keyPem,
    });
    this.#anonymous = Deno.createHttpClient({ caCerts: [credentials.caPem] });
  }

  static async fromKubeconfigFile(path: string): Promise<KubeClient> {
    return new KubeClient(credentialsFromKubeconfig(await Deno.readTextFile(path)));
  }

  /** One request; network errors are thrown, HTTP errors returned. */
  async request(
    method: string,
    path: string,
    options: { body?: string; contentType?: string; anonymous?: boolean; timeoutMs?: number } = {},
  ): Promise<KubeResponse> {
    const response = await fetch(`${this.server}${path}`, {
      method,
      body: options.body,
      headers: options.contentType ? { "content-type": options.contentType } : undefined,
      client: options.anonymous ? this.#anonymous : this.#client,
      signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
    });
    const text = await readTextAtMost(response, MAX_RESPONSE_BYTES);
    if (text === undefined) {
      throw new DtkError(`${method} ${path} answered more than ${MAX_RESPONSE_BYTES} bytes`);
    }
    return { status: response.status, text };
  }

  async getJson<T>(path: string): Promise<T> {
    const r = await this.request("GET", path);
    if (r.status !== 200) {
      throw new DtkError(`GET ${path} answered ${r.status}`, { cause: r.text.slice(0, 500) });
    }
    return JSON.parse(r.text) as T;
  }

  /** Server-side apply of one object (YAML or JSON), as field manager `dtk`. */
  async apply(object: Record<string, unknown>): Promise<void> {
    const path = objectPath(object);
    const r = await this.request("PATCH", `${path}?fieldManager=dtk&force=true`, {
      body: JSON.stringify(object),
      contentType: "application/apply-patch+yaml",
    });
    if (r.status !== 200 && r.status !== 201) {
      throw new DtkError(`Applying ${q(path)} failed with HTTP ${r.status}`, {
        cause: r.text.slice(0, 500),
      });
    }
  }

  /** Merges labels into a node. */
  labelNode(name: string, labels: Record<string, string>): Promise<void> {
    return patchNode(this, name, { patch: { metadata: { labels } }, what: "Labelling node" });
  }

  close(): void {
    this.#client.close();
    this.#anonymous.close();
  }
}

/** The REST path of a namespaced or cluster-scoped object of the built-in groups. */
export function objectPath(object: Record<string, unknown>): string {
  const apiVersion = String(object.apiVersion ?? "");
  const kind = String(object.kind ?? "");
  const meta = (object.metadata ?? {}) as { name?: string; namespace?: string };
  if (!meta.name) throw new DtkError(`Object of kind ${q(kind)} has no name`);
  const plural = kind.toLowerCase().endsWith("y")
    ? `${kind.toLowerCase().slice(0, -1)}ies`
    : `${kind.toLowerCase()}s`;
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = meta.namespace ? `/namespaces/${meta.namespace}` : "";
  return `${base}${ns}/${plural}/${encodeURIComponent(meta.name)}`;
}

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  signal?: AbortSignal;
  /** Named in the timeout error: what was awaited. */
  what: string;
  hint?: string;
  /** An error that no retry can mend: thrown at once instead of polled on. */
  fatal?: (error: unknown) => boolean;
}

/** Calls `check` until it returns a value (not `undefined`), or times out naming `what`. */
export async function poll<T>(
  check: () => Promise<T | undefined>,
  options: PollOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown;
  while (true) {
    options.signal?.throwIfAborted();
    try {
      const value = await check();
      if (value !== undefined) return value;
      last = undefined;
    } catch (error) {
      if (options.fatal?.(error)) throw error;
      last = error;
    }
    if (Date.now() >= deadline) {
      throw new TimeoutError(options.what, {
        timeoutMs: options.timeoutMs,
        hint: options.hint,
        cause: last,
      });
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 1000));
  }
}

interface NodeList {
  items: {
    metadata: { name: string };
    spec?: { podCIDR?: string; podCIDRs?: string[] };
    status?: { conditions?: { type: string; status: string; message?: string }[] };
  }[];
}

/** What the node helpers need of the API (`KubeClient` has it; tests give a fake). */
export type KubeApi = Pick<KubeClient, "request" | "getJson">;

/** Names of the nodes that are registered, and of those Ready. */
export async function nodeReadiness(
  client: KubeApi,
): Promise<{ registered: string[]; ready: string[] }> {
  const list = await client.getJson<NodeList>("/api/v1/nodes");
  return readiness(list);
}

function readiness(list: NodeList): { registered: string[]; ready: string[] } {
  return {
    registered: list.items.map((n) => n.metadata.name),
    ready: list.items.filter((n) =>
      n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
    ).map((n) => n.metadata.name),
  };
}

/** A node's pod CIDR was set to another subnet than the one dtk gives it. */
export class PodCidrConflictError extends DtkError {}

/** One node that should get a pod CIDR, and where that value comes from (named in errors). */
export interface WantedPodCidr {
  cidr: string;
  /** The config key it comes from, e.g. `vms[1].pod-cidr`. */
  key: string;
}

/**
 * One look at the nodes: each registered node of `wanted` whose spec has no pod CIDR gets
 * its own (`spec.podCIDR` and `spec.podCIDRs`), so that everything reading the spec (Cilium's
 * `kubernetes` IPAM, kubelet) agrees with the node's bridge CNI. Idempotent: a node that
 * already has its CIDR is left alone. A node holding another CIDR is a `PodCidrConflictError`,
 * since the apiserver lets a node's pod CIDR be set only once, from empty (ValidateNodeUpdate
 * in kubernetes pkg/apis/core/validation/validation.go, v1.20.2 to v1.35.0: "node updates may
 * not change podCIDR except from \"\" to valid").
 */
export async function assignPodCidrs(
  client: KubeApi,
  wanted: ReadonlyMap<string, WantedPodCidr>,
): Promise<{ registered: string[]; ready: string[]; assigned: string[] }> {
  const list = await client.getJson<NodeList>("/api/v1/nodes");
  const assigned: string[] = [];
  for (const node of list.items) {
    const name = node.metadata.name;
    const want = wanted.get(name);
    if (!want) continue;
    const have = node.spec?.podCIDRs?.length
      ? node.spec.podCIDRs
      : node.spec?.podCIDR
      ? [node.spec.podCIDR]
      : [];
    if (have.length === 0) {
      await setPodCidr(client, name, want.cidr);
      assigned.push(name);
    } else if (have.length !== 1 || have[0] !== want.cidr) {
      throw new PodCidrConflictError(
        `Node ${q(name)} has pod CIDR ${have.map(q).join(", ")}, not its ${q(want.key)} ${
          q(want.cidr)
        }`,
        {
          hint: `A node's pod CIDR can be set only once (here by another allocator, such as a ` +
            `controller-manager with --allocate-node-cidrs=true). Set ${want.key} to ` +
            `${have[0]}, or re-register the node: kubectl delete node ${name}, then ` +
            `dtk ssh ${name} systemctl restart kubelet, then run dtk cluster create again`,
        },
      );
    }
  }
  return { ...readiness(list), assigned };
}

function setPodCidr(client: KubeApi, name: string, cidr: string): Promise<void> {
  // A refusal (e.g. a CIDR set meanwhile) is retried by the caller's poll, whose next look
  // sees the node's new spec and reports the conflict.
  return patchNode(client, name, {
    patch: { spec: { podCIDR: cidr, podCIDRs: [cidr] } },
    what: "Setting the pod CIDR of node",
  });
}

/** A JSON merge patch of Node `name`; `what` begins the error, e.g. "Labelling node". */
async function patchNode(
  client: KubeApi,
  name: string,
  options: { patch: unknown; what: string },
): Promise<void> {
  const r = await client.request("PATCH", `/api/v1/nodes/${encodeURIComponent(name)}`, {
    body: JSON.stringify(options.patch),
    contentType: "application/merge-patch+json",
  });
  if (r.status !== 200) {
    throw new DtkError(`${options.what} ${q(name)} failed with HTTP ${r.status}`, {
      cause: r.text.slice(0, 500),
    });
  }
}

/** The holder of a leader-election lease in kube-system, or `undefined`. */
export async function leaseHolder(client: KubeClient, name: string): Promise<string | undefined> {
  const r = await client.request(
    "GET",
    `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${name}`,
  );
  if (r.status !== 200) return undefined;
  const lease = JSON.parse(r.text) as { spec?: { holderIdentity?: string } };
  return lease.spec?.holderIdentity || undefined;
}
