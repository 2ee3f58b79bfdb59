/**
 * The artifact catalogue: for a config, the exact set of artifacts it needs, each with its
 * version, kind, architecture, upstream URLs, where its publisher's checksum lives, and the
 * built-in sha256 pin when dtk ships one. Pure: no I/O. `dtk lock` turns these specs into
 * `dtk.lock` entries.
 *
 * @module
 */
import pinData from "./pins.json" with { type: "json" };
import type { Arch, Config, Linux } from "../config/types.ts";
import { ConfigError, q } from "../errors/mod.ts";

/** What an artifact is; decides how it is installed, not how it is fetched. */
export type ArtifactKind =
  | "binary"
  | "tarball"
  | "iso"
  | "disk-image"
  | "chart"
  | "manifest"
  | "image";
export const ARTIFACT_KINDS: readonly ArtifactKind[] = [
  "binary",
  "tarball",
  "iso",
  "disk-image",
  "chart",
  "manifest",
  "image",
];

export type ArtifactArch = Arch | "noarch";

/**
 * Built-in image digests: what the tag resolved to (the multi-arch index) when dtk was
 * released, so that `dtk lock` of the default config needs no network. `dtk fetch` picks the
 * arch's manifest from the index, which this digest pins too.
 */
export const IMAGE_PINS: Readonly<Record<string, string>> = {
  "registry.k8s.io/pause:3.10":
    "sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
};

/**
 * Where the publisher states the sha256 of an artifact.
 *
 * - `file`: a checksum file: a bare hex digest (`.sha256`), GNU `sha256sum` lines
 *   (`.sha256sum`, `SHA256SUMS`), or BSD lines `SHA256 (name) = hex` (distro `CHECKSUM`).
 * - `helm-index`: a Helm repository `index.yaml`; the `digest` of `chart` at the version.
 * - `oci`: the chart layer digest in the OCI manifest (the artifact URL itself).
 */
export type ChecksumSource =
  | { type: "file"; url: string }
  | { type: "helm-index"; url: string; chart: string }
  | { type: "oci" };

/** One artifact a config needs, before its hash is known. */
export interface ArtifactSpec {
  /** Key in `dtk.lock`, e.g. `kube-apiserver`, `chart-cilium`. */
  name: string;
  version: string;
  kind: ArtifactKind;
  arch: ArtifactArch;
  /** File name: what mirrors are searched for, and the name the artifact has on a node. */
  file: string;
  /** Upstream URLs, best first. `oci://host/repo:tag` for OCI charts. */
  urls: string[];
  checksum?: ChecksumSource;
  /** The built-in sha256 (hex), when the catalogue ships one for exactly this URL. */
  pin?: string;
}

export const KUBERNETES_BINARIES = [
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubelet",
  "kube-proxy",
  "kubectl",
] as const;

/** Lock names of the core artifacts other than the Kubernetes binaries. */
export const ETCD = "etcd";
export const CONTAINERD = "containerd";
export const RUNC = "runc";
export const CRICTL = "crictl";
export const CNI_PLUGINS = "cni-plugins";
/** The OS installer DVD for `vm.linux` (kickstart templates). */
export const OS_ISO = "os-iso";
/** The OS cloud image (`vm.template-source: cloud-image`). */
export const OS_CLOUD_IMAGE = "os-cloud-image";
export const GUEST_ADDITIONS = "guest-additions";
/** The Gateway API standard CRDs (`standard-install.yaml`), needed by nginx-gateway-fabric. */
export const GATEWAY_API_CRDS = "gateway-api-crds";
export const GATEWAY_API_VERSION = "v1.4.1";

/** The lock name of an add-on's chart: `chart-<addon>`. */
export function chartArtifactName(addon: string): string {
  return `chart-${addon}`;
}

/** The chart of an add-on: name, default version, and where it comes from. */
export interface ChartInfo {
  addon: string;
  /** The chart's own name (e.g. `tigera-operator` for calico). */
  chart: string;
  version: string;
  /** Builds the upstream URL for a version. */
  url: (version: string) => string;
  /** Builds the publisher checksum source for a version. */
  checksum: (version: string) => ChecksumSource;
}

const gh = "https://github.com";

function helmRepo(base: string, chart: string, addon = chart, version: string): ChartInfo {
  return {
    addon,
    chart,
    version,
    url: (v) => `${base}/${chart}-${v}.tgz`,
    checksum: () => ({ type: "helm-index", url: `${base}/index.yaml`, chart }),
  };
}

function ghReleaseChart(
  addon: string,
  chart: string,
  version: string,
  url: (v: string) => string,
  index: string,
): ChartInfo {
  return {
    addon,
    chart,
    version,
    url,
    checksum: () => ({ type: "helm-index", url: index, chart }),
  };
}

/** The charts of the 14 add-ons, at the original's versions (spec §3). */
export const ADDON_CHARTS: Readonly<Record<string, ChartInfo>> = Object.fromEntries(
  [
    ghReleaseChart(
      "calico",
      "tigera-operator",
      "v3.31.3",
      (v) => `${gh}/projectcalico/calico/releases/download/${v}/tigera-operator-${v}.tgz`,
      "https://docs.tigera.io/calico/charts/index.yaml",
    ),
    {
      ...helmRepo("https://charts.jetstack.io", "cert-manager", "cert-manager", "v1.19.2"),
      url: (v: string) => `https://charts.jetstack.io/charts/cert-manager-${v}.tgz`,
    },
    helmRepo("https://helm.cilium.io", "cilium", "cilium", "1.18.5"),
    ghReleaseChart(
      "coredns",
      "coredns",
      "1.45.0",
      (v) => `${gh}/coredns/helm/releases/download/coredns-${v}/coredns-${v}.tgz`,
      "https://coredns.github.io/helm/index.yaml",
    ),
    ghReleaseChart(
      "external-dns",
      "external-dns",
      "1.19.0",
      (v) =>
        `${gh}/kubernetes-sigs/external-dns/releases/download/external-dns-helm-chart-${v}/external-dns-${v}.tgz`,
      "https://kubernetes-sigs.github.io/external-dns/index.yaml",
    ),
    ghReleaseChart(
      "headlamp",
      "headlamp",
      "0.40.0",
      (v) =>
        `${gh}/kubernetes-sigs/headlamp/releases/download/headlamp-helm-${v}/headlamp-${v}.tgz`,
      "https://kubernetes-sigs.github.io/headlamp/index.yaml",
    ),
    ghReleaseChart(
      "ingress-nginx",
      "ingress-nginx",
      "4.14.1",
      (v) =>
        `${gh}/kubernetes/ingress-nginx/releases/download/helm-chart-${v}/ingress-nginx-${v}.tgz`,
      "https://kubernetes.github.io/ingress-nginx/index.yaml",
    ),
    ghReleaseChart(
      "kube-prometheus-stack",
      "kube-prometheus-stack",
      "80.6.0",
      (v) =>
        `${gh}/prometheus-community/helm-charts/releases/download/kube-prometheus-stack-${v}/kube-prometheus-stack-${v}.tgz`,
      "https://prometheus-community.github.io/helm-charts/index.yaml",
    ),
    ghReleaseChart(
      "kubernetes-dashboard",
      "kubernetes-dashboard",
      "7.14.0",
      (v) =>
        `${gh}/kubernetes/dashboard/releases/download/kubernetes-dashboard-${v}/kubernetes-dashboard-${v}.tgz`,
      "https://kubernetes.github.io/dashboard/index.yaml",
    ),
    ghReleaseChart(
      "metrics-server",
      "metrics-server",
      "3.13.0",
      (v) =>
        `${gh}/kubernetes-sigs/metrics-server/releases/download/metrics-server-helm-chart-${v}/metrics-server-${v}.tgz`,
      "https://kubernetes-sigs.github.io/metrics-server/index.yaml",
    ),
    ghReleaseChart(
      "nfs-provisioner",
      "nfs-subdir-external-provisioner",
      "4.0.18",
      (v) =>
        `${gh}/kubernetes-sigs/nfs-subdir-external-provisioner/releases/download/nfs-subdir-external-provisioner-${v}/nfs-subdir-external-provisioner-${v}.tgz`,
      "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner/index.yaml",
    ),
    {
      addon: "nginx-gateway-fabric",
      chart: "nginx-gateway-fabric",
      version: "2.4.1",
      url: (v: string) => `oci://ghcr.io/nginx/charts/nginx-gateway-fabric:${v}`,
      checksum: (): ChecksumSource => ({ type: "oci" }),
    },
    helmRepo(
      "https://openebs.github.io/dynamic-localpv-provisioner",
      "localpv-provisioner",
      "openebs",
      "4.4.0",
    ),
    {
      ...helmRepo("https://charts.loft.sh", "vcluster", "vcluster", "0.30.4"),
      url: (v: string) => `https://charts.loft.sh/charts/vcluster-${v}.tgz`,
    },
  ].map((c) => [c.addon, c] as const),
);

interface Pin {
  url: string;
  sha256: string;
}

const PINS: ReadonlyMap<string, string> = new Map(
  (pinData.pins as Pin[]).map((p) => [p.url, p.sha256.toLowerCase()]),
);

/** The built-in sha256 (hex) for an upstream URL, if the catalogue ships one. */
export function pinnedHash(url: string): string | undefined {
  return PINS.get(url);
}

function withPin(spec: ArtifactSpec): ArtifactSpec {
  const first = spec.urls[0];
  const pin = first === undefined ? undefined : pinnedHash(first);
  return pin === undefined ? spec : { ...spec, pin };
}

function withV(version: string): string {
  return version.startsWith("v") ? version : `v${version}`;
}

function withoutV(version: string): string {
  return version.startsWith("v") ? version.slice(1) : version;
}

/** The distro's name for an architecture (`x86_64`, `aarch64`). */
function distroArch(arch: Arch): string {
  return arch === "amd64" ? "x86_64" : "aarch64";
}

/** The Kubernetes binaries at a version. */
export function kubernetesSpecs(version: string, arch: Arch): ArtifactSpec[] {
  const v = withV(version);
  return KUBERNETES_BINARIES.map((name) => {
    const url = `https://dl.k8s.io/${v}/bin/linux/${arch}/${name}`;
    return withPin({
      name,
      version: v,
      kind: "binary",
      arch,
      file: name,
      urls: [url, `https://dl.k8s.io/release/${v}/bin/linux/${arch}/${name}`],
      checksum: { type: "file", url: `${url}.sha256` },
    });
  });
}

/** The core artifacts other than Kubernetes: etcd, containerd (static), runc, crictl, CNI. */
export function runtimeSpecs(versions: Config["versions"], arch: Arch): ArtifactSpec[] {
  const etcd = withV(versions.etcd);
  const etcdFile = `etcd-${etcd}-linux-${arch}.tar.gz`;
  const containerd = withoutV(versions.containerd);
  const containerdFile = `containerd-static-${containerd}-linux-${arch}.tar.gz`;
  const containerdUrl =
    `${gh}/containerd/containerd/releases/download/v${containerd}/${containerdFile}`;
  const runc = withV(versions.runc);
  const crictl = withV(versions.crictl);
  const crictlUrl = `${gh}/kubernetes-sigs/cri-tools/releases/download/${crictl}/` +
    `crictl-${crictl}-linux-${arch}.tar.gz`;
  const cni = withV(versions.cniPlugins);
  const cniUrl = `${gh}/containernetworking/plugins/releases/download/${cni}/` +
    `cni-plugins-linux-${arch}-${cni}.tgz`;
  return [
    withPin({
      name: ETCD,
      version: etcd,
      kind: "tarball",
      arch,
      file: etcdFile,
      urls: [
        `${gh}/etcd-io/etcd/releases/download/${etcd}/${etcdFile}`,
        `https://storage.googleapis.com/etcd/${etcd}/${etcdFile}`,
      ],
      checksum: { type: "file", url: `${gh}/etcd-io/etcd/releases/download/${etcd}/SHA256SUMS` },
    }),
    withPin({
      name: CONTAINERD,
      version: containerd,
      kind: "tarball",
      arch,
      file: containerdFile,
      urls: [containerdUrl],
      checksum: { type: "file", url: `${containerdUrl}.sha256sum` },
    }),
    withPin({
      name: RUNC,
      version: runc,
      kind: "binary",
      arch,
      file: `runc.${arch}`,
      urls: [`${gh}/opencontainers/runc/releases/download/${runc}/runc.${arch}`],
      checksum: {
        type: "file",
        url: `${gh}/opencontainers/runc/releases/download/${runc}/runc.sha256sum`,
      },
    }),
    withPin({
      name: CRICTL,
      version: crictl,
      kind: "tarball",
      arch,
      file: `crictl-${crictl}-linux-${arch}.tar.gz`,
      urls: [crictlUrl],
      checksum: { type: "file", url: `${crictlUrl}.sha256` },
    }),
    withPin({
      name: CNI_PLUGINS,
      version: cni,
      kind: "tarball",
      arch,
      file: `cni-plugins-linux-${arch}-${cni}.tgz`,
      urls: [cniUrl],
      checksum: { type: "file", url: `${cniUrl}.sha256` },
    }),
  ];
}

/** Installer DVD of each supported distro, at the original's versions. */
export const OS_RELEASES: Readonly<Record<Linux, string>> = {
  alma9: "9.7",
  alma8: "8.10",
  rocky: "8.10",
  centos9: "latest",
};

/** The installer DVD for `linux`. */
export function osIsoSpec(linux: Linux, arch: Arch): ArtifactSpec {
  const a = distroArch(arch);
  const version = OS_RELEASES[linux];
  switch (linux) {
    case "alma9":
    case "alma8": {
      const file = `AlmaLinux-${version}-${a}-dvd.iso`;
      const dir = `https://repo.almalinux.org/almalinux/${version}/isos/${a}`;
      return withPin({
        name: OS_ISO,
        version,
        kind: "iso",
        arch,
        file,
        urls: [`${dir}/${file}`, `https://vault.almalinux.org/${version}/isos/${a}/${file}`],
        checksum: { type: "file", url: `${dir}/CHECKSUM` },
      });
    }
    case "rocky": {
      const file = `Rocky-${version}-${a}-dvd1.iso`;
      const major = version.split(".")[0];
      const dir = `https://download.rockylinux.org/pub/rocky/${major}/isos/${a}`;
      return withPin({
        name: OS_ISO,
        version,
        kind: "iso",
        arch,
        file,
        urls: [
          `${dir}/${file}`,
          `https://dl.rockylinux.org/vault/rocky/${version}/isos/${a}/${file}`,
        ],
        checksum: { type: "file", url: `${dir}/CHECKSUM` },
      });
    }
    case "centos9": {
      const file = `CentOS-Stream-9-latest-${a}-dvd1.iso`;
      const url = `https://mirror.stream.centos.org/9-stream/BaseOS/${a}/iso/${file}`;
      return {
        name: OS_ISO,
        version,
        kind: "iso",
        arch,
        file,
        urls: [url],
        checksum: { type: "file", url: `${url}.SHA256SUM` },
      };
    }
  }
}

/** The AlmaLinux GenericCloud image build the catalogue pins, per major release. */
const CLOUD_IMAGES: Partial<Record<Linux, { release: string; build: string }>> = {
  alma9: { release: "9.7", build: "20251118" },
};

/** The cloud image for `linux` (only AlmaLinux 9 is catalogued). */
export function cloudImageSpec(linux: Linux, arch: Arch): ArtifactSpec {
  const image = CLOUD_IMAGES[linux];
  if (image === undefined) {
    throw ConfigError.forKey("vm.template-source", `No cloud image is catalogued for ${q(linux)}`, {
      file: "<catalogue>",
      hint: "Use vm.linux: alma9, or vm.template-source: kickstart",
    });
  }
  const a = distroArch(arch);
  const file = `AlmaLinux-9-GenericCloud-${image.release}-${image.build}.${a}.qcow2`;
  const dir = `https://repo.almalinux.org/almalinux/${image.release}/cloud/${a}/images`;
  return withPin({
    name: OS_CLOUD_IMAGE,
    version: `${image.release}-${image.build}`,
    kind: "disk-image",
    arch,
    file,
    urls: [
      `${dir}/${file}`,
      `https://vault.almalinux.org/${image.release}/cloud/${a}/images/${file}`,
    ],
    checksum: { type: "file", url: `${dir}/CHECKSUM` },
  });
}

/** The VirtualBox Guest Additions ISO (one ISO for every guest architecture). */
export function guestAdditionsSpec(version: string): ArtifactSpec {
  const v = withoutV(version);
  const dir = `https://download.virtualbox.org/virtualbox/${v}`;
  return withPin({
    name: GUEST_ADDITIONS,
    version: v,
    kind: "iso",
    arch: "noarch",
    file: `VBoxGuestAdditions_${v}.iso`,
    urls: [`${dir}/VBoxGuestAdditions_${v}.iso`],
    checksum: { type: "file", url: `${dir}/SHA256SUMS` },
  });
}

/** The chart of an add-on, at `version` (default: the catalogue's). */
export function chartSpec(addon: string, version?: string): ArtifactSpec {
  const info = ADDON_CHARTS[addon];
  if (info === undefined) {
    throw ConfigError.forKey("addons", `No chart is catalogued for add-on ${q(addon)}`, {
      file: "<catalogue>",
      hint: `Known add-ons: ${Object.keys(ADDON_CHARTS).join(", ")}`,
    });
  }
  const v = version ?? info.version;
  const url = info.url(v);
  const file = url.startsWith("oci://")
    ? `${info.chart}-${v}.tgz`
    : url.slice(url.lastIndexOf("/") + 1);
  return withPin({
    name: chartArtifactName(addon),
    version: v,
    kind: "chart",
    arch: "noarch",
    file,
    urls: [url],
    checksum: info.checksum(v),
  });
}

/** The Gateway API standard CRDs, one manifest. */
export function gatewayApiSpec(version = GATEWAY_API_VERSION): ArtifactSpec {
  const v = withV(version);
  return withPin({
    name: GATEWAY_API_CRDS,
    version: v,
    kind: "manifest",
    arch: "noarch",
    file: `gateway-api-${v}-standard-install.yaml`,
    urls: [`${gh}/kubernetes-sigs/gateway-api/releases/download/${v}/standard-install.yaml`],
  });
}

/** Add-ons whose installer applies the Gateway API CRDs. */
const NEEDS_GATEWAY_API: readonly string[] = ["nginx-gateway-fabric"];

/**
 * The exact set of artifacts a config needs, sorted by name: the core binaries and tarballs,
 * the OS image when a template is built, Guest Additions for VirtualBox, the chart of each
 * enabled add-on, and the Gateway API CRDs when an add-on applies them.
 */
export function resolveArtifacts(
  config: Pick<Config, "versions" | "arch" | "vm" | "virt" | "addons">,
): ArtifactSpec[] {
  const { arch } = config;
  const specs: ArtifactSpec[] = [
    ...kubernetesSpecs(config.versions.kubernetes, arch),
    ...runtimeSpecs(config.versions, arch),
  ];
  // The test driver boots containers from a prepared rootfs: it has no template to build.
  const buildsTemplate = config.vm.createTemplate && config.virt !== "test-nspawn";
  if (buildsTemplate) {
    specs.push(
      config.vm.templateSource === "cloud-image"
        ? cloudImageSpec(config.vm.linux, arch)
        : osIsoSpec(config.vm.linux, arch),
    );
    if (config.virt === "virtualbox") {
      specs.push(guestAdditionsSpec(config.versions.guestAdditions));
    }
  }
  let gatewayApi = false;
  for (const addon of config.addons) {
    if (!addon.enabled) continue;
    specs.push(chartSpec(addon.name, addon.chartVersion));
    if (NEEDS_GATEWAY_API.includes(addon.name)) gatewayApi = true;
  }
  if (gatewayApi) specs.push(gatewayApiSpec());
  return specs.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}
