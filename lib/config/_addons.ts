/**
 * What config validation needs to know of the add-ons: their names, which are CNIs, and what
 * each needs installed before it. The add-on registry (`lib/addons`) builds on these.
 */

/** Every add-on of the original, in its default order (vcluster is not in the default list). */
export const ADDON_NAMES = [
  "calico",
  "cilium",
  "coredns",
  "ingress-nginx",
  "nginx-gateway-fabric",
  "cert-manager",
  "external-dns",
  "kube-prometheus-stack",
  "headlamp",
  "kubernetes-dashboard",
  "metrics-server",
  "openebs",
  "nfs-provisioner",
  "vcluster",
] as const;

export type AddonName = typeof ADDON_NAMES[number];

/** Add-ons that provide the pod network. At most one may be enabled. */
export const CNI_ADDONS: readonly AddonName[] = ["calico", "cilium"];

/** Add-ons each add-on needs enabled and installed before it. */
export const ADDON_REQUIRES: Readonly<Partial<Record<AddonName, readonly AddonName[]>>> = {
  "headlamp": ["nginx-gateway-fabric"],
  "kubernetes-dashboard": ["ingress-nginx", "cert-manager"],
};

export function isAddonName(name: string): name is AddonName {
  return (ADDON_NAMES as readonly string[]).includes(name);
}
