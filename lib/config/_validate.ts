/** Checks of what the config's keys mean together, after every key has the right type. */
import { parse as parseYaml } from "yaml";
import { q } from "../errors/mod.ts";
import type { Config } from "./types.ts";
import {
  type Cidr,
  cidrContains,
  cidrContainsIp,
  cidrsOverlap,
  formatCidr,
  isNetworkAddress,
  parseCidr,
  parseIpv4,
} from "./_net.ts";
import {
  ADDON_CONFLICTS,
  ADDON_NAMES,
  ADDON_REQUIRES,
  ADDON_REQUIRES_ONE_OF,
  type AddonName,
  CNI_ADDONS,
  isAddonName,
} from "./_addons.ts";
import { suggestion } from "./_suggest.ts";

export interface Reporter {
  issue(path: string, message: string, hint?: string): void;
  warn(path: string, message: string, hint?: string): void;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const VERSION_PATTERNS: Record<string, { re: RegExp; example: string }> = {
  "kubernetes": { re: /^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/, example: "v1.35.0" },
  "etcd": { re: /^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/, example: "v3.6.7" },
  "containerd": { re: /^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/, example: "2.1.9" },
  "runc": { re: /^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/, example: "v1.4.0" },
  "crictl": { re: /^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/, example: "v1.35.0" },
  "cni-plugins": { re: /^v\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$/, example: "v1.9.0" },
  "guest-additions": { re: /^\d+\.\d+\.\d+$/, example: "7.0.26" },
};

/**
 * A libvirt connection URI (`driver[+transport]://[user@][host][:port]/path[?query]`), strictly:
 * it is printed in commands for the user to paste and passed to virsh and virt-install, so
 * nothing a shell or virt-install's option parser reads specially (spaces, quotes, `;`, `|`,
 * `$`, backquotes, commas) gets through. `&` and `=` only inside the query, as libvirt writes it.
 */
const LIBVIRT_URI =
  /^[a-z][a-z0-9]*(\+[a-z][a-z0-9]*)?:\/\/([A-Za-z0-9._~-]+@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])?(:\d{1,5})?\/[A-Za-z0-9._~\/-]*(\?[A-Za-z0-9._~\/%=-]+(&[A-Za-z0-9._~\/%=-]+)*)?$/;

/** A libvirt network name as dtk accepts it: goes into `virt-install --network network=…`. */
const LIBVIRT_NETWORK = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A CIDR key: syntax and zero host bits. */
function cidr(value: string, path: string, r: Reporter): Cidr | undefined {
  const parsed = parseCidr(value);
  if (!parsed) {
    r.issue(path, `${q(path)} must be a CIDR such as "10.200.0.0/16", found ${q(value)}`);
    return undefined;
  }
  if (!isNetworkAddress(parsed)) {
    const base = parsed.base - (parsed.base % parsed.size);
    const fixed = formatCidr({ ...parsed, base });
    r.issue(
      path,
      `${q(path)} has host bits set: ${q(value)}`,
      `did you mean ${q(fixed)}?`,
    );
    return undefined;
  }
  return parsed;
}

export function validateSemantics(config: Config, r: Reporter): void {
  if (!DNS_LABEL.test(config.cluster.name)) {
    r.issue(
      "cluster.name",
      `"cluster.name" must be a DNS label (lowercase letters, digits and "-", at most 63), found ${
        q(config.cluster.name)
      }`,
    );
  }

  // Networks.
  const clusterCidr = cidr(config.k8s.clusterCidr, "k8s.cluster-cidr", r);
  const serviceCidr = cidr(config.k8s.serviceCidr, "k8s.service-cidr", r);
  const dns = parseIpv4(config.k8s.clusterDns);
  if (dns === undefined) {
    r.issue(
      "k8s.cluster-dns",
      `"k8s.cluster-dns" must be an IPv4 address, found ${q(config.k8s.clusterDns)}`,
    );
  } else if (serviceCidr) {
    if (!cidrContainsIp(serviceCidr, dns)) {
      r.issue(
        "k8s.cluster-dns",
        `"k8s.cluster-dns" ${q(config.k8s.clusterDns)} is not inside the service CIDR ${
          q(config.k8s.serviceCidr)
        }`,
        "The DNS Service IP must come from k8s.service-cidr",
      );
    } else if (dns === serviceCidr.base || dns === serviceCidr.base + 1) {
      r.issue(
        "k8s.cluster-dns",
        `"k8s.cluster-dns" ${q(config.k8s.clusterDns)} is reserved (${
          dns === serviceCidr.base ? "the network address" : 'the "kubernetes" Service IP'
        })`,
        "Use another address of the service CIDR, e.g. its 10th",
      );
    } else if (dns === serviceCidr.base + serviceCidr.size - 1) {
      r.issue(
        "k8s.cluster-dns",
        `"k8s.cluster-dns" ${q(config.k8s.clusterDns)} is the broadcast address`,
      );
    }
  }
  if (serviceCidr && serviceCidr.prefix > 29) {
    r.issue("k8s.service-cidr", `"k8s.service-cidr" is too small: use a prefix of /29 or shorter`);
  }
  if (clusterCidr && serviceCidr && cidrsOverlap(clusterCidr, serviceCidr)) {
    r.issue(
      "k8s.service-cidr",
      `The service CIDR ${q(config.k8s.serviceCidr)} overlaps the cluster CIDR ${
        q(config.k8s.clusterCidr)
      }`,
      "Pods and Services need separate networks",
    );
  }
  if (!DNS_NAME.test(config.k8s.clusterDomain)) {
    r.issue(
      "k8s.cluster-domain",
      `"k8s.cluster-domain" must be a DNS name such as "cluster.local", found ${
        q(config.k8s.clusterDomain)
      }`,
    );
  }
  const mirror = config.k8s.containerdMirror;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/.test(mirror.name) || mirror.name.includes("..")) {
    r.issue(
      "k8s.containerd-mirror.name",
      `"k8s.containerd-mirror.name" must be a registry host or "_default", found ${q(mirror.name)}`,
    );
  }
  if (
    mirror.enabled && (mirror.config.trim() === "" || mirror.config.includes("SEE DOCUMENTATION"))
  ) {
    r.issue(
      "k8s.containerd-mirror.config",
      `"k8s.containerd-mirror.config" still holds the placeholder while the mirror is enabled`,
      'Write the hosts.toml content, e.g. [host."http://192.168.0.49:8080"] with capabilities = ["pull", "resolve"]',
    );
  }

  validateApiserver(config, r);
  validateKubelet(config, r);

  // Host networks that must not clash with the cluster's.
  const hostNets: { path: string; cidr: Cidr; what: string }[] = [];
  if (config.virt === "virtualbox" && config.vbox.hostOnlyNetwork !== undefined) {
    const octets = config.vbox.hostOnlyNetwork;
    const net = /^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(octets)
      ? parseCidr(`${octets}.0/24`)
      : undefined;
    if (!net) {
      r.issue(
        "vbox.host-only-network",
        `"vbox.host-only-network" must be three octets such as "192.168.56", found ${q(octets)}`,
      );
    } else hostNets.push({ path: "vbox.host-only-network", cidr: net, what: "host-only network" });
  }
  if (config.virt === "kvm" && config.kvm.network === "user") {
    hostNets.push({
      path: "kvm.network",
      cidr: parseCidr("10.0.2.0/24")!,
      what: "user-mode network",
    });
  }
  for (const host of hostNets) {
    for (
      const [path, net] of [["k8s.cluster-cidr", clusterCidr], [
        "k8s.service-cidr",
        serviceCidr,
      ]] as const
    ) {
      if (net && cidrsOverlap(net, host.cidr)) {
        r.issue(
          path,
          `${q(path)} ${q(formatCidr(net))} overlaps the ${host.what} ${q(formatCidr(host.cidr))}`,
          `Choose a ${
            path === "k8s.cluster-cidr" ? "cluster" : "service"
          } network apart from ${host.path}`,
        );
      }
    }
  }

  // Versions.
  for (const [key, { re, example }] of Object.entries(VERSION_PATTERNS)) {
    const camel = key === "cni-plugins"
      ? "cniPlugins"
      : key === "guest-additions"
      ? "guestAdditions"
      : key;
    const value = (config.versions as unknown as Record<string, string>)[camel] ?? "";
    if (!re.test(value)) {
      r.issue(
        `versions.${key}`,
        `"versions.${key}" must be a release version such as ${q(example)}, found ${q(value)}`,
        "Write it as upstream tags the release",
      );
    }
  }

  // Drivers.
  if (config.virt === "virtualbox") {
    const bridged = config.vbox.hostNetworkInterface !== undefined;
    const hostOnly = config.vbox.hostOnlyNetwork !== undefined;
    if (bridged && hostOnly) {
      r.issue(
        "vbox.host-network-interface",
        'Set only one of "vbox.host-network-interface" (bridged) and "vbox.host-only-network" (host-only)',
        "Empty the one you do not use",
      );
    }
    if (config.vm.templateSource === "cloud-image") {
      r.issue(
        "vm.template-source",
        `"vm.template-source" "cloud-image" needs "virt: kvm"`,
        'Use "template-source: kickstart" with VirtualBox',
      );
    }
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(config.vm.templateVmname)) {
    r.issue(
      "vm.template-vmname",
      `"vm.template-vmname" must be a VM name (letters, digits, ".", "_", "-"), found ${
        q(config.vm.templateVmname)
      }`,
    );
  }
  if (!LIBVIRT_URI.test(config.kvm.uri)) {
    r.issue(
      "kvm.uri",
      `"kvm.uri" must be a libvirt URI such as "qemu:///system" or "qemu+ssh://user@host/system", found ${
        q(config.kvm.uri)
      }`,
      "driver[+transport]://[user@][host][:port]/path[?name=value&…]: no spaces, quotes, commas or shell characters",
    );
  }
  if (!LIBVIRT_NETWORK.test(config.kvm.libvirtNetwork)) {
    r.issue(
      "kvm.libvirt-network",
      `"kvm.libvirt-network" must be a libvirt network name (letters, digits, ".", "_", "-", at most 64), found ${
        q(config.kvm.libvirtNetwork)
      }`,
      "List the networks with: virsh net-list --all",
    );
  }
  for (const path of ["kvm.kickstart", "vbox.kickstart"] as const) {
    const value = path === "kvm.kickstart" ? config.kvm.kickstart : config.vbox.kickstart;
    if (value.includes("/") || !value.endsWith(".cfg")) {
      r.issue(
        path,
        `${q(path)} must name a kickstart template such as "kvm.text.ks.cfg", found ${q(value)}`,
      );
    }
  }

  // DNS (external-dns).
  for (const domain of config.dns.domain.split(",").map((d) => d.trim())) {
    if (!DNS_NAME.test(domain)) {
      r.issue(
        "dns.domain",
        `"dns.domain" must be DNS names separated by commas, found ${q(domain)}`,
      );
    }
  }
  if (config.dns.hostIp !== undefined && parseIpv4(config.dns.hostIp) === undefined) {
    r.issue("dns.host-ip", `"dns.host-ip" must be an IPv4 address, found ${q(config.dns.hostIp)}`);
  }

  // Store.
  config.store.mirrors.forEach((mirror, i) => {
    if (!/^(https?|file):\/\/./.test(mirror) && !mirror.startsWith("/")) {
      r.issue(
        `store.mirrors[${i}]`,
        `"store.mirrors[${i}]" must be an http(s):// or file:// URL or an absolute folder, found ${
          q(mirror)
        }`,
      );
    }
  });

  validateVms(config, clusterCidr, r);
  validateAddons(config, r);
}

function validateKubelet(config: Config, r: Reporter): void {
  // The kubelet opens the path as it is: a relative one would be read from its working folder
  // (`/` under systemd), not from where the user meant.
  const resolv = config.k8s.resolvConf;
  // A newline or other control character cannot be part of a path the user meant.
  if (!resolv.startsWith("/") || [...resolv].some((c) => c.charCodeAt(0) < 0x20)) {
    r.issue(
      "k8s.resolv-conf",
      `"k8s.resolv-conf" must be an absolute path on the nodes, found ${q(resolv)}`,
      "e.g. /etc/resolv.conf, or /run/systemd/resolve/resolv.conf on guests with systemd-resolved",
    );
  }
}

function validateApiserver(config: Config, r: Reporter): void {
  const policy = config.k8s.auditPolicy;
  if (policy !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(policy);
    } catch (e) {
      r.issue(
        "k8s.audit-policy",
        `"k8s.audit-policy" is not valid YAML: ${
          ((e as Error).message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")
        }`,
      );
      return;
    }
    const d = (doc ?? {}) as Record<string, unknown>;
    if (d["apiVersion"] !== "audit.k8s.io/v1" || d["kind"] !== "Policy") {
      r.issue(
        "k8s.audit-policy",
        `"k8s.audit-policy" must be an "audit.k8s.io/v1" "Policy", found ${
          q(`${String(d["apiVersion"] ?? "")} ${String(d["kind"] ?? "")}`.trim())
        }`,
        "Start it with apiVersion: audit.k8s.io/v1 and kind: Policy, or leave it empty for dtk's policy",
      );
    } else if (!Array.isArray(d["rules"]) || d["rules"].length === 0) {
      // The apiserver refuses to start on it ("loaded illegal policy with 0 rules").
      r.issue("k8s.audit-policy", `"k8s.audit-policy" has no rules`, "Add e.g. - level: Metadata");
    }
  }
  const runtime = config.k8s.runtimeConfig;
  if (runtime !== undefined) {
    for (const item of runtime.split(",").map((s) => s.trim())) {
      if (!/^[A-Za-z0-9.-]*\/[A-Za-z0-9]+(\/[a-z0-9]+)?(=(true|false))?$/.test(item)) {
        r.issue(
          "k8s.runtime-config",
          `"k8s.runtime-config" must be comma-separated GROUP/VERSION[=true|false] items, found ${
            q(item)
          }`,
          "e.g. resource.k8s.io/v1beta2=true, or api/alpha=true",
        );
      }
    }
  }
}

function validateVms(config: Config, clusterCidr: Cidr | undefined, r: Reporter): void {
  if (config.vms.length === 0) {
    r.issue("vms", `"vms" is empty: a cluster needs at least one VM`, "Add a VM, e.g. - name: vm1");
    return;
  }
  const names = new Map<string, number>();
  const ips = new Map<number, number>();
  const podCidrs: { index: number; cidr: Cidr }[] = [];
  const hostOnly = config.virt === "virtualbox" && config.vbox.hostOnlyNetwork !== undefined;
  config.vms.forEach((vm, i) => {
    const path = `vms[${i}]`;
    if (vm.name !== "") {
      if (!DNS_LABEL.test(vm.name)) {
        r.issue(
          `${path}.name`,
          `"${path}.name" must be a valid hostname (lowercase letters, digits and "-", at most 63), found ${
            q(vm.name)
          }`,
        );
      }
      const seen = names.get(vm.name);
      if (seen !== undefined) {
        r.issue(`${path}.name`, `VM name ${q(vm.name)} is used twice (also by "vms[${seen}]")`);
      } else names.set(vm.name, i);
      if (vm.name === config.vm.templateVmname) {
        r.issue(
          `${path}.name`,
          `VM name ${q(vm.name)} is the template's name ("vm.template-vmname")`,
          "Give the VM or the template another name",
        );
      }
    }
    if (hostOnly && vm.ip !== undefined) {
      const seen = ips.get(vm.ip);
      if (seen !== undefined) {
        r.issue(`${path}.ip`, `IP octet ${vm.ip} is used twice (also by "vms[${seen}]")`);
      } else ips.set(vm.ip, i);
    }
    if (vm.podCidr === "") {
      r.issue(
        `${path}.pod-cidr`,
        `"${path}.pod-cidr" is not set and "k8s.cluster-cidr" has no free /24 for it`,
        "Set pod-cidr on every VM",
      );
      return;
    }
    const pod = cidr(vm.podCidr, `${path}.pod-cidr`, r);
    if (!pod) return;
    if (clusterCidr && !cidrContains(clusterCidr, pod)) {
      r.issue(
        `${path}.pod-cidr`,
        `"${path}.pod-cidr" ${q(vm.podCidr)} is not inside the cluster CIDR ${
          q(config.k8s.clusterCidr)
        }`,
      );
    }
    for (const other of podCidrs) {
      if (cidrsOverlap(other.cidr, pod)) {
        r.issue(
          `${path}.pod-cidr`,
          `"${path}.pod-cidr" ${q(vm.podCidr)} overlaps "vms[${other.index}].pod-cidr"`,
          "Give each VM its own pod subnet",
        );
      }
    }
    podCidrs.push({ index: i, cidr: pod });
  });
}

function validateAddons(config: Config, r: Reporter): void {
  const seen = new Map<string, number>();
  const enabledAt = new Map<AddonName, number>();
  config.addons.forEach((addon, i) => {
    const path = `addons[${i}]`;
    if (addon.name === "") return;
    if (!isAddonName(addon.name)) {
      r.issue(
        `${path}.name`,
        `Unknown add-on ${q(addon.name)}`,
        suggestion(addon.name, ADDON_NAMES),
      );
      return;
    }
    const before = seen.get(addon.name);
    if (before !== undefined) {
      r.issue(`${path}.name`, `Add-on ${q(addon.name)} is listed twice (also "addons[${before}]")`);
      return;
    }
    seen.set(addon.name, i);
    if (addon.sslPassthrough && addon.name !== "ingress-nginx") {
      r.issue(`${path}.ssl-passthrough`, `"ssl-passthrough" applies only to "ingress-nginx"`);
    }
    if (addon.enabled) enabledAt.set(addon.name, i);
  });

  const cnis = CNI_ADDONS.filter((name) => enabledAt.has(name));
  if (cnis.length > 1) {
    const second = cnis[1]!;
    r.issue(
      `addons[${enabledAt.get(second)}].enabled`,
      `Only one CNI may be enabled, found ${cnis.map((c) => q(c)).join(" and ")}`,
      "Disable one of them",
    );
  }
  const cni = cnis[0];
  if (cni !== undefined) {
    const cniIndex = enabledAt.get(cni)!;
    for (const [name, index] of enabledAt) {
      if (index < cniIndex && !CNI_ADDONS.includes(name)) {
        r.issue(
          `addons[${index}].name`,
          `Add-on ${q(name)} comes before the CNI ${q(cni)}, but its pods need the pod network`,
          `Move ${q(cni)} to the top of "addons"`,
        );
      }
    }
  } else if (!config.k8s.kubeProxy && enabledAt.size > 0) {
    r.warn(
      "addons",
      "No CNI add-on is enabled and kube-proxy is off: pods get the fallback bridge network, but Services will not work",
      'Enable "cilium" or "calico", or set "k8s.kube-proxy: true"',
    );
  }
  for (const [name, index] of enabledAt) {
    for (const needed of ADDON_REQUIRES[name] ?? []) {
      const at = enabledAt.get(needed);
      if (at === undefined) {
        r.issue(
          `addons[${index}].name`,
          `Add-on ${q(name)} needs ${q(needed)}, which is not enabled`,
          `Enable ${q(needed)} above ${q(name)}`,
        );
      } else if (at > index) {
        r.issue(
          `addons[${index}].name`,
          `Add-on ${q(name)} is installed before ${q(needed)}, which it needs`,
          `Move ${q(needed)} above ${q(name)}`,
        );
      }
    }
  }
  for (const [name, index] of enabledAt) {
    const anyOf = ADDON_REQUIRES_ONE_OF[name];
    if (anyOf === undefined) continue;
    const before = anyOf.filter((n) => (enabledAt.get(n) ?? Infinity) < index);
    if (before.length > 0) continue;
    const later = anyOf.find((n) => enabledAt.has(n));
    const names = anyOf.map((n) => q(n)).join(" or ");
    r.issue(
      `addons[${index}].name`,
      later === undefined
        ? `Add-on ${q(name)} needs a storage add-on (${names}), and none is enabled`
        : `Add-on ${q(name)} is installed before ${q(later)}, which it needs`,
      later === undefined
        ? `Enable ${names} above ${q(name)}: its PersistentVolumeClaim needs a default StorageClass`
        : `Move ${q(later)} above ${q(name)}`,
    );
  }
  for (const [a, b, why] of ADDON_CONFLICTS) {
    const at = enabledAt.get(b);
    if (enabledAt.has(a) && at !== undefined) {
      r.issue(
        `addons[${at}].enabled`,
        `Add-ons ${q(a)} and ${q(b)} cannot both be enabled: ${why}`,
        `Disable one of them (headlamp needs ${
          q("nginx-gateway-fabric")
        }, kubernetes-dashboard needs ${q("ingress-nginx")})`,
      );
    }
  }
  if (enabledAt.has("external-dns") && config.dns.hostIp === undefined) {
    r.issue(
      "dns.host-ip",
      `Add-on "external-dns" needs "dns.host-ip": the desktop address the guests reach the webhook on`,
      "Set dns.host-ip, e.g. the libvirt bridge address 192.168.122.1",
    );
  }
}
