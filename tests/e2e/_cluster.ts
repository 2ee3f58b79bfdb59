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

/** A finished command of an e2e test. */
export interface CommandRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `argv` with the e2e environment (no colour, no Rust backtraces, the test drivers).
 * `echo` copies its stderr to the test's: `live` as it comes, `after` once it ends, `tail` the
 * last 4,000 characters once it ends. `interruptWhen`: Ctrl-C once stderr matches, as a user
 * would press it.
 */
export async function runCommand(
  argv: string[],
  options: {
    env?: Record<string, string>;
    cwd?: string;
    stdin?: string;
    echo?: "live" | "after" | "tail";
    interruptWhen?: RegExp;
  } = {},
): Promise<CommandRun> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", DTK_TEST_DRIVERS: "1", ...options.env },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const decoder = new TextDecoder();
  let stderr = "";
  let interrupted = false;
  const readErr = (async () => {
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      if (options.echo === "live") await Deno.stderr.write(chunk);
      if (options.interruptWhen && !interrupted && options.interruptWhen.test(stderr)) {
        interrupted = true;
        child.kill("SIGINT");
      }
    }
  })();
  const stdout = await new Response(child.stdout).text();
  await readErr;
  const { code } = await child.status;
  if (options.echo === "after" || options.echo === "tail") {
    const shown = options.echo === "tail" ? stderr.slice(-4000) : stderr;
    await Deno.stderr.write(new TextEncoder().encode(shown));
  }
  return { code, stdout, stderr };
}

/** dtk (the test entry, `DTK_TEST_MAIN`) with `args`, through `runCommand`. */
export function runDtk(
  args: string[],
  options: Parameters<typeof runCommand>[1] = {},
): Promise<CommandRun> {
  return runCommand([Deno.execPath(), "run", "--allow-all", DTK_TEST_MAIN, ...args], options);
}
