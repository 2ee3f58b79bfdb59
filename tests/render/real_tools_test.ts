/**
 * The rendered files checked by the real programs that read them, where this machine has them:
 * Python's TOML parser (both containerd schemas), Debian's containerd 1.6 (`config dump` of the
 * version-2 config), Debian's etcd 3.4 and the Kubernetes 1.20.2 binaries of the test harness
 * (every rendered flag must be one the binary knows).
 */
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { type Config, defaultConfig } from "../../lib/config/mod.ts";
import {
  apiserverFlags,
  controllerManagerFlags,
  etcdFlags,
  NODE_PATHS,
  renderContainerdConfig,
  type RenderNode,
  renderNode,
  schedulerFlags,
} from "../../lib/render/mod.ts";

const BASE = defaultConfig({ dir: "/nonexistent" });
const NODES: RenderNode[] = [
  { name: "vm1", ip: "10.231.0.11", podCidr: "10.200.0.0/24" },
  { name: "vm2", ip: "10.231.0.12", podCidr: "10.200.1.0/24" },
];
const V120: Config = {
  ...BASE,
  k8s: { ...BASE.k8s, kubeProxy: true },
  versions: { ...BASE.versions, kubernetes: "v1.20.2", containerd: "1.6.20", etcd: "v3.4.23" },
};
const K8S_BIN = join(Deno.env.get("DTK_TEST_CACHE") ?? "/var/cache/dtk-test", "k8s-1.20.2", "bin");

function runs(argv: string[]): boolean {
  try {
    return new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function output(argv: string[]): { code: number; text: string } {
  const out = new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped", stderr: "piped" })
    .outputSync();
  const d = new TextDecoder();
  return { code: out.code, text: d.decode(out.stdout) + d.decode(out.stderr) };
}

const hasTomllib = runs(["python3", "-c", "import tomllib"]);
const hasContainerd16 = (() => {
  try {
    return /\s1\.\d+\.\d+/.test(output(["containerd", "--version"]).text);
  } catch {
    return false;
  }
})();
const hasEtcd = runs(["etcd", "--version"]);
const hasK8s = (() => {
  try {
    return Deno.statSync(join(K8S_BIN, "kube-apiserver")).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: `render: containerd configs are valid TOML${
    hasTomllib ? "" : " (skipped: no python3 with tomllib)"
  }`,
  ignore: !hasTomllib,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-render-" });
    try {
      const configs = [BASE, V120].map((c) => renderContainerdConfig(c));
      const paths = await Promise.all(configs.map(async (text, i) => {
        const path = join(dir, `config-${i}.toml`);
        await Deno.writeTextFile(path, text);
        return path;
      }));
      const script = "import json,sys,tomllib\n" +
        "print(json.dumps([tomllib.load(open(p,'rb')) for p in sys.argv[1:]]))";
      const { code, text } = output(["python3", "-c", script, ...paths]);
      ok(code === 0, text);
      const [v3, v2] = JSON.parse(text);
      deepStrictEqual(v3.version, 3);
      deepStrictEqual(
        v3.plugins["io.containerd.cri.v1.runtime"].containerd.runtimes.runc.options.SystemdCgroup,
        true,
      );
      deepStrictEqual(
        v3.plugins["io.containerd.cri.v1.images"].pinned_images.sandbox,
        "registry.k8s.io/pause:3.10",
      );
      deepStrictEqual(v2.version, 2);
      deepStrictEqual(
        v2.plugins["io.containerd.grpc.v1.cri"].containerd.runtimes.runc.options.SystemdCgroup,
        true,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `render: containerd 1.6 loads the version-2 config${
    hasContainerd16 ? "" : " (skipped: no containerd 1.x)"
  }`,
  ignore: !hasContainerd16,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-render-" });
    try {
      const path = join(dir, "config.toml");
      await Deno.writeTextFile(path, renderContainerdConfig(V120, { restrictOomScoreAdj: true }));
      const { code, text } = output(["containerd", "--config", path, "config", "dump"]);
      ok(code === 0, text);
      // What containerd itself read back, not what we wrote.
      match(text, /SystemdCgroup = true/);
      match(text, /sandbox_image = "registry\.k8s\.io\/pause:3\.10"/);
      match(text, /config_path = "\/etc\/containerd\/certs\.d"/);
      match(text, /restrict_oom_score_adj = true/);
      match(text, /conf_dir = "\/etc\/cni\/net\.d"/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function flagNames(flags: readonly (readonly string[])[]): string[] {
  return flags.map((f) => f[0]!);
}

function unknownFlags(binary: string, names: string[]): string[] {
  const { text } = output([binary, "--help"]);
  return names.filter((n) => !new RegExp(`--${n.replaceAll("-", "\\-")}[\\s=]`).test(text));
}

Deno.test({
  name: `render: Debian's etcd knows every etcd flag${hasEtcd ? "" : " (skipped: no etcd)"}`,
  ignore: !hasEtcd,
  fn: () => {
    deepStrictEqual(unknownFlags("etcd", flagNames(etcdFlags(NODES[0]!))), []);
  },
});

function execFlags(unit: string): string[] {
  return [...unit.matchAll(/^\s+--([a-z0-9-]+)/gm)].map((m) => m[1]!);
}

Deno.test({
  name: `render: the Kubernetes 1.20.2 binaries know every rendered flag${
    hasK8s ? "" : ` (skipped: no binaries in ${K8S_BIN}; tests/harness/build_k8s.sh builds them)`
  }`,
  ignore: !hasK8s,
  fn: () => {
    const files = renderNode({ config: V120, nodes: NODES, node: "vm1" }).flatMap((s) => s.files);
    const unit = (name: string) =>
      files.find((f) => f.path === `${NODE_PATHS.systemdDir}/${name}.service`)?.content ?? "";
    const bin = (name: string) => join(K8S_BIN, name);
    deepStrictEqual(
      unknownFlags(bin("kube-apiserver"), flagNames(apiserverFlags(V120, NODES[0]!))),
      [],
    );
    deepStrictEqual(
      unknownFlags(bin("kube-controller-manager"), flagNames(controllerManagerFlags(V120))),
      [],
    );
    deepStrictEqual(unknownFlags(bin("kube-scheduler"), flagNames(schedulerFlags())), []);
    deepStrictEqual(unknownFlags(bin("kubelet"), execFlags(unit("kubelet"))), []);
    deepStrictEqual(unknownFlags(bin("kube-proxy"), execFlags(unit("kube-proxy"))), []);
  },
});
