import assert from "node:assert/strict";
import { defaultConfig } from "../config/mod.ts";
import {
  chartArtifactName,
  chartSpec,
  GATEWAY_API_CRDS,
  GUEST_ADDITIONS,
  OS_CLOUD_IMAGE,
  OS_ISO,
  resolveArtifacts,
} from "./mod.ts";

Deno.test("the default config needs the core, the OS ISO, 8 charts and the Gateway API CRDs", () => {
  const specs = resolveArtifacts(defaultConfig());
  const names = specs.map((s) => s.name);
  for (
    const n of [
      "kube-apiserver",
      "kube-controller-manager",
      "kube-scheduler",
      "kubelet",
      "kube-proxy",
      "kubectl",
      "etcd",
      "containerd",
      "runc",
      "crictl",
      "cni-plugins",
      OS_ISO,
      GATEWAY_API_CRDS,
      chartArtifactName("cilium"),
      chartArtifactName("nginx-gateway-fabric"),
    ]
  ) assert.ok(names.includes(n), n);
  assert.ok(!names.includes(GUEST_ADDITIONS));
  assert.ok(!names.includes(chartArtifactName("calico")), "disabled add-ons are left out");
  assert.deepEqual(names, [...names].sort());
  // Every core artifact of the default versions has a built-in pin, except containerd and runc:
  // no two public sources record the static 2.1.9 build's or runc 1.4.3's hash, so the lock
  // takes the publisher's.
  for (const s of specs.filter((s) => s.kind !== "chart" && s.kind !== "manifest")) {
    if (s.name === "containerd" || s.name === "runc") continue;
    assert.match(s.pin ?? "", /^[0-9a-f]{64}$/, `${s.name} is pinned`);
  }
  const containerd = specs.find((s) => s.name === "containerd")!;
  // containerd's RELEASES.md lists 2.1.5+ for Kubernetes 1.35; 2.1.7 and 2.1.8 carry further
  // security fixes (releases/v2.1.7.toml, v2.1.8.toml), 2.1.9 is the newest 2.1 patch.
  assert.equal(
    containerd.urls[0],
    "https://github.com/containerd/containerd/releases/download/v2.1.9/containerd-static-2.1.9-linux-amd64.tar.gz",
  );
  assert.equal(containerd.pin, undefined, "an unrecorded hash is not pinned");
  assert.equal(
    containerd.checksum?.type === "file" && containerd.checksum.url,
    `${containerd.urls[0]}.sha256sum`,
  );
  const runc = specs.find((s) => s.name === "runc")!;
  // runc 1.4.0 hangs `runc exec` of short-lived processes (fixed in 1.4.2) and misses
  // CVE-2026-41579 (1.4.3): runc's CHANGELOG.md at v1.4.3.
  const releases = "https://github.com/opencontainers/runc/releases/download";
  assert.equal(runc.urls[0], `${releases}/v1.4.3/runc.amd64`);
  assert.equal(runc.pin, undefined, "an unrecorded hash is not pinned");
  assert.equal(
    runc.checksum?.type === "file" && runc.checksum.url,
    `${releases}/v1.4.3/runc.sha256sum`,
  );
});

Deno.test("arm64, virtualbox, cloud image, no template, chart version override", () => {
  const base = defaultConfig();
  const arm = resolveArtifacts({ ...base, arch: "arm64" });
  assert.equal(
    arm.find((s) => s.name === "kubelet")?.pin,
    "aa658d077348b43d238f50966a583f4244b2a7d45590c77b3b165b7d44983ab8",
  );
  assert.match(arm.find((s) => s.name === "runc")!.urls[0]!, /runc\.arm64$/);
  assert.match(arm.find((s) => s.name === OS_ISO)!.file, /aarch64-dvd\.iso$/);
  const vbox = resolveArtifacts({ ...base, virt: "virtualbox" }).map((s) => s.name);
  assert.ok(vbox.includes(GUEST_ADDITIONS));
  const cloud = resolveArtifacts({ ...base, vm: { ...base.vm, templateSource: "cloud-image" } });
  const image = cloud.find((s) => s.name === OS_CLOUD_IMAGE)!;
  assert.equal(image.pin, "5ff9c048859046f41db4a33b1f1a96675711288078aac66b47d0be023af270d1");
  const noTemplate = resolveArtifacts({ ...base, vm: { ...base.vm, createTemplate: false } });
  assert.ok(!noTemplate.some((s) => s.name === OS_ISO));
  const spec = chartSpec("cilium", "1.19.0");
  assert.equal(spec.urls[0], "https://helm.cilium.io/cilium-1.19.0.tgz");
  assert.equal(spec.pin, undefined, "an overridden version is not pinned");
  const ngf = chartSpec("nginx-gateway-fabric");
  assert.equal(ngf.urls[0], "oci://ghcr.io/nginx/charts/nginx-gateway-fabric:2.4.1");
  assert.equal(ngf.file, "nginx-gateway-fabric-2.4.1.tgz");
  assert.deepEqual(ngf.checksum, { type: "oci" });
});
