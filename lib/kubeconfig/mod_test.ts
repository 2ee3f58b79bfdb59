import assert from "node:assert/strict";
import { parse } from "yaml";
import { mergeKubeconfig } from "./mod.ts";

const dtk = (name: string, server: string) =>
  `apiVersion: v1
kind: Config
clusters:
- name: ${name}
  cluster: {server: ${server}, certificate-authority-data: Q0E=}
users:
- name: admin@${name}
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
contexts:
- name: ${name}
  context: {cluster: ${name}, user: admin@${name}}
current-context: ${name}
`;

const userConfig = `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://prod:6443"}
users:
- name: me
  user: {token: abc}
contexts:
- name: prod
  context: {cluster: prod, user: me, namespace: web}
current-context: prod
preferences: {colors: true}
`;

Deno.test("kubeconfig: merge keeps the user's entries and current context", () => {
  const r = mergeKubeconfig(userConfig, dtk("dev", "https://10.0.0.2:6443"));
  const doc = parse(r.text);
  assert.equal(r.context, "dev");
  assert.equal(r.replaced, false);
  assert.deepEqual(doc.contexts.map((c: { name: string }) => c.name), ["prod", "dev"]);
  assert.equal(doc["current-context"], "prod");
  assert.deepEqual(doc.preferences, { colors: true });
  assert.equal(doc.contexts[0].context.namespace, "web");
});

Deno.test("kubeconfig: two clusters side by side; re-merge replaces, never duplicates", () => {
  let text = mergeKubeconfig(undefined, dtk("a", "https://10.0.0.2:6443")).text;
  assert.equal(parse(text)["current-context"], "a");
  text = mergeKubeconfig(text, dtk("b", "https://10.0.0.3:6443")).text;
  const again = mergeKubeconfig(text, dtk("a", "https://10.0.0.9:6443"), { setCurrent: true });
  const doc = parse(again.text);
  assert.equal(again.replaced, true);
  assert.deepEqual(doc.clusters.map((c: { name: string }) => c.name), ["a", "b"]);
  assert.equal(doc.clusters[0].cluster.server, "https://10.0.0.9:6443");
  assert.equal(doc.users.length, 2);
  assert.equal(doc["current-context"], "a");
});

Deno.test("kubeconfig: a broken user file is refused, not overwritten", () => {
  assert.throws(() => mergeKubeconfig("clusters: [", dtk("a", "https://x:6443")), /Cannot parse/);
  assert.throws(() => mergeKubeconfig("- 1\n- 2\n", dtk("a", "https://x:6443")), /is not a map/);
});

const kubectl = await new Deno.Command("kubectl", {
  args: ["version", "--client"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);

Deno.test({
  name: `kubeconfig: the merge is accepted by kubectl${kubectl ? "" : " (skipped: no kubectl)"}`,
  ignore: !kubectl,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = mergeKubeconfig(userConfig, dtk("dev", "https://10.0.0.2:6443")).text;
    await Deno.writeTextFile(`${dir}/config`, text);
    const out = await new Deno.Command("kubectl", {
      args: ["config", "get-contexts", "-o", "name", "--kubeconfig", `${dir}/config`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(new TextDecoder().decode(out.stdout).trim().split("\n").sort(), [
      "dev",
      "prod",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
