/**
 * `dtk verify`: proves that a running cluster is what `dtk.lock` and the config say
 * (`verifyCluster`: binaries, rendered files, certificates and reported versions on every node,
 * over the cluster's pinned ssh), that the lock's upstreams still answer with the same bytes
 * (`verifyUpstreams`), and that the store holds every artifact intact (`verifyFiles`).
 *
 * ```ts
 * const report = await verifyCluster(config, { lock, runner, storeDir: storeDir(config) });
 * console.log(formatClusterReport(report));
 * if (report.outcome !== "clean") Deno.exit(report.outcome === "drifted" ? 1 : 2);
 * ```
 *
 * @module
 */
export {
  type ClusterReport,
  type ItemKind,
  type ItemStatus,
  type NodeReport,
  verifyCluster,
  type VerifyClusterOptions,
  type VerifyItem,
  type VerifyOutcome,
} from "./_cluster.ts";
export { formatClusterReport } from "./_format.ts";
export {
  checkUrl,
  type TextFetchOptions,
  type UpstreamReport,
  type UpstreamResult,
  type UpstreamStatus,
  verifyUpstreams,
  type VerifyUpstreamsOptions,
} from "./_upstreams.ts";
export { type FileResult, type FilesReport, verifyFiles } from "./_files.ts";
export { type DiffOptions, shortDiff } from "./_diff.ts";
export { reportedVersion, VERSIONED_BINARIES, versionMatches } from "./_versions.ts";
