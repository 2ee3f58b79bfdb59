/**
 * Kubeconfigs written by dtk itself (no `kubectl config`). Cluster and context are named after
 * the dtk cluster and the user after identity and cluster, so that the kubeconfigs of several
 * clusters merge into one `~/.kube/config` without one entry shadowing another.
 *
 * @module
 */
import { parse, stringify } from "yaml";
import { decodeBase64, encodeBase64 } from "./_base64.ts";

export interface KubeconfigInput {
  /** Names the cluster entry and the context. */
  clusterName: string;
  /** Names the user entry. */
  userName: string;
  /** `https://<controller IP>:6443` */
  server: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** The user entry's name for an identity of a cluster: `admin@dev`. */
export function kubeconfigUserName(identity: string, clusterName: string): string {
  return `${identity}@${clusterName}`;
}

/** The apiserver URL for a controller address (IPv6 in brackets). */
export function apiServerUrl(controllerIp: string): string {
  return controllerIp.includes(":")
    ? `https://[${controllerIp}]:6443`
    : `https://${controllerIp}:6443`;
}

const b64 = (text: string) => encodeBase64(new TextEncoder().encode(text));

/** Renders a kubeconfig with the certificates embedded. Same input, same bytes. */
export function renderKubeconfig(input: KubeconfigInput): string {
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: input.clusterName,
      cluster: { "certificate-authority-data": b64(input.caPem), server: input.server },
    }],
    users: [{
      name: input.userName,
      user: {
        "client-certificate-data": b64(input.certPem),
        "client-key-data": b64(input.keyPem),
      },
    }],
    contexts: [{
      name: input.clusterName,
      context: { cluster: input.clusterName, user: input.userName },
    }],
    "current-context": input.clusterName,
    preferences: {},
  };
  return stringify(doc, { lineWidth: 0 });
}

/** What a kubeconfig dtk wrote says; throws `Error` when it is not one. */
export function parseKubeconfig(text: string): KubeconfigInput {
  const doc = parse(text) as Record<string, unknown> | null;
  const first = (key: string) => {
    const list = doc?.[key];
    if (!Array.isArray(list) || list.length !== 1) throw new Error(`expected one entry in ${key}`);
    return list[0] as Record<string, Record<string, unknown> | string | undefined>;
  };
  const cluster = first("clusters");
  const user = first("users");
  const context = first("contexts");
  const field = (entry: Record<string, unknown> | string | undefined, key: string): string => {
    const value = typeof entry === "object" ? entry[key] : undefined;
    if (typeof value !== "string") throw new Error(`missing ${key}`);
    return value;
  };
  const text64 = (value: string) => new TextDecoder().decode(decodeBase64(value));
  const clusterName = String(cluster.name);
  const userName = String(user.name);
  if (doc?.["current-context"] !== context.name) throw new Error("current-context is not set");
  if (field(context.context, "cluster") !== clusterName) {
    throw new Error("context names another cluster");
  }
  if (field(context.context, "user") !== userName) throw new Error("context names another user");
  return {
    clusterName,
    userName,
    server: field(cluster.cluster, "server"),
    caPem: text64(field(cluster.cluster, "certificate-authority-data")),
    certPem: text64(field(user.user, "client-certificate-data")),
    keyPem: text64(field(user.user, "client-key-data")),
  };
}
