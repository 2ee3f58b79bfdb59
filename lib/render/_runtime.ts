/**
 * Node preparation and the container runtime: sysctls and kernel modules, containerd (unit,
 * config, registry mirror), crictl, the fallback bridge CNI, NetworkManager snippets.
 *
 * @module
 */
import { containerdFeatures } from "./_version.ts";
import { NODE_PATHS } from "./_paths.ts";
import { renderUnit } from "./_text.ts";
import type { NodeFile, RenderConfig, RenderNode, RenderOverrides } from "./_types.ts";

/** The sandbox ("pause") image, as in the original. */
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";

/** Kernel modules Kubernetes networking needs at boot. */
export const KERNEL_MODULES = ["overlay", "br_netfilter"] as const;

export function renderSysctl(): string {
  return [
    "# Managed by dtk: packet forwarding for pods and Services.",
    "net.ipv4.ip_forward = 1",
    "# Bridged pod traffic must pass iptables (kube-proxy, network policies); needs br_netfilter.",
    "net.bridge.bridge-nf-call-iptables = 1",
    "net.bridge.bridge-nf-call-ip6tables = 1",
    "",
  ].join("\n");
}

export function renderModulesLoad(): string {
  return ["# Managed by dtk.", ...KERNEL_MODULES, ""].join("\n");
}

/**
 * containerd's own unit (containerd.service of the 2.1 releases): after dbus, which runc's
 * systemd cgroup driver talks to, and no `LimitNOFILE` (removed upstream: containers inherit the
 * limit, and systemd's default 1024:524288 is the one software expects).
 */
export function renderContainerdUnit(overrides: RenderOverrides = {}): string {
  return renderUnit({
    description: "containerd container runtime",
    documentation: "https://containerd.io",
    after: ["network.target", "dbus.service"],
    pre: ["ExecStartPre=-/sbin/modprobe overlay", "Type=notify"],
    exec: ["/bin/containerd", `--config=${NODE_PATHS.containerdConfig}`],
    post: [
      "Delegate=yes",
      "KillMode=process",
      "Restart=always",
      "RestartSec=5",
      "LimitNPROC=infinity",
      "LimitCORE=infinity",
      "TasksMax=infinity",
      ...(overrides.noOomScoreAdjust ? [] : ["OOMScoreAdjust=-999"]),
    ],
  });
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

/**
 * containerd's `config.toml`: schema version 3 for containerd 2.x, version 2 for 1.x. The runc
 * cgroup driver matches the kubelet's (`SystemdCgroup`), which the original forgets.
 */
export function renderContainerdConfig(
  config: RenderConfig,
  overrides: RenderOverrides = {},
): string {
  const features = containerdFeatures(config.versions.containerd);
  const systemdCgroup = (overrides.cgroupDriver ?? "systemd") === "systemd";
  const restrict = overrides.restrictOomScoreAdj ?? false;
  const cniBin = features.cniBinDirs
    ? `bin_dirs = [${tomlString(NODE_PATHS.cniBinDir)}]`
    : `bin_dir = ${tomlString(NODE_PATHS.cniBinDir)}`;
  const head = [
    "# Managed by dtk.",
    `version = ${features.configVersion}`,
    `root = "/var/lib/containerd"`,
    `state = "/run/containerd"`,
    "",
    "[grpc]",
    `  address = ${tomlString(NODE_PATHS.containerdSocket)}`,
    "",
  ];
  if (features.configVersion === 3) {
    const images = `plugins."io.containerd.cri.v1.images"`;
    const runtime = `plugins."io.containerd.cri.v1.runtime"`;
    return [
      ...head,
      `[${images}]`,
      `  snapshotter = "overlayfs"`,
      "",
      `[${images}.pinned_images]`,
      `  sandbox = ${tomlString(PAUSE_IMAGE)}`,
      "",
      `[${images}.registry]`,
      `  config_path = ${tomlString(NODE_PATHS.containerdCertsDir)}`,
      "",
      `[${runtime}]`,
      "  enable_unprivileged_ports = true",
      "  enable_unprivileged_icmp = true",
      "  enable_cdi = true",
      `  restrict_oom_score_adj = ${restrict}`,
      "",
      `[${runtime}.containerd]`,
      `  default_runtime_name = "runc"`,
      "",
      `[${runtime}.containerd.runtimes.runc]`,
      `  runtime_type = "io.containerd.runc.v2"`,
      "",
      `[${runtime}.containerd.runtimes.runc.options]`,
      `  SystemdCgroup = ${systemdCgroup}`,
      "",
      `[${runtime}.cni]`,
      `  ${cniBin}`,
      `  conf_dir = ${tomlString(NODE_PATHS.cniConfDir)}`,
      "  max_conf_num = 1",
      "",
    ].join("\n");
  }
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return [
    ...head,
    `[${cri}]`,
    `  sandbox_image = ${tomlString(PAUSE_IMAGE)}`,
    "  enable_unprivileged_ports = true",
    "  enable_unprivileged_icmp = true",
    ...(features.cdi ? ["  enable_cdi = true"] : []),
    `  restrict_oom_score_adj = ${restrict}`,
    "",
    `[${cri}.containerd]`,
    `  snapshotter = "overlayfs"`,
    `  default_runtime_name = "runc"`,
    "",
    `[${cri}.containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    "",
    `[${cri}.containerd.runtimes.runc.options]`,
    `  SystemdCgroup = ${systemdCgroup}`,
    "",
    `[${cri}.cni]`,
    `  ${cniBin}`,
    `  conf_dir = ${tomlString(NODE_PATHS.cniConfDir)}`,
    "  max_conf_num = 1",
    "",
    `[${cri}.registry]`,
    `  config_path = ${tomlString(NODE_PATHS.containerdCertsDir)}`,
    "",
  ].join("\n");
}

/** The registry mirror `hosts.toml` (written verbatim from config), or none when disabled. */
export function renderContainerdMirror(config: RenderConfig): NodeFile | undefined {
  const mirror = config.k8s.containerdMirror;
  if (!mirror.enabled) return undefined;
  const content = mirror.config.endsWith("\n") ? mirror.config : `${mirror.config}\n`;
  return {
    path: `${NODE_PATHS.containerdCertsDir}/${mirror.name}/hosts.toml`,
    content,
    mode: 0o644,
  };
}

export function renderCrictlConfig(): string {
  const endpoint = `unix://${NODE_PATHS.containerdSocket}`;
  return [
    `runtime-endpoint: ${endpoint}`,
    `image-endpoint: ${endpoint}`,
    "timeout: 10",
    "",
  ].join("\n");
}

/**
 * The fallback bridge CNI of one node, host-local IPAM on the node's pod CIDR. Named `20-…` so
 * that a real CNI's `10-…` config wins once installed (containerd reads only the first).
 */
export function renderCniConflist(node: RenderNode): string {
  const conflist = {
    cniVersion: "1.0.0",
    name: "containerd-net",
    plugins: [
      {
        type: "bridge",
        bridge: "cni0",
        isGateway: true,
        ipMasq: true,
        promiscMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: node.podCidr }]],
          routes: [{ dst: node.podCidr.includes(":") ? "::/0" : "0.0.0.0/0" }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
  return `${JSON.stringify(conflist, null, 2)}\n`;
}

/** NetworkManager must leave the bridge CNI's devices alone, or it fights over their addresses. */
export function renderNetworkManagerDtk(): string {
  return [
    "# Managed by dtk.",
    "[keyfile]",
    "unmanaged-devices=interface-name:cni*;interface-name:veth*",
    "",
  ].join("\n");
}
