/**
 * The image lists of the add-on registry: one for every add-on's pinned chart, every reference
 * fully spelled out, the default config's exact set, and the refusal for a chart version the
 * registry has no list for.
 */
import assert from "node:assert/strict";
import {
  type AddonName,
  ADDONS,
  chartImages,
  imageKey,
  requiredImages,
  unlistedCharts,
  whyImage,
} from "../../lib/addons/mod.ts";
import { ADDON_CHARTS } from "../../lib/catalog/mod.ts";
import { defaultConfig } from "../../lib/config/mod.ts";
import { ConfigError } from "../../lib/errors/mod.ts";
import { parseImageReference } from "../../lib/registry/mod.ts";
import { PAUSE_IMAGE } from "../../lib/render/mod.ts";
import { otherTestConfig } from "./_fixtures.ts";

Deno.test("every add-on has an image list for the chart version the catalogue pins", () => {
  for (const name of ADDONS.keys()) {
    const version = ADDON_CHARTS[name]!.version;
    const list = chartImages(name, version);
    assert.ok(list, `${name} ${version} has no image list`);
    assert.ok(list.images.length > 0, `${name} ${version} lists no image`);
    assert.ok(list.source.length > 0, `${name} ${version} names no source`);
  }
});

Deno.test("every listed reference names its registry and tag, once, with a well-formed digest", () => {
  for (const [name, def] of ADDONS) {
    for (const [version, list] of Object.entries(def.images)) {
      const keys = new Set<string>();
      for (const image of list.images) {
        const at = `${name} ${version} ${image.ref}`;
        const parsed = parseImageReference(image.ref);
        assert.equal(parsed.digest, undefined, `${at}: the digest goes in "digest"`);
        // Spelled as the cluster's containerd names it: no Docker short forms to normalise.
        assert.equal(imageKey(image.ref), image.ref, `${at}: not fully qualified`);
        assert.ok(image.ref.startsWith(`${parsed.registry}/`), `${at}: no registry host`);
        if (image.digest !== undefined) assert.match(image.digest, /^sha256:[0-9a-f]{64}$/, at);
        assert.ok(!keys.has(image.ref), `${at}: listed twice`);
        keys.add(image.ref);
      }
      for (const ref of list.notPulled ?? []) assert.ok(!keys.has(ref), `${name}: ${ref}`);
    }
  }
});

/** The default config's image set, per add-on: the closing note of issue 13 quotes it. */
const DEFAULT_SET: [string, string][] = [
  ["sandbox", "registry.k8s.io/pause:3.10"],
  ["cilium", "quay.io/cilium/cilium:v1.18.5"],
  [
    "cilium",
    "quay.io/cilium/cilium-envoy:v1.34.12-1765374555-6a93b0bbba8d6dc75b651cbafeedb062b2997716",
  ],
  ["cilium", "quay.io/cilium/operator-generic:v1.18.5"],
  ["coredns", "docker.io/coredns/coredns:1.13.1"],
  ["nginx-gateway-fabric", "ghcr.io/nginx/nginx-gateway-fabric:2.4.1"],
  ["nginx-gateway-fabric", "ghcr.io/nginx/nginx-gateway-fabric/nginx:2.4.1"],
  ["cert-manager", "quay.io/jetstack/cert-manager-controller:v1.19.2"],
  ["cert-manager", "quay.io/jetstack/cert-manager-webhook:v1.19.2"],
  ["cert-manager", "quay.io/jetstack/cert-manager-cainjector:v1.19.2"],
  ["cert-manager", "quay.io/jetstack/cert-manager-acmesolver:v1.19.2"],
  ["cert-manager", "quay.io/jetstack/cert-manager-startupapicheck:v1.19.2"],
  ["kube-prometheus-stack", "quay.io/prometheus-operator/prometheus-operator:v0.87.1"],
  ["kube-prometheus-stack", "quay.io/prometheus-operator/prometheus-config-reloader:v0.87.1"],
  ["kube-prometheus-stack", "quay.io/prometheus/prometheus:v3.8.1"],
  ["kube-prometheus-stack", "quay.io/prometheus/alertmanager:v0.30.0"],
  ["kube-prometheus-stack", "ghcr.io/jkroepke/kube-webhook-certgen:1.7.3"],
  ["kube-prometheus-stack", "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.17.0"],
  ["kube-prometheus-stack", "quay.io/prometheus/node-exporter:v1.10.2"],
  ["kube-prometheus-stack", "docker.io/grafana/grafana:12.3.0"],
  ["kube-prometheus-stack", "quay.io/kiwigrid/k8s-sidecar:2.1.2"],
  ["headlamp", "ghcr.io/headlamp-k8s/headlamp:v0.40.0"],
  ["metrics-server", "registry.k8s.io/metrics-server/metrics-server:v0.8.0"],
  ["openebs", "docker.io/openebs/provisioner-localpv:4.4.0"],
  ["openebs", "docker.io/openebs/linux-utils:4.3.0"],
];

Deno.test("the default config needs exactly its sandbox and add-on images, sandbox first", () => {
  const images = requiredImages(defaultConfig({ dir: "/cfg" }));
  assert.deepEqual(images.map((i) => [i.addon, i.ref]), DEFAULT_SET);
  assert.equal(images[0]?.ref, PAUSE_IMAGE);
  const cilium = images.find((i) => i.ref === "quay.io/cilium/cilium:v1.18.5");
  assert.equal(
    cilium?.digest,
    "sha256:2c92fb05962a346eaf0ce11b912ba434dc10bd54b9989e970416681f4a069628",
  );
  const reloader = images.find((i) => i.ref.includes("prometheus-config-reloader"));
  assert.match(reloader?.via ?? "", /--prometheus-config-reloader/);
});

Deno.test("static control plane pods add their images after the sandbox; each image once", () => {
  const config = otherTestConfig("/cfg");
  config.addons.find((a) => a.name === "cilium")!.chartVersion = undefined;
  const images = requiredImages(config);
  assert.deepEqual(images.slice(0, 3).map((i) => [i.addon, i.ref]), [
    ["sandbox", PAUSE_IMAGE],
    ["control-plane", "quay.io/coreos/etcd:v3.6.7"],
    ["control-plane", "registry.k8s.io/kube-scheduler:v1.35.0"],
  ]);
  assert.ok(images.some((i) => i.addon === "ingress-nginx"));
  // Every add-on at once: references shared by add-ons still appear once.
  for (const a of config.addons) a.enabled = true;
  config.addons.push({
    name: "vcluster",
    enabled: true,
    sslPassthrough: false,
    chartVersion: undefined,
  });
  const all = requiredImages(config);
  const keys = all.map((i) => imageKey(i.ref));
  assert.equal(new Set(keys).size, keys.length);
  assert.equal(whyImage(config, "docker.io/coredns/coredns:1.12.1")[0]?.addon, "vcluster");
});

Deno.test("a chart version without an image list is refused by name, or left out when asked", () => {
  const config = otherTestConfig("/cfg"); // cilium chart-version 1.18.4
  assert.throws(
    () => requiredImages(config),
    (e: unknown) =>
      e instanceof ConfigError && /"cilium" chart "1\.18\.4" has no image list/.test(e.message) &&
      e.issues[0]?.path === "addons[1].chart-version" && /1\.18\.5/.test(e.issues[0]?.hint ?? ""),
  );
  assert.deepEqual(unlistedCharts(config), [
    { addon: "cilium", version: "1.18.4", listed: ["1.18.5"], index: 1 },
  ]);
  const images = requiredImages(config, { skipUnlisted: true });
  assert.ok(!images.some((i) => i.addon === "cilium"));
  assert.ok(images.some((i) => i.addon === "coredns"));
  assert.deepEqual(unlistedCharts(defaultConfig({ dir: "/cfg" })), []);
});

Deno.test("whyImage finds the add-ons of short, tagless and digest references", () => {
  const config = defaultConfig({ dir: "/cfg" });
  const who = (ref: string) => whyImage(config, ref).map((i) => i.addon);
  assert.deepEqual(who("coredns/coredns:1.13.1"), ["coredns"]);
  assert.deepEqual(who("registry.k8s.io/pause:3.10"), ["sandbox"]);
  assert.deepEqual(who("quay.io/jetstack/cert-manager-acmesolver"), ["cert-manager"]);
  assert.deepEqual(
    who(
      "quay.io/cilium/cilium@sha256:2c92fb05962a346eaf0ce11b912ba434dc10bd54b9989e970416681f4a069628",
    ),
    ["cilium"],
  );
  assert.deepEqual(who("quay.io/cilium/cilium@sha256:" + "0".repeat(64)), []);
  assert.deepEqual(who("coredns/coredns:1.12.1"), []);
  assert.deepEqual(who("docker.io/library/nginx:latest"), []);
  // A disabled add-on's images are not needed.
  assert.deepEqual(who("registry.k8s.io/ingress-nginx/controller:v1.14.1"), []);
  const name: AddonName = "ingress-nginx";
  config.addons.find((a) => a.name === name)!.enabled = true;
  assert.deepEqual(who("registry.k8s.io/ingress-nginx/controller:v1.14.1"), [name]);
});
