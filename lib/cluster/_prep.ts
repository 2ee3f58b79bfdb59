/**
 * Checks of a node made at the `prep` step, before anything is installed on it: what would
 * otherwise surface minutes later as a component in a crash loop. One probe command reads
 * everything the checks need in a single ssh round trip; the checks themselves are pure.
 *
 * @module
 */
import { DtkError, q } from "../errors/mod.ts";
import { shellQuote } from "../exec/mod.ts";
import type { Remote } from "../remote/mod.ts";
import { kubeFeatures } from "../render/mod.ts";

/** The commands of node prep that are not files: swap off for good, firewalld off. */
export const PREP_COMMANDS = [
  "swapoff -a",
  // Comment out swap lines so that a reboot keeps swap off (the original tested the host's swap).
  "if [ -f /etc/fstab ]; then sed -i -E 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# \\1  # disabled by dtk/' /etc/fstab; fi",
  "if command -v systemctl >/dev/null && systemctl list-unit-files firewalld.service >/dev/null 2>&1; then systemctl disable --now firewalld >/dev/null 2>&1 || true; fi",
];

/** Prints the file system type of the cgroup root: `cgroup2fs` on a unified (v2) host. */
export const CGROUP_PROBE = "stat -fc %T /sys/fs/cgroup/";

/**
 * systemd-resolved's list of the upstream servers it uses, beside the 127.0.0.53 stub that
 * /etc/resolv.conf names on such guests. kubeadm points the kubelet here when systemd-resolved
 * runs (kubernetes cmd/kubeadm/app/componentconfigs/kubelet.go, `kubeletSystemdResolverConfig`).
 */
export const SYSTEMD_RESOLVED_CONF = "/run/systemd/resolve/resolv.conf";

/** Starts each file's section of the probe's output; no resolv.conf line starts with it. */
const MARK = "@@dtk-prep@@";

/** What the prep probe found on a node. `undefined`: the file is missing (or not a file). */
export interface PrepFacts {
  cgroupFsType: string;
  resolvConf: string | undefined;
  systemdResolvConf: string | undefined;
}

/**
 * The prep probe: the cgroup root's type, then the kubelet's resolv.conf and systemd-resolved's
 * upstream list, each after a marker line that says whether the file is there.
 */
export function prepProbe(resolvConf: string): string {
  const files = [resolvConf, SYSTEMD_RESOLVED_CONF].map(shellQuote).join(" ");
  // `echo` after `cat`: a file without a final newline must not swallow the next marker.
  return `${CGROUP_PROBE} && for f in ${files}; do ` +
    `if [ -f "$f" ] && [ -r "$f" ]; then echo '${MARK} file'; cat "$f"; echo; ` +
    `else echo '${MARK} missing'; fi; done`;
}

/** Splits the probe's output into its three parts. */
export function parsePrepProbe(stdout: string): PrepFacts {
  const [head = "", ...sections] = stdout.split(new RegExp(`^${MARK} `, "m"));
  const file = (section: string | undefined): string | undefined => {
    if (section === undefined || !section.startsWith("file\n")) return undefined;
    return section.slice("file\n".length);
  };
  return {
    cgroupFsType: head.trim(),
    resolvConf: file(sections[0]),
    systemdResolvConf: file(sections[1]),
  };
}

/**
 * Fails when the node mounts cgroup v1 (or the hybrid layout, whose root is a tmpfs) and the
 * Kubernetes version's kubelet refuses it. `fsType` is the output of `CGROUP_PROBE`.
 */
export function checkCgroupVersion(
  node: string,
  fsType: string,
  options: { kubernetes: string },
): void {
  const type = fsType.trim();
  if (type === "cgroup2fs") return;
  if (!kubeFeatures(options.kubernetes).refusesCgroupV1) return;
  throw new DtkError(
    `Node ${q(node)} runs cgroup v1 (${q("/sys/fs/cgroup")} is ${
      q(type || "unknown")
    }), which the kubelet of Kubernetes ${q(options.kubernetes)} refuses to start on`,
    {
      hint:
        "Use a guest that boots cgroup v2 (vm.linux: alma9 or centos9), or boot the node with " +
        "systemd.unified_cgroup_hierarchy=1 (grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1, then reboot), " +
        "or choose versions.kubernetes below v1.35",
    },
  );
}

/** The kubelet hands a Pod at most this many of the file's servers (core validation's `MaxDNSNameservers`). */
const KUBELET_MAX_NAMESERVERS = 3;

/**
 * The `nameserver` entries of a resolv.conf as the kubelet reads them (kubernetes
 * pkg/kubelet/network/dns/dns.go, `parseResolvConf`): each line trimmed, `#` lines skipped, split
 * on blanks, the second field of a `nameserver` line kept. `empty` counts `nameserver` lines
 * without an address, which make the kubelet refuse the file and so every Pod's sandbox.
 */
export function resolvConfServers(content: string): { servers: string[]; empty: number } {
  const servers: string[] = [];
  let empty = 0;
  for (const line of content.split("\n")) {
    const trimmed = line.trim();
    if (trimmed.startsWith("#")) continue;
    const fields = trimmed.split(/\s+/);
    if (fields[0] !== "nameserver") continue;
    if (fields[1] === undefined) empty++;
    else servers.push(fields[1]);
  }
  return { servers, empty };
}

/**
 * A server on the node itself: 127.0.0.0/8, ::1 (also IPv4-mapped), and the unspecified
 * addresses, which a connect() sends to the local host as well. Inside a Pod that is the Pod.
 */
export function isLoopbackServer(server: string): boolean {
  const address = server.replace(/%.*$/, "");
  if (/^\d+\.\d+\.\d+\.\d+$/.test(address)) {
    return address.startsWith("127.") || address === "0.0.0.0";
  }
  let host: string;
  try {
    // The URL parser writes an IPv6 address in its one canonical form.
    host = new URL(`http://[${address}]/`).hostname;
  } catch {
    return false;
  }
  return host === "[::1]" || host === "[::]" || /^\[::ffff:7f[0-9a-f]{2}:/.test(host);
}

/**
 * Fails when the kubelet's resolv.conf would give Pods with `dnsPolicy: Default` no usable name
 * server: the file is missing, names none, has a `nameserver` line the kubelet refuses, or
 * names only servers on the node itself. CoreDNS is such a Pod: it forwards to what it gets,
 * and a loopback address there is CoreDNS itself, so its `loop` plugin halts it, over and over
 * (coredns plugin/loop/README.md, "Troubleshooting Loops In Kubernetes Clusters").
 */
export function checkResolvConf(
  node: string,
  facts: Pick<PrepFacts, "resolvConf" | "systemdResolvConf">,
  options: { path: string },
): void {
  const path = options.path;
  const where = `${q(path)} (k8s.resolv-conf)`;
  const resolved = facts.systemdResolvConf === undefined || path === SYSTEMD_RESOLVED_CONF
    ? []
    : podServers(facts.systemdResolvConf);
  const set = "set k8s.resolv-conf to a file on every node that lists the upstream name servers";
  const hint = (fallback: string) =>
    resolved.length > 0
      ? `Set k8s.resolv-conf: ${SYSTEMD_RESOLVED_CONF} (systemd-resolved's upstream servers on ${
        q(node)
      }: ${resolved.map((s) => q(s)).join(", ")})`
      : fallback.charAt(0).toUpperCase() + fallback.slice(1);
  if (facts.resolvConf === undefined) {
    throw new DtkError(
      `Node ${
        q(node)
      } has no ${where}, the file whose name servers the kubelet gives Pods with dnsPolicy Default`,
      { hint: hint(`create it on the node, or ${set}`) },
    );
  }
  const { servers, empty } = resolvConfServers(facts.resolvConf);
  if (empty > 0) {
    throw new DtkError(
      `Node ${
        q(node)
      } has a nameserver line without an address in ${where}, on which the kubelet fails to set up any Pod's DNS`,
      { hint: hint(`give the line an address or remove it, or ${set}`) },
    );
  }
  if (servers.length === 0) {
    throw new DtkError(
      `Node ${
        q(node)
      } lists no name server in ${where}: Pods with dnsPolicy Default (CoreDNS among them) would resolve nothing outside the cluster`,
      { hint: hint(set) },
    );
  }
  if (podServers(facts.resolvConf).length > 0) return;
  const applied = servers.slice(0, KUBELET_MAX_NAMESERVERS);
  const cut = servers.length > applied.length
    ? ` (the first ${KUBELET_MAX_NAMESERVERS}, all that the kubelet passes on)`
    : "";
  throw new DtkError(
    `Node ${q(node)} lists only loopback name servers in ${where}: ${
      applied.map((s) => q(s)).join(", ")
    }${cut}; CoreDNS would forward to itself and crash-loop`,
    { hint: hint(`${set}, not the address of a local stub resolver`) },
  );
}

/** The servers of a file that a Pod gets and can reach: none when the kubelet refuses the file. */
function podServers(content: string): string[] {
  const { servers, empty } = resolvConfServers(content);
  if (empty > 0) return [];
  return servers.slice(0, KUBELET_MAX_NAMESERVERS).filter((s) => !isLoopbackServer(s));
}

/** Runs the prep checks on a node in one round trip; throws before anything is installed. */
export async function checkNode(
  remote: Remote,
  options: { kubernetes: string; resolvConf: string },
): Promise<void> {
  const { stdout } = await remote.exec(prepProbe(options.resolvConf), {
    timeoutMs: 30_000,
    what: `the prep checks of ${q(remote.node)} (cgroup version, ${q(options.resolvConf)})`,
  });
  const facts = parsePrepProbe(stdout);
  checkCgroupVersion(remote.node, facts.cgroupFsType, options);
  checkResolvConf(remote.node, facts, { path: options.resolvConf });
}

/**
 * The prep of a node that is not files: the checks first (so that a node that cannot run the
 * cluster is left as it was), then swap and firewalld off.
 */
export async function runPrep(
  remote: Remote,
  options: { kubernetes: string; resolvConf: string },
): Promise<void> {
  await checkNode(remote, options);
  for (const command of PREP_COMMANDS) {
    await remote.exec(command, { timeoutMs: 60_000, what: `node prep on ${q(remote.node)}` });
  }
}
