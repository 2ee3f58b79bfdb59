/**
 * The human form of a cluster report: a table per node, then what is wrong and why.
 *
 * @module
 */
import { table } from "../ui/mod.ts";
import type { ClusterReport, VerifyItem } from "./_cluster.ts";

function short(value: string): string {
  return /^[0-9a-f]{64}$/.test(value) ? `${value.slice(0, 12)}…` : value;
}

function label(item: VerifyItem): string {
  return `${item.kind} ${item.item}`;
}

function indent(text: string, by: string): string {
  return text.split("\n").map((l) => `${by}${l}`).join("\n");
}

/** The report as text: per node a table (item, status, expected, actual), details, a summary. */
export function formatClusterReport(report: ClusterReport): string {
  const parts: string[] = [];
  for (const node of report.nodes) {
    parts.push(`Node ${node.node}${node.address ? ` (${node.address})` : ""}`);
    if (node.error !== undefined) {
      parts.push(`  could not check: ${node.error}`, "");
      continue;
    }
    parts.push(
      table(
        ["ITEM", "STATUS", "EXPECTED", "ACTUAL"],
        node.items.map((i) => [label(i), i.status, short(i.expected), short(i.actual)]),
      ).trimEnd(),
    );
    const bad = node.items.filter((i) => i.status !== "ok");
    for (const item of bad) {
      parts.push(`  ${item.status}: ${label(item)}${item.detail ? `: ${item.detail}` : ""}`);
      if (item.status === "drifted" && /^[0-9a-f]{64}$/.test(item.expected)) {
        parts.push(`    expected sha256 ${item.expected}`, `    actual   sha256 ${item.actual}`);
      }
      if (item.diff) parts.push(indent(item.diff, "    "));
    }
    parts.push("");
  }
  const c = report.counts;
  const unreachable = report.nodes.filter((n) => n.error !== undefined).length;
  const verdict = report.outcome === "clean"
    ? `Cluster ${report.cluster} matches the lock and the config`
    : report.outcome === "drifted"
    ? `Cluster ${report.cluster} has drifted`
    : `Cluster ${report.cluster} could not be checked completely`;
  parts.push(
    `${verdict}: ${c.ok} ok, ${c.drifted} drifted, ${c.missing} missing, ${c.unchecked} unchecked` +
      (unreachable > 0 ? `, ${unreachable} node(s) not reachable` : "") +
      ` (${(report.elapsedMs / 1000).toFixed(1)} s)`,
  );
  return parts.join("\n");
}
