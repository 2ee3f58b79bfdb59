/**
 * The config schema as data: every key with its type, default and meaning. The decoder checks
 * types against it, fills defaults from it, and a test keeps the README's config reference in
 * step with it.
 */

export type Field =
  | {
    kind: "string";
    doc: string;
    default?: string;
    /** Allowed values (after aliases). */
    enum?: readonly string[];
    aliases?: Readonly<Record<string, string>>;
    /** Values accepted but never listed in docs or messages (test-only drivers). */
    hidden?: readonly string[];
    /** Also accepts a number and keeps its source text (`containerd: 2.1`). */
    numeric?: boolean;
    multiline?: boolean;
  }
  | { kind: "bool"; doc: string; default: boolean }
  | { kind: "int"; doc: string; default?: number; min: number; max: number }
  | { kind: "strings"; doc: string; default: readonly string[] }
  | { kind: "map"; doc: string; fields: Readonly<Record<string, Field>>; hidden?: boolean }
  | { kind: "list"; doc: string; item: Field & { kind: "map" } }
  /** Free-form (hidden test settings). */
  | { kind: "any"; doc: string; hidden: true };

const addonFields = {
  "name": { kind: "string", doc: "Add-on name (see Add-ons)." },
  "enabled": { kind: "bool", default: false, doc: "Installed only when true." },
  "ssl-passthrough": {
    kind: "bool",
    default: false,
    doc: "ingress-nginx only: adds the controller argument `enable-ssl-passthrough`.",
  },
  "chart-version": {
    kind: "string",
    numeric: true,
    doc: "dtk: overrides the built-in chart version (the lock pins its hash).",
  },
} as const satisfies Record<string, Field>;

const vmFields = {
  "name": {
    kind: "string",
    doc: "VM name, also the guest hostname and the Kubernetes node name.",
  },
  "cpu": { kind: "int", default: 3, min: 1, max: 256, doc: "vCPUs." },
  "mem": { kind: "int", default: 8192, min: 1024, max: 1048576, doc: "Memory in MiB." },
  "ip": {
    kind: "int",
    min: 2,
    max: 254,
    doc: "Last octet of the node's IP in VirtualBox host-only mode (default 200 + index).",
  },
  "disk": {
    kind: "int",
    min: 30,
    max: 65536,
    doc: "Grow the root disk to this many GiB (KVM); empty keeps the template's 30 GiB.",
  },
  "pod-cidr": {
    kind: "string",
    doc:
      "The node's pod subnet, inside `k8s.cluster-cidr` (default: its /24 of it): for its fallback bridge CNI, and as its `spec.podCIDR`, set by dtk at registration (the controller-manager allocates none).",
  },
} as const satisfies Record<string, Field>;

export const SCHEMA: Readonly<Record<string, Field>> = {
  "cluster": {
    kind: "map",
    doc: "dtk: the cluster's identity.",
    fields: {
      "name": {
        kind: "string",
        default: "dtk",
        doc:
          "Names the cluster's folder under `generated/`, its kubeconfig context and its CA. A DNS label.",
      },
    },
  },
  "virt": {
    kind: "string",
    default: "kvm",
    enum: ["kvm", "virtualbox"],
    aliases: { vbox: "virtualbox" },
    hidden: ["test-nspawn"],
    doc: "VM driver: `kvm` or `virtualbox` (`vbox` is accepted as an alias).",
  },
  "arch": {
    kind: "string",
    default: "amd64",
    enum: ["amd64", "arm64"],
    doc: "dtk: CPU architecture of the nodes and of every artifact.",
  },
  "addons": {
    kind: "list",
    doc: "Add-ons, installed in this order. Missing: the default list; `[]`: none.",
    item: { kind: "map", doc: "One add-on.", fields: addonFields },
  },
  "k8s": {
    kind: "map",
    doc: "Kubernetes settings.",
    fields: {
      "containerized-cplane": {
        kind: "string",
        doc:
          "Empty: every component runs as a systemd unit. `all`, or a comma list (or YAML list) of `etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`, `kube-proxy`: those run as static pods.",
      },
      "cluster-cidr": {
        kind: "string",
        default: "10.200.0.0/16",
        doc: "Pod network: controller-manager `--cluster-cidr`, kube-proxy, Calico's IP pool.",
      },
      "cluster-dns": {
        kind: "string",
        default: "10.32.0.10",
        doc:
          "Cluster DNS Service IP (kubelet `clusterDNS`, CoreDNS Service); inside `service-cidr`. The original ignores it; dtk honours it.",
      },
      "service-cidr": {
        kind: "string",
        default: "10.32.0.0/24",
        doc:
          "dtk: Service network; its first IP is the `kubernetes` Service (and in the apiserver certificate).",
      },
      "cluster-domain": {
        kind: "string",
        default: "cluster.local",
        doc: "dtk: cluster DNS domain.",
      },
      "kube-proxy": {
        kind: "bool",
        default: false,
        doc:
          "Install kube-proxy (iptables mode) on every node. Off by default: Cilium replaces it.",
      },
      "containerd-mirror": {
        kind: "map",
        doc: "A containerd registry host config written to every node.",
        fields: {
          "enabled": { kind: "bool", default: false, doc: "Write the mirror config." },
          "name": {
            kind: "string",
            default: "_default",
            doc: "Folder under `/etc/containerd/certs.d/` (`_default`: every registry).",
          },
          "config": {
            kind: "string",
            default: "SEE DOCUMENTATION\n",
            multiline: true,
            doc: "Written verbatim as `hosts.toml`.",
          },
        },
      },
      "audit-policy": {
        kind: "string",
        multiline: true,
        doc:
          "dtk: kube-apiserver audit policy (an `audit.k8s.io/v1` `Policy`, YAML), written verbatim. Empty: dtk's built-in policy (metadata of every request, no bodies; health, watch and event noise left out).",
      },
      "runtime-config": {
        kind: "string",
        doc:
          "dtk: kube-apiserver `--runtime-config`, e.g. `resource.k8s.io/v1beta2=true`. Empty: not passed, so only the APIs upstream enables by default are served.",
      },
      "resolv-conf": {
        kind: "string",
        default: "/etc/resolv.conf",
        doc:
          "dtk: kubelet `resolvConf`, an absolute path on the nodes: the name servers that Pods with `dnsPolicy: Default` (CoreDNS among them) get. `prep` stops when it is missing or lists only loopback servers (a local stub resolver); with systemd-resolved use `/run/systemd/resolve/resolv.conf`.",
      },
    },
  },
  "versions": {
    kind: "map",
    doc: "dtk: versions of the core artifacts (defaults: the original's pins).",
    fields: {
      "kubernetes": {
        kind: "string",
        numeric: true,
        default: "v1.35.0",
        doc: "kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl.",
      },
      "etcd": { kind: "string", numeric: true, default: "v3.6.7", doc: "etcd and etcdctl." },
      "containerd": {
        kind: "string",
        numeric: true,
        default: "2.1.9",
        doc: "containerd (static build).",
      },
      // runc 1.4.0 (the original's pin) has regressions fixed in 1.4.1 (spurious "cannot start a
      // container that has stopped", #5157) and 1.4.2 (`runc exec` of a short-lived process can hang,
      // #5208: exec probes); 1.4.3 fixes CVE-2026-41579 (runc CHANGELOG.md at v1.4.3).
      "runc": { kind: "string", numeric: true, default: "v1.4.3", doc: "runc." },
      "crictl": { kind: "string", numeric: true, default: "v1.35.0", doc: "crictl." },
      "cni-plugins": { kind: "string", numeric: true, default: "v1.9.0", doc: "CNI plugins." },
      "guest-additions": {
        kind: "string",
        numeric: true,
        default: "7.0.26",
        doc: "VirtualBox Guest Additions ISO.",
      },
    },
  },
  "kvm": {
    kind: "map",
    doc: "Used when `virt: kvm`.",
    fields: {
      "network": {
        kind: "string",
        default: "nat",
        enum: ["nat", "user"],
        doc:
          "`nat`: the libvirt network `libvirt-network`. `user`: user-mode networking with ssh forwarded to 127.0.0.1 (one VM, no privileges; for hosts without a libvirt network).",
      },
      "libvirt-network": {
        kind: "string",
        default: "default",
        doc: "dtk: the libvirt network the VMs attach to (letters, digits, `.`, `_`, `-`).",
      },
      "uri": {
        kind: "string",
        default: "qemu:///system",
        doc:
          "dtk: libvirt connection URI, e.g. `qemu+ssh://user@host/system` (no spaces, quotes, commas or shell characters).",
      },
      "accel": {
        kind: "string",
        default: "kvm",
        enum: ["kvm", "tcg"],
        doc:
          "dtk: `kvm` (hardware virtualisation) or `tcg` (software emulation, domains of type `qemu`; slow).",
      },
      "kickstart": { kind: "string", default: "kvm.text.ks.cfg", doc: "Kickstart template." },
      "os-variant": {
        kind: "string",
        default: "almalinux9",
        doc: "`virt-install --os-variant`; keep it in step with `vm.linux`.",
      },
    },
  },
  "vbox": {
    kind: "map",
    doc: "Used when `virt: virtualbox`. Exactly one of the two network keys.",
    fields: {
      "host-network-interface": {
        kind: "string",
        doc: "Host NIC: bridged networking (one NIC).",
      },
      "host-only-network": {
        kind: "string",
        doc:
          "Three octets: NAT + host-only networking; node IP `<octets>.<vms[].ip>`. Default `192.168.56` unless `host-network-interface` is set.",
      },
      "kickstart": {
        kind: "string",
        default: "vbox.text.ks.cfg",
        doc: "`vbox.text.ks.cfg` or `vbox.graphical.ks.cfg`.",
      },
      "vboxdir": {
        kind: "string",
        doc: "Folder for the VMs; empty: VirtualBox's default machine folder.",
      },
    },
  },
  "vm": {
    kind: "map",
    doc: "The template VM.",
    fields: {
      "linux": {
        kind: "string",
        default: "alma9",
        enum: ["alma9", "alma8", "centos9", "rocky"],
        doc: "Guest OS: AlmaLinux 9.7, AlmaLinux 8.10, CentOS Stream 9, Rocky 8.10.",
      },
      "create-template": {
        kind: "bool",
        default: true,
        doc:
          "Build the template first; an existing template of that name is reused. `--create-template` overrides.",
      },
      "template-vmname": {
        kind: "string",
        default: "alma9.7",
        doc: "Name of the template VM to create or clone from.",
      },
      "template-source": {
        kind: "string",
        default: "kickstart",
        enum: ["kickstart", "cloud-image"],
        doc:
          "dtk: `kickstart` (install from the DVD) or `cloud-image` (the distro's cloud image with cloud-init; KVM only, much faster).",
      },
    },
  },
  "dns": {
    kind: "map",
    doc: "Only for the `external-dns` add-on.",
    fields: {
      "domain": {
        kind: "string",
        default: "dtk.io",
        doc: "Domain(s), comma-separated, that the host webhook manages.",
      },
      "host-ip": {
        kind: "string",
        doc: "Desktop IP reachable from the guests (the webhook's address).",
      },
      "webhook-port": {
        kind: "int",
        default: 5000,
        min: 1,
        max: 65535,
        doc: "Port of `dtk dns-webhook`.",
      },
    },
  },
  "store": {
    kind: "map",
    doc: "dtk: the artifact store.",
    fields: {
      "path": {
        kind: "string",
        doc:
          "Store folder. Empty: `$DTK_STORE`, else `$XDG_CACHE_HOME/dtk/store`, else `~/.cache/dtk/store`.",
      },
      "mirrors": {
        kind: "strings",
        default: [],
        doc:
          "Mirror URLs (`http(s)://`, `file://`) or folders, tried before upstream; also `DTK_MIRRORS` and `--mirror`.",
      },
    },
  },
  "vms": {
    kind: "list",
    doc: "The VMs, in order: the first is controller and worker, the rest are workers.",
    item: { kind: "map", doc: "One VM.", fields: vmFields },
  },
  "test-nspawn": { kind: "any", hidden: true, doc: "Test-only driver settings." },
};

/** Every documented key path, e.g. `k8s.containerd-mirror.name`, `vms[].pod-cidr`. */
export function documentedKeys(
  fields: Readonly<Record<string, Field>> = SCHEMA,
  prefix = "",
): { path: string; field: Field }[] {
  const out: { path: string; field: Field }[] = [];
  for (const [key, field] of Object.entries(fields)) {
    if (field.kind === "any" || (field.kind === "map" && field.hidden)) continue;
    const path = prefix + key;
    out.push({ path, field });
    if (field.kind === "map") out.push(...documentedKeys(field.fields, `${path}.`));
    if (field.kind === "list") out.push(...documentedKeys(field.item.fields, `${path}[].`));
  }
  return out;
}
