/**
 * What the e2e tests of a whole dtk cluster on harness nodes share: the test entry of dtk, why the
 * tests cannot run here (if they cannot), the render overrides nspawn nodes need, and a command on
 * a node reached the way dtk reaches it.
 *
 * @module
 */
import { join } from "node:path";
import { k8sStatus, nodeSupport } from "../harness/mod.ts";
import { StateStore } from "../../lib/pipeline/mod.ts";
import { SshRemote } from "../../lib/remote/mod.ts";
import { credentialsFromKubeconfig } from "../../lib/kube/mod.ts";

/** dtk with the test-only nspawn driver registered (`tests/harness/dtk.ts`). */
export const DTK_TEST_MAIN = new URL("../harness/dtk.ts", import.meta.url).pathname;

/** The reason the cluster e2e tests skip (not asked for, no nodes, no Kubernetes build), or undefined. */
export function clusterSkipReason(): string | undefined {
  if (Deno.env.get("DTK_E2E") !== "1") return "set DTK_E2E=1 (deno task e2e)";
  const support = nodeSupport();
  if (!support.ok) return support.reason;
  const k8s = k8sStatus();
  return k8s.ok ? undefined : k8s.reason;
}

/**
 * `test-nspawn.renderOverrides` for harness nodes: nspawn containers share the host's cgroup tree
 * and may not lower their OOM score, so the kubelet and containerd run with what a container allows.
 */
export const NSPAWN_RENDER_OVERRIDES = {
  cgroupDriver: "cgroupfs",
  restrictOomScoreAdj: true,
  noOomScoreAdjust: true,
  kubelet: { cgroupsPerQOS: false, enforceNodeAllocatable: [], failSwapOn: false },
} as const;

/** The Remote dtk would use for `node` of the cluster whose folder is `generated`. */
export async function nodeRemote(
  generated: string,
  node: string,
  options: { cluster: string },
): Promise<SshRemote> {
  const state = await StateStore.open(join(generated, "state.json"), options.cluster);
  const address = state.node(node)!;
  return new SshRemote({
    node,
    host: address.ssh.host,
    port: address.ssh.port,
    identityFile: join(generated, "ssh", "id_ed25519"),
    knownHostsFile: join(generated, "ssh", "known_hosts"),
    controlDir: join(generated, "ssh"),
  });
}

/**
 * Runs `command` on `node` the way dtk reaches it: the address in its state, its key and its
 * pinned host key.
 */
export async function execOnNode(
  generated: string,
  node: string,
  options: { cluster: string; command: string; timeoutMs: number },
) {
  const remote = await nodeRemote(generated, node, options);
  try {
    return await remote.exec(options.command, { timeoutMs: options.timeoutMs });
  } finally {
    await remote.close();
  }
}

/**
 * The HTTP codes, one a line, of kube-controller-manager's and kube-scheduler's `/configz` on
 * their secure ports (10257, 10259) of `node`, asked with the admin client certificate of
 * `kubeconfig`: `200\n200` when both authenticate it and authorize it through the apiserver.
 */
export async function configzCodes(
  generated: string,
  node: string,
  options: { cluster: string; kubeconfig: string },
): Promise<{ codes: string; stderr: string }> {
  const admin = credentialsFromKubeconfig(await Deno.readTextFile(options.kubeconfig));
  const r = await execOnNode(generated, node, {
    cluster: options.cluster,
    timeoutMs: 30_000,
    command:
      `d=$(mktemp -d) && umask 077 && cat > $d/c.pem <<'EOF'\n${admin.certPem.trim()}\nEOF\n` +
      `cat > $d/k.pem <<'EOF'\n${admin.keyPem.trim()}\nEOF\n` +
      "for port in 10257 10259; do curl -sk -o /dev/null -w '%{http_code}\\n' " +
      '--cert $d/c.pem --key $d/k.pem "https://127.0.0.1:$port/configz"; done; rm -rf $d',
  });
  return { codes: r.stdout.trim(), stderr: r.stderr };
}
