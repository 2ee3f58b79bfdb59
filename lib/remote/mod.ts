/**
 * The `Remote` port: commands and files on one node, over the system `ssh`, multiplexed
 * (one TCP connection per node, `ControlMaster`), in batch mode, with the cluster's own pinned
 * host keys (`StrictHostKeyChecking=yes`, never the user's known_hosts) and the cluster key.
 *
 * ```ts
 * const remote = new SshRemote({ node: "vm1", host: "10.0.0.2", identityFile, knownHostsFile, controlDir });
 * await waitForSsh(remote, { timeoutMs: 60_000 });
 * await remote.upload(files);
 * await remote.close();
 * ```
 *
 * @module
 */
export {
  fingerprint,
  HostKeyChangedError,
  hostPattern,
  KnownHosts,
  type PinOptions,
} from "./_known_hosts.ts";
export {
  type ExecOptions,
  HostKeyUnknownError,
  type Remote,
  type RemoteOptions,
  scanHostKey,
  SshAuthError,
  SshRemote,
  type SshRemoteOptions,
  SshUnreachableError,
  type UploadFileOptions,
  waitForSsh,
  type WaitForSshOptions,
} from "./_ssh.ts";
export { tarArchive, type TarEntry, tarHeader } from "./_tar.ts";
/** The one shell-quoting helper lives in lib/exec; re-exported for the callers of this port. */
export { shellQuote } from "../exec/mod.ts";
