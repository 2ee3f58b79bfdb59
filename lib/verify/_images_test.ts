import assert from "node:assert/strict";
import { compareImages, parseImagesProbe } from "./_images.ts";

const D = (c: string) => `sha256:${c.repeat(64)}`;
const b64 = (value: unknown) => btoa(JSON.stringify(value));

const LOCK = [
  { name: "pause", ref: "registry.k8s.io/pause:3.10", hash: D("a"), manifest: D("b") },
  { name: "nginx", ref: "nginx:1.27", hash: D("c"), manifest: D("c") },
];

Deno.test("verify images: the probe's output becomes running containers with their digests", () => {
  const out = [
    `I\tregistry.k8s.io/pause:3.10\t${D("a")}`,
    `I\tdocker.io/library/nginx:1.27\t${D("c")}`,
    `I\t${D("e")}\t${D("c")}`,
    `C\tsandbox1\t${b64({ Image: "registry.k8s.io/pause:3.10", Labels: {} })}`,
    `C\tweb\t${
      b64({
        Image: D("e"),
        Labels: {
          "io.kubernetes.pod.namespace": "default",
          "io.kubernetes.pod.name": "web-1",
          "io.kubernetes.container.name": "nginx",
        },
      })
    }`,
    `C\tbroken\tnot-base64-json`,
    "",
  ].join("\n");
  const { containers, error } = parseImagesProbe(out);
  assert.equal(error, undefined);
  assert.deepEqual(containers, [
    { id: "sandbox1", image: "registry.k8s.io/pause:3.10", digest: D("a"), label: "" },
    { id: "web", image: D("e"), digest: D("c"), label: "default/web-1/nginx" },
    { id: "broken", image: "", digest: "", label: "" },
  ]);
  assert.deepEqual(parseImagesProbe("E\tctr is not on the node\n"), {
    containers: [],
    error: "ctr is not on the node",
  });
});

Deno.test("verify images: a container is fine only with the digest the lock pins", () => {
  const findings = compareImages([
    { id: "ok-tag", image: "registry.k8s.io/pause:3.10", digest: D("a"), label: "" },
    { id: "ok-manifest", image: "registry.k8s.io/pause:3.10", digest: D("b"), label: "" },
    { id: "ok-docker", image: "docker.io/library/nginx:1.27", digest: D("c"), label: "" },
    { id: "ok-id", image: D("e"), digest: D("c"), label: "" },
    { id: "moved", image: "registry.k8s.io/pause:3.10", digest: D("f"), label: "" },
    { id: "foreign", image: "dtk.test/other:1", digest: D("9"), label: "" },
    { id: "unknown", image: "x", digest: "", label: "" },
  ], LOCK);
  assert.deepEqual(findings.map((f) => [f.container.id, f.ok]), [
    ["ok-tag", true],
    ["ok-manifest", true],
    ["ok-docker", true],
    ["ok-id", true],
    ["moved", false],
    ["foreign", false],
    ["unknown", false],
  ]);
  assert.match(
    findings[4]!.detail!,
    /runs sha256:f+, the lock pins sha256:a+ for registry\.k8s\.io/,
  );
  assert.match(findings[5]!.detail!, /dtk\.test\/other:1 .* is not in the lock/);
});
