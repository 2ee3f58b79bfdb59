/**
 * The data an add-on is made of: what the installer runs before and after helm, what it waits
 * for, and what the pipeline runs on the nodes.
 *
 * @module
 */
import type { AddonName, Config } from "../config/mod.ts";

export type { AddonName };

/** What the installer needs to know about the running cluster. Inputs, never guessed. */
export interface ClusterFacts {
  /** The controller's address (node 0): the apiserver, the gateway, the NFS server. */
  controllerIp: string;
  /** Every node's address, controller first. */
  nodeIps: string[];
  /** The cluster's random admin bearer token (made by the PKI); injected by headlamp and the dashboard. */
  adminToken: string;
  /**
   * The DNS webhook's token (`generated/<cluster>/dns-webhook.token`): only external-dns needs
   * it, and the caller reads or makes it then.
   */
  dnsWebhookToken?: string;
}

/** The apiserver's port: fixed in the original and in dtk. */
export const APISERVER_PORT = 6443;

/** A file a node step writes. */
export interface NodeFile {
  path: string;
  content: string;
  mode: number;
}

/**
 * Work on the nodes, run by the pipeline over its `Remote` (or by `dtk install-addon` over ssh).
 * Commands are shell lines run with `sh -c` as root, each idempotent, in order, after the files
 * are written.
 */
export interface NodeStep {
  /** Stable id, e.g. `calico/network-manager`. */
  id: string;
  description: string;
  on: "controller" | "all";
  files: NodeFile[];
  commands: string[];
}

/** What "ready" means for an add-on, checked with kubectl after helm, each bounded. */
export type ReadyCheck =
  | {
    kind: "rollout";
    resource: "daemonset" | "deployment" | "statefulset";
    name: string;
    namespace: string;
  }
  /** Every Deployment in the namespace has condition Available. */
  | { kind: "deployments"; namespace: string }
  /** `kubectl wait --for=condition=<condition>` on one object. */
  | { kind: "condition"; resource: string; name: string; namespace?: string; condition: string };

/** One kubectl invocation the installer makes before or after helm. */
export interface KubectlAction {
  kind: "kubectl";
  /** Shown in progress and errors, e.g. `apply ClusterIssuer "dtk-ca-issuer"`. */
  what: string;
  /** Arguments after `kubectl --kubeconfig <admin>`. */
  args: string[];
  /** Fed to kubectl (`apply -f -`), so objects with secrets never show in argv. */
  stdin?: string;
  /**
   * Retried until it succeeds or the apply timeout expires: the object's CRD, webhook or
   * operator-made target may appear only some time after helm returns.
   */
  retry: boolean;
}

/** Applies an artifact from the store (the Gateway API CRDs), unless its API group is served. */
export interface ApplyArtifactAction {
  kind: "apply-artifact";
  what: string;
  /** Lock name of the artifact, e.g. `gateway-api-crds`. */
  artifact: string;
  /** Skip when `kubectl api-resources --api-group=<group>` lists anything. */
  unlessApiGroup?: string;
}

/** An HTTP POST to the host-side DNS webhook (external-dns). */
export interface WebhookAction {
  kind: "webhook";
  what: string;
  url: string;
  /** JSON, sent as the webhook media type. */
  body: string;
  /** Sent as `Authorization: Bearer`; never logged. */
  token: string;
}

export type AddonAction = KubectlAction | ApplyArtifactAction | WebhookAction;

/** One image a chart pulls with dtk's values. */
export interface ChartImage {
  /** As the cluster pulls it, registry and tag spelled out: `quay.io/cilium/cilium:v1.18.5`. */
  ref: string;
  /** The digest the chart pins beside the tag (`image: name:tag@sha256:…`), when it does. */
  digest?: string;
  /** How it is pulled when not as a container of the chart's own pods (an operator flag, a hook job). */
  via?: string;
}

/** The images of one chart version, and where that list was read. */
export interface ChartImages {
  /** The repository, tag and files the list was read from. */
  source: string;
  /** True when read from the chart's own source at that version; false from a second-hand list. */
  fromChartSource: boolean;
  images: readonly ChartImage[];
  /** Images the chart renders that never run (removed before they start): not locked, not warned. */
  notPulled?: readonly string[];
}

/** Everything the registry knows of one add-on. */
export interface AddonDefinition {
  name: AddonName;
  /** One-line description for `dtk addons list`. */
  description: string;
  release: string;
  namespace: string;
  /** Provides the pod network; at most one may be enabled. */
  cni: boolean;
  /** Add-ons that must be installed before this one. */
  requires: readonly AddonName[];
  /** At least one of these must be installed before this one (a default StorageClass). */
  requiresOneOf: readonly AddonName[];
  /** Lock names of the artifacts besides the chart that this add-on applies. */
  artifacts: readonly string[];
  /** Whether helm itself waits (`--wait`); false when a sidecar must be removed first. */
  helmWait: boolean;
  /** The values file contains the admin token: written 0600. */
  secretValues: boolean;
  /**
   * The images the chart pulls with dtk's values, per chart version (`dtk lock` locks them, the
   * nodes get them from dtk's registry). A version not listed here cannot be locked offline.
   */
  images: Readonly<Record<string, ChartImages>>;
  values(input: RenderInput): Record<string, unknown>;
  /** Before helm (CRDs, webhook set-up). */
  before(input: RenderInput): AddonAction[];
  /** After helm (objects, patches, restarts). */
  after(input: RenderInput): AddonAction[];
  ready(input: RenderInput): ReadyCheck[];
  nodeSteps(input: RenderInput): NodeStep[];
}

/** What rendering an add-on needs: the config and the facts of the running cluster. */
export interface RenderInput {
  config: Config;
  facts: ClusterFacts;
  /** The `addons[]` entry for this add-on, when the config has one. */
  entry: Config["addons"][number] | undefined;
}
