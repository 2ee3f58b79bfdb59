/**
 * The cluster's certificate matrix (upstream spec §4.8): which identities exist, and what each
 * certificate must say for the current config and node addresses. Pure data.
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";
import type { Config } from "../config/types.ts";
import { canonicalIp, firstHostIp } from "./_ip.ts";
import type { DistinguishedName, LeafProfile } from "./_x509.ts";

/** A node and the address certificates name it by. Node 0 is the controller. */
export interface NodeIp {
  name: string;
  ip: string;
}

/** What of the config the PKI depends on. */
export type PkiConfig = Pick<Config, "cluster" | "k8s" | "vms" | "source">;

/** One row of the matrix. */
export interface IdentitySpec extends LeafProfile {
  /** File stem: `<identity>.pem`, `<identity>-key.pem`, `<identity>.kubeconfig`. */
  identity: string;
  /** Whether a kubeconfig is made for it. */
  kubeconfig: boolean;
  /** Who uses it, for `dtk certs list`. */
  usedBy: string;
}

/** The static identities, in the order they are listed. */
export const STATIC_IDENTITIES = [
  "admin",
  "kubernetes",
  "service-account",
  "aggregator",
  "kube-controller-manager",
  "kube-scheduler",
  "kube-proxy",
] as const;

/** The CA's subject: names the cluster, so that two clusters' CAs are told apart. */
export function caSubject(clusterName: string): DistinguishedName {
  return [["O", "dtk"], ["CN", `${clusterName}-ca`]];
}

// Kubernetes node names are DNS-1123 subdomains.
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Checks the node list against the config: every VM exactly once, the controller (`vms[0]`)
 * first, valid IPs. Returns the nodes with canonical IPs.
 */
export function validateNodes(config: PkiConfig, nodes: readonly NodeIp[]): NodeIp[] {
  const wanted = config.vms.map((vm) => vm.name);
  const given = nodes.map((n) => n.name);
  const problem = (message: string) =>
    new DtkError(message, {
      hint: "Pass one address per VM of the config, the controller (vms[0]) first",
    });
  if (wanted.length === 0) throw problem("The config lists no VMs");
  if (given.length !== new Set(given).size) {
    throw problem(`Duplicate node in ${q(given.join(","))}`);
  }
  const missing = wanted.filter((n) => !given.includes(n));
  if (missing.length > 0) throw problem(`No address given for node ${q(missing.join(","))}`);
  const extra = given.filter((n) => !wanted.includes(n));
  if (extra.length > 0) throw problem(`Node ${q(extra.join(","))} is not in the config`);
  if (given[0] !== wanted[0]) {
    throw problem(`The first node must be the controller ${q(wanted[0])}, not ${q(given[0])}`);
  }
  return nodes.map((node) => {
    if (!DNS_SUBDOMAIN.test(node.name)) {
      throw new DtkError(`Node name ${q(node.name)} is not a valid host name`, {
        hint: "Use lower-case letters, digits, '-' and '.' in VM names",
      });
    }
    const ip = canonicalIp(node.ip);
    if (!ip) {
      throw new DtkError(`Address ${q(node.ip)} of node ${q(node.name)} is not an IP address`);
    }
    return { name: node.name, ip };
  });
}

/** The `kubernetes` Service IPs: the first host of each service CIDR. */
export function serviceIps(config: PkiConfig): string[] {
  return config.k8s.serviceCidr.split(",").map((cidr) => {
    const ip = firstHostIp(cidr);
    if (!ip) {
      throw new DtkError(`Service CIDR ${q(cidr)} is not a usable CIDR`, {
        hint: "Set k8s.service-cidr to a range such as 10.32.0.0/24",
      });
    }
    return ip;
  });
}

/** The `kubernetes` certificate's DNS names for a cluster domain and controller host name. */
export function kubernetesDnsNames(clusterDomain: string, controller: string): string[] {
  const names = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    `kubernetes.default.svc.${clusterDomain}`,
    controller,
  ];
  return [...new Set(names)];
}

/** Every certificate the config needs, given the nodes' addresses (already validated). */
export function certificateMatrix(config: PkiConfig, nodes: readonly NodeIp[]): IdentitySpec[] {
  const controller = nodes[0];
  if (!controller) throw new DtkError("No nodes given");
  const client = { dnsNames: [], ipAddresses: [], serverAuth: false, clientAuth: true } as const;
  const specs: IdentitySpec[] = [
    {
      identity: "admin",
      subject: [["O", "system:masters"], ["CN", "admin"]],
      ...client,
      kubeconfig: true,
      usedBy: "kubectl and helm on the host",
    },
    {
      identity: "kubernetes",
      subject: [["CN", "kubernetes"]],
      dnsNames: kubernetesDnsNames(config.k8s.clusterDomain, controller.name),
      ipAddresses: [...new Set([controller.ip, "127.0.0.1", ...serviceIps(config)])],
      // Serving for the apiserver and etcd; client for etcd peers, apiserver→etcd and →kubelet.
      serverAuth: true,
      clientAuth: true,
      kubeconfig: false,
      usedBy: "kube-apiserver serving, etcd server and peer, apiserver etcd and kubelet client",
    },
    {
      identity: "service-account",
      subject: [["CN", "service-account"]],
      // Only its key is used (service account token signing); never presented in TLS.
      // SEC1, because kube-apiserver reads the public half for --service-account-key-file
      // from this same file, and that reader knows PKCS#1/SEC1 private keys but not PKCS#8.
      keyFormat: "sec1",
      dnsNames: [],
      ipAddresses: [],
      serverAuth: false,
      clientAuth: false,
      kubeconfig: false,
      usedBy: "service account token signing (apiserver, controller-manager)",
    },
    {
      identity: "aggregator",
      subject: [["O", "k8s"], ["OU", "system"], ["CN", "aggregator"]],
      ...client,
      kubeconfig: false,
      usedBy: "kube-apiserver front-proxy client",
    },
    {
      identity: "kube-controller-manager",
      subject: [["CN", "system:kube-controller-manager"]],
      ...client,
      kubeconfig: true,
      usedBy: "kube-controller-manager",
    },
    {
      identity: "kube-scheduler",
      subject: [["CN", "system:kube-scheduler"]],
      ...client,
      kubeconfig: true,
      usedBy: "kube-scheduler",
    },
  ];
  if (config.k8s.kubeProxy) {
    specs.push({
      identity: "kube-proxy",
      subject: [["O", "system:node-proxier"], ["CN", "system:kube-proxy"]],
      ...client,
      kubeconfig: true,
      usedBy: "kube-proxy on every node",
    });
  }
  for (const node of nodes) {
    specs.push({
      identity: `kubelet-${node.name}`,
      subject: [["O", "system:nodes"], ["CN", `system:node:${node.name}`]],
      dnsNames: [node.name],
      ipAddresses: [node.ip],
      serverAuth: true,
      clientAuth: true,
      kubeconfig: true,
      usedBy: `kubelet on ${node.name} (serving and client)`,
    });
  }
  return specs;
}
