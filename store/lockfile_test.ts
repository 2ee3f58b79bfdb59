import assert from "node:assert/strict";
import { artifactFileName, isSafeName, parseLock, serializeLock } from "./lockfile.ts";
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
