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

/**
 * Add-ons that need at least one of a set installed before them. vcluster's chart keeps the
 * virtual cluster's state on a PersistentVolumeClaim without a storageClassName, which stays
 * Pending unless a default StorageClass exists (openebs and nfs-provisioner make one).
 */
export const ADDON_REQUIRES_ONE_OF: Readonly<Partial<Record<AddonName, readonly AddonName[]>>> = {
  "vcluster": ["openebs", "nfs-provisioner"],
};

/**
 * Pairs that cannot run together. ingress-nginx (host network, DaemonSet) and
 * nginx-gateway-fabric (host port 80 on the controller) both bind the controller's port 80:
 * whichever comes second never schedules there.
 */
export const ADDON_CONFLICTS: readonly (readonly [AddonName, AddonName, string])[] = [
  [
    "ingress-nginx",
    "nginx-gateway-fabric",
    "both take port 80 on the controller node (ingress-nginx on the host network, NGINX Gateway Fabric by a host port)",
  ],
];

export function isAddonName(name: string): name is AddonName {
  return (ADDON_NAMES as readonly string[]).includes(name);
}
