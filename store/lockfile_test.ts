import assert from "node:assert/strict";
import {
  artifactFileName,
  imageArtifactName,
  isSafeName,
  parseLock,
  serializeLock,
} from "./lockfile.ts";
import { parseHash } from "./_hash.ts";

const HEX = "999e4874de50139f40929d6a9f4844efc66ad09647dc0e84031daca4711f12b6";

Deno.test("hashes: sha256:hex, SRI and bare hex normalise to hex; junk is refused", () => {
  const sri = "sha256-" +
    btoa(String.fromCharCode(...HEX.match(/../g)!.map((h) => parseInt(h, 16))));
  assert.equal(parseHash(`sha256:${HEX}`), HEX);
  assert.equal(parseHash(HEX.toUpperCase()), HEX);
  assert.equal(parseHash(sri), HEX);
  assert.equal(parseHash("sha256:abc"), undefined);
  assert.equal(parseHash("md5:" + HEX), undefined);
});

Deno.test("canonical form: sorted keys, 2 spaces, trailing newline, stable", () => {
  const lock = parseLock({
    artifacts: {
      b: { urls: ["https://x/b"], hash: HEX },
      a: { hash: HEX, urls: ["https://x/a"], size: 3 },
    },
    version: 1,
  });
  const text = serializeLock(lock);
  assert.ok(text.endsWith("}\n"));
  assert.ok(text.indexOf('"a"') < text.indexOf('"b"'));
  assert.ok(text.indexOf('"arch"') < text.indexOf('"hash"'));
  assert.ok(text.startsWith('{\n  "artifacts": {\n    "a": {\n      "arch"'), text);
  assert.equal(serializeLock(parseLock(JSON.parse(text))), text);
  assert.equal(lock.artifacts.b?.hash, `sha256:${HEX}`);
  assert.equal(lock.artifacts.b?.size, null);
});

Deno.test("names from locks and URLs never escape the store", () => {
  for (const bad of ["../x", "..", "a/b", "/etc/passwd", ".hidden", ""]) {
    assert.equal(isSafeName(bad), false, bad);
    assert.throws(
      () => parseLock({ artifacts: { [bad]: { urls: [], hash: HEX } } }),
      /not a plain file name/,
    );
  }
  assert.throws(
    () => parseLock({ artifacts: { a: { urls: [], hash: HEX, file: "../../x" } } }),
    /"file" must be a plain file name/,
  );
  assert.throws(
    () => parseLock({ artifacts: { a: { urls: ["ftp://x"], hash: HEX } } }),
    /not http/,
  );
  assert.throws(
    () => parseLock({ artifacts: { a: { urls: [], hash: "sha256:12" } } }),
    /needs "hash"/,
  );
  assert.throws(() => parseLock({ version: 2, artifacts: {} }), /unsupported version/);
  // A URL whose last segment is unsafe falls back to the artifact's name.
  assert.equal(artifactFileName("kubelet", { urls: ["https://x/a/.."] }), "kubelet");
  assert.equal(
    artifactFileName("c", { urls: ["oci://ghcr.io/nginx/charts/ngf:2.4.1"] }),
    "ngf-2.4.1.tgz",
  );
  assert.equal(artifactFileName("c", { urls: ["https://x/y/z.tgz?sig=1"] }), "z.tgz");
});

Deno.test("image entries: hand-written ref + hash gets kind, source, arch, version; canonical", () => {
  const lock = parseLock({
    requested: { arch: "arm64" },
    artifacts: {
      "registry.k8s.io+pause@3.10": { ref: "registry.k8s.io/pause:3.10", hash: HEX },
    },
  });
  const a = lock.artifacts["registry.k8s.io+pause@3.10"]!;
  assert.equal(a.kind, "image");
  assert.equal(a.source, "registry");
  assert.equal(a.arch, "arm64");
  assert.equal(a.version, "3.10");
  assert.equal(a.hash, `sha256:${HEX}`);
  assert.deepEqual(a.urls, []);
  const text = serializeLock(lock);
  assert.equal(serializeLock(parseLock(JSON.parse(text))), text);
  assert.ok(text.indexOf('"hash"') < text.indexOf('"ref"'));
  const full = parseLock({
    artifacts: {
      x: {
        kind: "image",
        ref: "quay.io/cilium/cilium:v1.18.5",
        hash: `sha256:${HEX}`,
        manifest: HEX.toUpperCase(),
        arch: "amd64",
        size: 10,
        urls: [],
      },
    },
  });
  assert.equal(full.artifacts.x!.manifest, `sha256:${HEX}`);
  assert.equal(full.artifacts.x!.arch, "amd64");
});

Deno.test("image entries: bad ref, bad manifest, urls, a digest that disagrees are refused", () => {
  const bad = (entry: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => parseLock({ artifacts: { x: { hash: HEX, ...entry } } }), pattern);
  bad({ ref: "Not A Ref" }, /not a valid image reference/);
  bad({ kind: "image" }, /needs "ref"/);
  bad({ ref: "pause:3.10", manifest: "sha256:abc" }, /"manifest" must be/);
  bad({ ref: "pause:3.10", urls: ["https://x/y"] }, /"urls" must be empty/);
  bad({ ref: `pause@sha256:${"0".repeat(64)}` }, /pins sha256:0+ but "hash"/);
  bad({ ref: "pause:3.10", arch: "noarch" }, /needs "arch"/);
  bad({ kind: "binary", ref: "pause:3.10" }, /belong to kind "image" only/);
});

Deno.test("imageArtifactName: host + repository path, / as +, @tag; ports and digests", () => {
  assert.equal(imageArtifactName("registry.k8s.io/pause:3.10"), "registry.k8s.io+pause@3.10");
  assert.equal(
    imageArtifactName("quay.io/cilium/cilium:v1.18.5"),
    "quay.io+cilium+cilium@v1.18.5",
  );
  assert.equal(imageArtifactName("nginx"), "docker.io+library+nginx@latest");
  assert.equal(imageArtifactName("127.0.0.1:5000/a/b:1"), "127.0.0.1_5000+a+b@1");
  assert.equal(
    imageArtifactName(`busybox@sha256:${HEX}`),
    `docker.io+library+busybox@sha256-${HEX.slice(0, 12)}`,
  );
  for (const ref of ["registry.k8s.io/pause:3.10", "127.0.0.1:5000/a/b:1", "[::1]:5000/x:y"]) {
    assert.ok(isSafeName(imageArtifactName(ref)), ref);
  }
});
