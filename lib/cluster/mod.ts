/**
 * A cluster as dtk drives it: `cluster create` (the plan run against the world), its nodes with
 * their pinned ssh, and where each installed file comes from (shared with `dtk verify`).
 *
 * @module
 */
export {
  checkLockCovers,
  ClusterCreate,
  type CreateOptions,
  type CreateReport,
  type CreateTimeouts,
  DEFAULT_TIMEOUTS,
  formatCreateSummary,
} from "./create.ts";
export { addonNodeStepRunner, Nodes, pkiSourceFile } from "./_nodes.ts";
export { binaryCopies, type BinaryCopy, type BinarySource, unpacked } from "./_binaries.ts";
