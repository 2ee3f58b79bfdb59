/** The effective config as the YAML/JSON object `dtk config show` prints (kebab-case keys). */
import type { Config } from "./types.ts";

/** Kebab-case object of the effective config; unset optional keys become `null`. */
export function toYamlObject(config: Config): Record<string, unknown> {
  const n = <T>(value: T | undefined): T | null => value === undefined ? null : value;
  return {
    "cluster": { "name": config.cluster.name },
    "virt": config.virt,
    "arch": config.arch,
    "addons": config.addons.map((a) => ({
      "name": a.name,
      "enabled": a.enabled,
      ...(a.name === "ingress-nginx" || a.sslPassthrough
        ? { "ssl-passthrough": a.sslPassthrough }
        : {}),
      ...(a.chartVersion !== undefined ? { "chart-version": a.chartVersion } : {}),
    })),
    "k8s": {
      "containerized-cplane": config.k8s.containerizedCplane.length === 0
        ? null
        : config.k8s.containerizedCplane.join(","),
      "cluster-cidr": config.k8s.clusterCidr,
      "cluster-dns": config.k8s.clusterDns,
      "service-cidr": config.k8s.serviceCidr,
      "cluster-domain": config.k8s.clusterDomain,
      "kube-proxy": config.k8s.kubeProxy,
      "containerd-mirror": {
        "enabled": config.k8s.containerdMirror.enabled,
        "name": config.k8s.containerdMirror.name,
        "config": config.k8s.containerdMirror.config,
      },
      "audit-policy": n(config.k8s.auditPolicy),
      "runtime-config": n(config.k8s.runtimeConfig),
      "resolv-conf": config.k8s.resolvConf,
    },
    "versions": {
      "kubernetes": config.versions.kubernetes,
      "etcd": config.versions.etcd,
      "containerd": config.versions.containerd,
      "runc": config.versions.runc,
      "crictl": config.versions.crictl,
      "cni-plugins": config.versions.cniPlugins,
      "guest-additions": config.versions.guestAdditions,
    },
    "kvm": {
      "network": config.kvm.network,
      "libvirt-network": config.kvm.libvirtNetwork,
      "uri": config.kvm.uri,
      "accel": config.kvm.accel,
      "kickstart": config.kvm.kickstart,
      "os-variant": config.kvm.osVariant,
    },
    "vbox": {
      "host-network-interface": n(config.vbox.hostNetworkInterface),
      "host-only-network": n(config.vbox.hostOnlyNetwork),
      "kickstart": config.vbox.kickstart,
      "vboxdir": n(config.vbox.vboxdir),
    },
    "vm": {
      "linux": config.vm.linux,
      "create-template": config.vm.createTemplate,
      "template-vmname": config.vm.templateVmname,
      "template-source": config.vm.templateSource,
    },
    "dns": {
      "domain": config.dns.domain,
      "host-ip": n(config.dns.hostIp),
      "webhook-port": config.dns.webhookPort,
    },
    "store": { "path": n(config.store.path), "mirrors": config.store.mirrors },
    "vms": config.vms.map((vm) => ({
      "name": vm.name,
      "cpu": vm.cpu,
      "mem": vm.mem,
      "ip": n(vm.ip),
      "disk": n(vm.disk),
      "pod-cidr": vm.podCidr,
    })),
  };
}
