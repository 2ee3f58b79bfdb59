/**
 * The `helm template` check of the image lists, against the recording fake helm: the argv, the
 * values dtk gives it, the images read from what it renders (fields, operator flags, env), and
 * the ones a list lacks reported; a chart not in the store or a failing helm is reported, never
 * thrown.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkChartImages, renderedImages, unlistedImages } from "../../lib/addons/mod.ts";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";
import { defaultTestConfig, parseLog, type Sandbox, sandbox } from "./_fixtures.ts";

/** What `helm template` of cert-manager v1.19.2 renders, cut down to what names images. */
const CERT_MANAGER = `---
apiVersion: apps/v1
kind: Deployment
metadata: { name: cert-manager }
spec:
  template:
    spec:
      containers:
        - name: cert-manager-controller
          image: "quay.io/jetstack/cert-manager-controller:v1.19.2"
          args:
            - --v=2
            - --acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:v1.19.2
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: cert-manager-webhook }
spec:
  template:
    spec:
      containers:
        - name: cert-manager-webhook
          image: "quay.io/jetstack/cert-manager-webhook:v1.19.2"
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: cert-manager-cainjector }
spec:
  template:
    spec:
      containers:
        - name: cert-manager-cainjector
          image: "quay.io/jetstack/cert-manager-cainjector:v1.19.2"
---
apiVersion: batch/v1
kind: Job
metadata:
  name: cert-manager-startupapicheck
  annotations: { helm.sh/hook: post-install }
spec:
  template:
    spec:
      containers:
        - name: cert-manager-startupapicheck
          image: "quay.io/jetstack/cert-manager-startupapicheck:v1.19.2"
`;

/** An image the list does not have, as a new chart release might add one. */
const EXTRA = `---
apiVersion: apps/v1
kind: Deployment
metadata: { name: cert-manager-extra }
spec:
  template:
    spec:
      initContainers:
        - name: extra
          image: quay.io/jetstack/cert-manager-extra:v1.19.2
`;

function runnerFor(box: Sandbox): Runner {
  const local = new LocalRunner();
  return {
    run: (argv, options = {}) =>
      local.run(argv, { ...options, env: { ...box.env, ...options.env } }),
  };
}

function config(dir: string) {
  const c = defaultTestConfig(dir);
  for (const a of c.addons) a.enabled = a.name === "cert-manager" || a.name === "openebs";
  return c;
}

Deno.test("renderedImages: image fields and maps, known operator flags, *IMAGE env", () => {
  const yaml = `apiVersion: v1
kind: Pod
spec:
  containers:
    - name: a
      image: quay.io/a/a:v1
      args: ["--prometheus-config-reloader=quay.io/p/reloader:v0.87.1",
             "--prometheus-default-base-image=quay.io/prometheus/prometheus",
             "--other=quay.io/not/an-image:v1"]
      env:
        - { name: OPENEBS_IO_HELPER_IMAGE, value: "openebs/linux-utils:4.3.0" }
        - { name: OTHER, value: "quay.io/not/env:v1" }
    - name: b
      image: quay.io/a/a:v1
---
apiVersion: gateway.nginx.org/v1alpha2
kind: NginxProxy
spec:
  kubernetes:
    deployment:
      container:
        image: { repository: ghcr.io/nginx/nginx-gateway-fabric/nginx, tag: 2.4.1 }
`;
  assert.deepEqual(renderedImages(yaml), [
    "quay.io/a/a:v1",
    "quay.io/p/reloader:v0.87.1",
    "openebs/linux-utils:4.3.0",
    "ghcr.io/nginx/nginx-gateway-fabric/nginx:2.4.1",
  ]);
  // Short names compare as the cluster expands them; notPulled ones are not reported.
  assert.deepEqual(
    unlistedImages("openebs", "4.4.0", ["openebs/linux-utils:4.3.0", "openebs/other:1"]),
    ["openebs/other:1"],
  );
  assert.deepEqual(
    unlistedImages("external-dns", "1.19.0", [
      "registry.k8s.io/external-dns/external-dns:v0.19.0",
      "registry.invalid/dtk/no-sidecar:none",
    ]),
    [],
  );
});

Deno.test("helm template check: dtk's values and kube version go to helm; a missing image is named", async () => {
  const box = await sandbox();
  try {
    const manifests = join(box.dir, "rendered.yaml");
    await Deno.writeTextFile(manifests, CERT_MANAGER + EXTRA);
    box.env.FAKE_HELM_TEMPLATE = manifests;
    const chart = join(box.dir, "cert-manager.tgz");
    const checks = await checkChartImages(config(box.dir), {
      runner: runnerFor(box),
      chartPath: (name) => Promise.resolve(name === "cert-manager" ? chart : undefined),
      tmpDir: box.dir,
    });
    assert.deepEqual(checks.map((c) => [c.addon, c.status, c.missing]), [
      ["cert-manager", "checked", ["quay.io/jetstack/cert-manager-extra:v1.19.2"]],
      ["openebs", "no-chart", []],
    ]);
    const log = await box.readLog();
    const [call] = parseLog(log);
    assert.deepEqual(call!.slice(0, 5), ["helm", "template", "cert-manager", chart, "--namespace"]);
    assert.equal(call![call!.indexOf("--kube-version") + 1], "v1.35.0");
    assert.ok(call!.includes("--skip-tests"));
    assert.match(log, /\| values: \{"crds":\{"enabled":true\}\}/);
    // The values file does not outlive the check.
    assert.ok(![...Deno.readDirSync(box.dir)].some((e) => e.name.endsWith(".values.json")));
    // The same chart rendering only listed images: nothing to report.
    await Deno.writeTextFile(manifests, CERT_MANAGER);
    const clean = await checkChartImages(config(box.dir), {
      runner: runnerFor(box),
      chartPath: (name) => Promise.resolve(name === "cert-manager" ? chart : undefined),
      tmpDir: box.dir,
    });
    assert.deepEqual(clean[0]?.missing, []);
  } finally {
    await box.cleanup();
  }
});

Deno.test("helm template check: a failing helm is reported for its add-on, not thrown", async () => {
  const box = await sandbox({ FAKE_HELM_MODE: "fail" });
  try {
    const checks = await checkChartImages(config(box.dir), {
      runner: runnerFor(box),
      chartPath: () => Promise.resolve(join(box.dir, "chart.tgz")),
      tmpDir: box.dir,
    });
    assert.deepEqual(checks.map((c) => [c.addon, c.status]), [
      ["cert-manager", "failed"],
      ["openebs", "failed"],
    ]);
    assert.match(checks[0]?.error?.message ?? "", /helm template of add-on "cert-manager"/);
  } finally {
    await box.cleanup();
  }
});
