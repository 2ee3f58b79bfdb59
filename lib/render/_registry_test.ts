import assert from "node:assert/strict";
import { type Config, defaultConfig } from "../config/mod.ts";
import { renderRegistryHosts, renderStep, upstreamServer } from "./mod.ts";

const BASE = defaultConfig({ dir: "/nonexistent" });
const ENDPOINT = "http://10.231.0.1:5380";

function withMirror(name: string, text: string): Config {
  return {
    ...BASE,
    k8s: { ...BASE.k8s, containerdMirror: { enabled: true, name, config: text } },
  };
}

const USER_MIRROR = 'server = "https://mirror.example"\n\n[host."https://mirror.example"]\n' +
  '  capabilities = ["pull", "resolve"]\n';

Deno.test("registry hosts: one file per upstream registry, dtk's registry first, upstream last", () => {
  const files = renderRegistryHosts(BASE, {
    endpoint: ENDPOINT,
    registries: ["quay.io", "docker.io", "quay.io"],
    offline: false,
  });
  assert.deepEqual(files.map((f) => f.path), [
    "/etc/containerd/certs.d/docker.io/hosts.toml",
    "/etc/containerd/certs.d/quay.io/hosts.toml",
  ]);
  const quay = files[1]!.content;
  assert.match(quay, /^server = "https:\/\/quay\.io"$/m);
  assert.match(
    quay,
    /^\[host\."http:\/\/10\.231\.0\.1:5380"\]\n {2}capabilities = \["pull", "resolve"\]$/m,
  );
  assert.match(files[0]!.content, /^server = "https:\/\/registry-1\.docker\.io"$/m);
  assert.equal(files[0]!.mode, 0o644);
});

Deno.test("registry hosts: --offline makes dtk's registry the server too", () => {
  const [file] = renderRegistryHosts(BASE, {
    endpoint: ENDPOINT,
    registries: ["registry.k8s.io"],
    offline: true,
  });
  assert.match(file!.content, /^server = "http:\/\/10\.231\.0\.1:5380"$/m);
  assert.doesNotMatch(file!.content, /registry\.k8s\.io"/);
});

Deno.test("registry hosts: the user's mirror of the same registry follows dtk's host in one file", () => {
  const files = renderRegistryHosts(withMirror("quay.io", USER_MIRROR), {
    endpoint: ENDPOINT,
    registries: ["quay.io"],
    offline: false,
  });
  assert.equal(files.length, 1, "one file per registry folder: containerd reads only one");
  const text = files[0]!.content;
  assert.match(text, /^server = "https:\/\/mirror\.example"$/m);
  const dtk = text.indexOf(`[host."${ENDPOINT}"]`);
  const user = text.indexOf('[host."https://mirror.example"]');
  assert.ok(dtk >= 0 && user > dtk, "dtk's host first, then the user's");
});

Deno.test("registry hosts: a _default mirror stays, and its hosts join every registry's file", () => {
  const config = withMirror("_default", USER_MIRROR);
  const files = renderRegistryHosts(config, {
    endpoint: ENDPOINT,
    registries: ["quay.io"],
    offline: true,
  });
  assert.deepEqual(files.map((f) => f.path), [
    "/etc/containerd/certs.d/_default/hosts.toml",
    "/etc/containerd/certs.d/quay.io/hosts.toml",
  ]);
  assert.equal(files[0]!.content, USER_MIRROR);
  assert.match(files[1]!.content, /\[host\."https:\/\/mirror\.example"\]/);
  assert.match(files[1]!.content, /^server = "http:\/\/10\.231\.0\.1:5380"$/m, "offline wins");
  // Without dtk's registry only the user's file is written, as before.
  assert.deepEqual(renderRegistryHosts(config, undefined), [files[0]]);
  assert.deepEqual(renderRegistryHosts(BASE, undefined), []);
});

Deno.test("registry hosts: the containerd step carries them, and the config names config_path", () => {
  const step = renderStep("containerd", {
    config: BASE,
    nodes: [{ name: "vm1", ip: "10.0.0.2", podCidr: "10.200.0.0/24" }],
    node: "vm1",
    imageRegistry: { endpoint: ENDPOINT, registries: ["quay.io"], offline: false },
  });
  assert.ok(step.files.some((f) => f.path === "/etc/containerd/certs.d/quay.io/hosts.toml"));
  const config = step.files.find((f) => f.path.endsWith("config.toml"))!.content;
  assert.match(config, /config_path = "\/etc\/containerd\/certs\.d"/);
});

Deno.test("registry hosts: upstream servers follow Docker's rules", () => {
  assert.equal(upstreamServer("docker.io"), "https://registry-1.docker.io");
  assert.equal(upstreamServer("127.0.0.1:5000"), "http://127.0.0.1:5000");
  assert.equal(upstreamServer("localhost:5000"), "http://localhost:5000");
  assert.equal(upstreamServer("ghcr.io"), "https://ghcr.io");
});
