/**
 * The real-node test harness: systemd-nspawn nodes with real systemd and sshd, the test driver
 * behind `virt: test-nspawn`, real artifacts repacked from Debian packages and a local
 * Kubernetes 1.20.2 build, a loopback mirror serving them, and a matching `dtk.lock`.
 *
 * ```ts
 * import { startNodes, prepareArtifacts, startArtifactMirror, writeTestLock } from "../harness/mod.ts";
 *
 * await using nodes = await startNodes(3);
 * const set = await prepareArtifacts();
 * await using mirror = startArtifactMirror(set);
 * await writeTestLock(join(dir, "dtk.lock"), set, { mirrorUrl: mirror.url });
 * ```
 *
 * Node tests need root, `systemd-nspawn` and `debootstrap`: check `nodeSupport()` and skip with
 * its reason. Tests that need the Kubernetes build check `k8sStatus()`.
 *
 * @module
 */
export {
  leftovers,
  type Node,
  NodeSet,
  type ResourceSnapshot,
  startNodes,
  type StartNodesOptions,
} from "./nodes.ts";
export {
  containerPids,
  createNspawnDriver,
  type NodeMeta,
  NspawnDriver,
  type NspawnSettings,
  nspawnSettings,
} from "./nspawn_driver.ts";
export { SshClient, type SshClientOptions } from "./ssh.ts";
export { type SweepReport, sweepStale } from "./sweep.ts";
export { ensureRootfs, ROOTFS_PACKAGES, rootfsPath } from "./rootfs.ts";
export {
  type ArtifactSet,
  CRICTL_STANDIN_VERSION,
  K8S_COMPONENTS,
  K8S_VERSION,
  k8sCacheDir,
  k8sStatus,
  prepareArtifacts,
  type TestArtifact,
  testLock,
  writeTestLock,
} from "./artifacts.ts";
export { type Mirror, type MirrorRequest, startArtifactMirror, startMirror } from "./mirror.ts";
export { type CertFiles, type IssueOptions, makeTestCa, type TestCa } from "./certs.ts";
export { cacheRoot, freePort, runRoot, waitFor } from "./_util.ts";
export { nodeSupport } from "./support.ts";
export { loadModernSet, modernDir, type ModernSet, modernStatus } from "./modern.ts";
export { BOX_IMAGE, PAUSE_IMAGE, writeTestImages } from "./images.ts";
