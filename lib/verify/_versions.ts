/**
 * Which binaries report a version dtk can compare with the lock, and how to read it from their
 * `--version` output (`Kubernetes v1.33.1`, `etcd Version: 3.5.21`, `runc version 1.3.0`,
 * `containerd github.com/containerd/containerd/v2 v2.1.1 …`).
 *
 * @module
 */

/** Binaries (by file name on the node) whose `--version` dtk checks. */
export const VERSIONED_BINARIES: readonly string[] = [
  "kubelet",
  "kube-proxy",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "etcd",
  "containerd",
  "runc",
  "crictl",
];

/** The first `x.y.z…` token of a `--version` output, without a leading `v`. */
export function reportedVersion(output: string): string | undefined {
  return /(?:^|[\s:/])v?(\d+\.\d+\.\d+[^\s,;)]*)/.exec(output)?.[1];
}

/**
 * Whether a reported version is the locked one. Distribution suffixes (`1.6.20~ds1`,
 * `1.1.5+ds1`) and build tags after the locked version still match; another release does not.
 */
export function versionMatches(locked: string, reported: string): boolean {
  const want = locked.replace(/^v/, "");
  if (reported === want) return true;
  if (!reported.startsWith(want)) return false;
  return /^[~+-]/.test(reported.slice(want.length));
}
