/**
 * `dtk verify [cluster]`, `dtk verify upstreams`, `dtk verify files`.
 *
 * @module
 */
import type { Command } from "commander";
import { resolveArtifacts } from "../catalog/mod.ts";
import type { Config } from "../config/types.ts";
import { DtkError, IntegrityError, q, UsageError } from "../errors/mod.ts";
import { lockPath, storeDir } from "../paths/mod.ts";
import type { RenderOverrides } from "../render/mod.ts";
import { formatBytes, table } from "../ui/mod.ts";
import type { UpstreamResult } from "../verify/mod.ts";

// The checks (and the X.509 code) load only when verify runs.
const verifier = () => import("../verify/mod.ts");
import { type Lockfile, openStore, readLock } from "../../store/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import { parseSeconds } from "./_parse.ts";

/** "Could not check": the exit code that is neither clean (0) nor drifted (1). */
const UNCHECKED = 2;

async function lockOf(config: Config): Promise<Lockfile> {
  const path = lockPath(config);
  const lock = await readLock(path);
  if (lock === undefined) {
    throw new DtkError(`Lock file ${q(path)} does not exist`, {
      exitCode: UNCHECKED,
      hint: "Create it with: dtk lock (a cluster made by dtk cluster create has one)",
    });
  }
  return lock;
}

function short(hex: string | undefined): string {
  return hex === undefined ? "" : `${hex.slice(0, 12)}…`;
}

export function registerVerifyCommands(program: Command, ctx: CliContext): void {
  program
    .command("verify")
    .description(
      "Check that the cluster's nodes hold exactly what dtk.lock and the config say " +
        "(or: verify upstreams | files)",
    )
    .argument(
      "[target]",
      `"upstreams": every URL of the lock answers and publisher checksums still match; ` +
        `"files": every artifact is in the store intact; else the cluster to check ` +
        `(default: the config's)`,
    )
    .option(
      "--timeout <seconds>",
      "Bound of each request (default 20) or node command (default 120)",
      parseSeconds("--timeout"),
    )
    .addHelpText(
      "after",
      `
dtk verify reads the lock, the config and generated/<cluster>/ (addresses, pinned host keys,
certificates), then on every node compares over ssh: the sha256 of each installed binary with the
lock, each rendered file with what dtk renders now (with a diff), the certificates (chained to the
cluster CA, not expiring within 30 days, equal to dtk's copies), and what the binaries report
with --version. Exit codes: 0 clean, 1 drifted or missing, 2 could not check.`,
    )
    .action(async (target, _options, cmd) => {
      const opts = cmd.optsWithGlobals() as GlobalOptions & { timeout?: number };
      const config = await ctx.loadConfig(opts);
      const timeoutMs = opts.timeout;
      if (target === "upstreams") {
        return await upstreams(ctx, config, { json: opts.json, timeoutMs });
      }
      if (target === "files") return await files(ctx, config, { json: opts.json });
      if (target !== undefined && target !== config.cluster.name) {
        throw new UsageError(
          `The config ${q(config.source.file)} describes cluster ${q(config.cluster.name)}, not ${
            q(target)
          }`,
          { hint: `Pass the config of ${q(target)} with --config, or use "upstreams" or "files"` },
        );
      }
      await cluster(ctx, config, { json: opts.json, timeoutMs });
    });
}

async function cluster(
  ctx: CliContext,
  config: Config,
  o: { json?: boolean; timeoutMs?: number },
): Promise<void> {
  const lock = await lockOf(config);
  if (!o.json) ctx.out.info(`Checking ${config.vms.length} node(s) of ${q(config.cluster.name)} …`);
  const report = await (await verifier()).verifyCluster(config, {
    lock,
    runner: ctx.runner,
    storeDir: storeDir(config, ctx.env),
    renderOverrides: (config.testNspawn?.["renderOverrides"] ?? undefined) as
      | RenderOverrides
      | undefined,
    timeoutMs: o.timeoutMs,
  });
  ctx.out.data(
    o.json ? JSON.stringify(report, null, 2) : (await verifier()).formatClusterReport(report),
  );
  const c = report.counts;
  if (report.outcome === "drifted") {
    throw new DtkError(
      `Cluster ${
        q(report.cluster)
      } differs from the lock and the config: ${c.drifted} drifted, ${c.missing} missing`,
      {
        hint: "See the items above; find out what changed them (dtk ssh <vm>), or rebuild the node",
      },
    );
  }
  if (report.outcome === "unchecked") {
    const failed = report.nodes.filter((n) => n.error !== undefined);
    throw new DtkError(
      failed.length > 0
        ? `Could not check ${failed.map((n) => q(n.node)).join(", ")} of cluster ${
          q(report.cluster)
        }: ${failed[0]!.error}`
        : `Could not check ${c.unchecked} item(s) of cluster ${q(report.cluster)}`,
      {
        exitCode: UNCHECKED,
        hint: failed.length > 0
          ? "Check that the VMs run (dtk cluster status) and that their sshd is up"
          : "See the unchecked items above",
      },
    );
  }
}

function upstreamRow(r: UpstreamResult): string[] {
  return [
    r.artifact,
    r.check,
    r.status,
    r.check === "url" ? (r.via ?? "") : `${short(r.expected)} / ${short(r.actual)}`,
    r.url,
  ];
}

async function upstreams(
  ctx: CliContext,
  config: Config,
  o: { json?: boolean; timeoutMs?: number },
): Promise<void> {
  const lock = await lockOf(config);
  let specs: ReturnType<typeof resolveArtifacts> = [];
  try {
    specs = resolveArtifacts(config);
  } catch (error) {
    ctx.out.warn(
      `Cannot list the catalogue's checksum sources: ${(error as Error).message}; ` +
        "only the lock's checksum URLs are checked",
    );
  }
  const report = await (await verifier()).verifyUpstreams(lock, { specs, timeoutMs: o.timeoutMs });
  if (o.json) ctx.out.data(JSON.stringify(report, null, 2));
  else {
    const lines = [
      table(
        ["ARTIFACT", "CHECK", "STATUS", "HOW / LOCK / PUBLISHER", "URL"],
        report.results.map(upstreamRow),
      )
        .trimEnd(),
    ];
    for (const r of report.results.filter((r) => r.status !== "ok")) {
      lines.push(`  ${r.status}: ${r.artifact} ${r.url}${r.detail ? `: ${r.detail}` : ""}`);
    }
    const checks = report.results.length;
    lines.push(
      `${checks - report.problems} of ${checks} checks ok, ${report.problems} problem(s) (${
        (report.elapsedMs / 1000).toFixed(1)
      } s)`,
    );
    ctx.out.data(lines.join("\n"));
  }
  if (report.problems > 0) {
    const changed = report.results.some((r) => r.status === "checksum-changed");
    throw new DtkError(`${report.problems} upstream check(s) of the lock failed`, {
      hint: changed
        ? "A publisher now states another hash: find out why before trusting the new bytes; the store keeps the locked ones"
        : "Add a mirror that holds the files (store.mirrors or DTK_MIRRORS), or dtk lock --update to move to URLs that answer",
    });
  }
}

async function files(ctx: CliContext, config: Config, o: { json?: boolean }): Promise<void> {
  const lock = await lockOf(config);
  const store = openStore(storeDir(config, ctx.env));
  const report = await (await verifier()).verifyFiles(lock, { store });
  if (o.json) ctx.out.data(JSON.stringify(report, null, 2));
  else {
    const rows = report.results.map((r) => [
      r.artifact,
      r.status,
      short(r.expected),
      r.size === undefined ? "" : formatBytes(r.size),
    ]);
    const lines = [table(["ARTIFACT", "STATUS", "SHA256", "SIZE"], rows).trimEnd()];
    for (const r of report.results.filter((r) => r.status === "corrupt")) {
      lines.push(
        `  corrupt: ${r.artifact}: ${r.path} hashes to ${
          r.actual ?? "the right value but is writable or the wrong size"
        }`,
      );
    }
    lines.push(
      `${
        report.results.length - report.problems
      } of ${report.results.length} artifacts ok in ${store.dir} (${
        (report.elapsedMs / 1000).toFixed(1)
      } s)`,
    );
    ctx.out.data(lines.join("\n"));
  }
  const corrupt = report.results.filter((r) => r.status === "corrupt").length;
  const missing = report.results.filter((r) => r.status === "missing").length;
  if (corrupt > 0) {
    throw new IntegrityError(`${corrupt} artifact(s) of the lock are corrupt in the store`, {
      hint: "Run dtk store verify --repair to fetch them again",
    });
  }
  if (missing > 0) {
    throw new DtkError(`${missing} artifact(s) of the lock are not in the store`, {
      hint: "Fetch them with: dtk fetch",
    });
  }
}
