/**
 * `dtk lock`, `dtk fetch` and `dtk store path|ls|verify|gc|add|export|import`.
 *
 * @module
 */
import type { Command } from "commander";
import type cliProgress from "cli-progress";
import { resolve } from "node:path";
import process from "node:process";
import type { Config } from "../config/types.ts";
import {
  DtkError,
  ExitCode,
  formatDuration,
  IntegrityError,
  q,
  UsageError,
} from "../errors/mod.ts";
import { lockPath, storeDir } from "../paths/mod.ts";
import { formatBytes, type Output, table } from "../ui/mod.ts";
import { checkChartImages, unlistedCharts, whyImage } from "../addons/mod.ts";
import { chartArtifactName } from "../catalog/mod.ts";
import { which } from "../exec/mod.ts";
import { exists } from "../fs/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import {
  addFile,
  artifactHex,
  artifactPath,
  type DownloadOptions,
  ensureLock,
  exportLock,
  formatHash,
  gcStore,
  importDir,
  isImageArtifact,
  liveHashes,
  lockConfig,
  type Lockfile,
  mirrorList,
  missingArtifacts,
  type ObjectStore,
  openStore,
  parseHash,
  type ProgressEvent,
  readLock,
  requireLock,
  shortHash,
  tuningFromEnv,
  verifyObjects,
  walkImage,
  writeLock,
} from "../../store/mod.ts";

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`${name} must be a positive integer, got ${q(value)}`);
    }
    return n;
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Download limits and timing from the environment (`DTK_MAX_DOWNLOAD_BYTES`, `DTK_MIN_RATE`, …). */
function downloadTuning(ctx: CliContext): Partial<DownloadOptions> {
  return tuningFromEnv(ctx.env);
}

async function context(ctx: CliContext, cmd: Command) {
  const globals = cmd.optsWithGlobals() as GlobalOptions;
  const config: Config = await ctx.loadConfig(globals);
  const store = openStore(storeDir(config, ctx.env), { warn: (m) => ctx.out.warn(m) });
  return { globals, config, store };
}

/** Progress: bars on a TTY, a plain line every few seconds otherwise. */
class Progress {
  #out: Output;
  #bars?: cliProgress.MultiBar;
  #active = new Map<
    string,
    {
      bar?: cliProgress.SingleBar;
      bytes: number;
      total: number | null;
      started: number;
      base: number;
    }
  >();
  #timer?: ReturnType<typeof setInterval>;
  #done = 0;
  #count: number;
  #bytes = 0;

  /** Bars need cli-progress, loaded only for a terminal: a warm fetch must start fast. */
  static async create(out: Output, count: number): Promise<Progress> {
    const bars = !out.quiet && out.tty ? (await import("cli-progress")).default : undefined;
    return new Progress(out, count, { bars });
  }

  constructor(
    out: Output,
    count: number,
    options: { bars?: typeof cliProgress; intervalMs?: number } = {},
  ) {
    this.#out = out;
    this.#count = count;
    if (out.quiet) return;
    const bars = options.bars;
    if (bars) {
      this.#bars = new bars.MultiBar({
        format: "{name} [{bar}] {percentage}% | {got}/{size} | {rate} | ETA {etaText}",
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        stream: process.stderr,
      }, bars.Presets.shades_classic);
    } else {
      this.#timer = setInterval(() => this.#line(), options.intervalMs ?? 2000);
    }
  }

  event = (e: ProgressEvent) => {
    let entry = this.#active.get(e.name);
    if (entry === undefined) {
      entry = { bytes: e.bytes, total: e.total, started: performance.now(), base: e.bytes };
      if (this.#bars) {
        entry.bar = this.#bars.create(e.total ?? 0, e.bytes, this.#payload(e.name, entry));
      }
      this.#active.set(e.name, entry);
    }
    if (e.phase === "restart") entry.base = 0;
    const delta = e.bytes - entry.bytes;
    if (delta > 0 && e.phase === "data") this.#bytes += delta;
    entry.bytes = e.bytes;
    entry.total = e.total ?? entry.total;
    if (e.phase === "done") {
      this.#done++;
      entry.bar?.update(e.bytes, this.#payload(e.name, entry));
      entry.bar?.stop();
      this.#active.delete(e.name);
      return;
    }
    if (entry.bar) {
      if (entry.total !== null) entry.bar.setTotal(entry.total);
      entry.bar.update(e.bytes, this.#payload(e.name, entry));
    }
  };

  #payload(
    name: string,
    entry: { bytes: number; total: number | null; started: number; base: number },
  ) {
    const secs = Math.max((performance.now() - entry.started) / 1000, 0.001);
    const rate = (entry.bytes - entry.base) / secs;
    const eta = entry.total !== null && rate > 0
      ? ((entry.total - entry.bytes) / rate) * 1000
      : NaN;
    return {
      name: name.padEnd(24).slice(0, 24),
      got: formatBytes(entry.bytes),
      size: entry.total === null ? "?" : formatBytes(entry.total),
      rate: `${formatBytes(rate)}/s`,
      etaText: Number.isFinite(eta) ? formatDuration(eta) : "?",
    };
  }

  #line() {
    const parts = [...this.#active.entries()].map(([name, e]) => {
      const p = this.#payload(name, e);
      const pct = e.total ? ` ${Math.floor((e.bytes / e.total) * 100)}%` : "";
      return `${name}${pct} ${p.got}/${p.size} ${p.rate} ETA ${p.etaText}`;
    });
    if (parts.length === 0) return;
    // An image's blobs are counted as they are found: no total then.
    const done = this.#count > 0 ? `${this.#done}/${this.#count}` : `${this.#done}`;
    this.#out.info(`fetch: ${done} done; ${parts.join("; ")}`);
  }

  stop() {
    clearInterval(this.#timer);
    this.#bars?.stop();
  }
}

export function registerStoreCommands(program: Command, ctx: CliContext): void {
  program
    .command("lock")
    .description("Write or refresh dtk.lock from the config: every artifact with its sha256")
    .option("--update", "Re-resolve every artifact, not only new and changed ones")
    .option("--frozen", "Fail, changing nothing, when the lock would change")
    .option(
      "--why <image>",
      "Say what needs an image (sandbox, control plane or add-on); change nothing",
    )
    .action(async function (
      this: Command,
      opts: { update?: boolean; frozen?: boolean; why?: string },
    ) {
      if (opts.why !== undefined) return await explainImage(ctx, this, opts.why);
      const { config, store } = await context(ctx, this);
      const path = lockPath(config);
      const outcome = await lockConfig(config, {
        store,
        path,
        update: opts.update,
        frozen: opts.frozen,
        download: { mirrors: mirrorList([], config, ctx.env), ...downloadTuning(ctx) },
        warn: (m) => ctx.out.warn(m),
        info: (m) => ctx.out.info(m),
      });
      await checkLockedCharts(ctx, config, outcome.lock);
      const count = Object.keys(outcome.lock.artifacts).length;
      const sources = Object.values(outcome.lock.artifacts).reduce<Record<string, number>>(
        (acc, a) => ({ ...acc, [a.source]: (acc[a.source] ?? 0) + 1 }),
        {},
      );
      const bySource = Object.entries(sources).map(([s, n]) => `${n} ${s}`).join(", ");
      if (!outcome.written) {
        ctx.out.success(`${path} is up to date (${count} artifacts: ${bySource})`);
      } else {
        const changed = outcome.changed.length > 0
          ? `; changed: ${outcome.changed.join(", ")}`
          : "";
        ctx.out.success(`Wrote ${path} (${count} artifacts: ${bySource}${changed})`);
      }
    });

  program
    .command("fetch")
    .description("Make every artifact of the lock present and verified in the store")
    .option("--lock <file>", "Lock file (default: dtk.lock beside the config)")
    .option(
      "--mirror <url>",
      "Mirror URL or folder, tried first (repeatable)",
      collect,
      [] as string[],
    )
    .option("--offline", "Never touch the network: list what is missing, fail if anything is")
    .option("-j, --jobs <n>", "Downloads at once", positiveInt("--jobs"), 4)
    .action(async function (
      this: Command,
      opts: { lock?: string; mirror: string[]; offline?: boolean; jobs: number },
    ) {
      const { globals, config, store } = await context(ctx, this);
      const path = opts.lock ? resolve(ctx.cwd, opts.lock) : lockPath(config);
      const lock = await requireLock(path);
      const names = Object.keys(lock.artifacts);
      if (opts.offline) {
        const missing = await missingArtifacts(store, lock);
        if (globals.json) {
          ctx.out.data(
            JSON.stringify(
              { lock: path, missing, present: names.length - missing.length },
              null,
              2,
            ),
          );
        }
        if (missing.length > 0) {
          for (const name of missing) {
            const a = lock.artifacts[name]!;
            ctx.out.info(`missing: ${name} ${a.version} ${a.hash}`);
          }
          throw new DtkError(
            `${missing.length} of ${names.length} artifacts are not in the store`,
            {
              hint: "Run dtk fetch with network access, or import them: dtk store import DIR",
            },
          );
        }
        ctx.out.success(`All ${names.length} artifacts of ${path} are in the store`);
        return;
      }
      const images = Object.values(lock.artifacts).some(isImageArtifact);
      const progress = await Progress.create(ctx.out, images ? 0 : names.length);
      let summary;
      try {
        summary = await ensureLock(lock, {
          store,
          lockPath: path,
          jobs: opts.jobs,
          mirrors: mirrorList(opts.mirror, config, ctx.env),
          onProgress: progress.event,
          log: (m) => ctx.out.warn(m),
          ...downloadTuning(ctx),
        });
      } finally {
        progress.stop();
      }
      const secs = summary.elapsedMs / 1000;
      const rate = secs > 0 ? ` (${formatBytes(summary.bytes / secs)}/s)` : "";
      if (globals.json) {
        ctx.out.data(JSON.stringify(
          {
            lock: path,
            fetched: summary.fetched,
            present: summary.present,
            bytes: summary.bytes,
            elapsedMs: Math.round(summary.elapsedMs),
          },
          null,
          2,
        ));
      }
      ctx.out.success(
        // An image is many objects (index, manifest, config, layers): counts are of objects then.
        `${names.length} artifacts ready${images ? ` (${summary.results.length} objects)` : ""}: ` +
          `${summary.fetched} fetched, ${summary.present} already present, ` +
          `${formatBytes(summary.bytes)} in ${formatDuration(summary.elapsedMs)}${
            summary.fetched ? rate : ""
          }`,
      );
    });

  const store = program
    .command("store")
    .description("Inspect and maintain the content-addressed artifact store");

  store
    .command("path")
    .description("Print the store folder, or the object path of an artifact (lock name or hash)")
    .argument("[artifact]", "Lock name or sha256")
    .option("--lock <file>", "Lock file (default: dtk.lock beside the config)")
    .action(async (artifact, opts, cmd) => {
      const { config, store: s } = await context(ctx, cmd as unknown as Command);
      if (artifact === undefined) {
        ctx.out.data(s.dir);
        return;
      }
      const hex = await lookup(ctx, config, s, artifact, opts.lock);
      ctx.out.data(artifactPath(s.dir, { hash: formatHash(hex) }));
    });

  store
    .command("ls")
    .description("List objects: name, version, size, hash, and which locks use them")
    .action(async function (this: Command) {
      const { globals, store: s } = await context(ctx, this);
      const { live, unreadable } = await liveHashes(s);
      for (const u of unreadable) {
        ctx.out.warn(`Cannot read the registered lock ${u.path}: ${u.reason}; USED BY may miss it`);
      }
      const rows = [];
      for (const hex of await s.list()) {
        const meta = await s.readMeta(hex);
        const size = meta?.size ?? await s.size(hex);
        rows.push({
          hash: formatHash(hex),
          names: meta?.names ?? [],
          versions: meta?.versions ?? [],
          size,
          locks: live.get(hex) ?? [],
          ...(meta?.mediaType ? { mediaType: meta.mediaType } : {}),
        });
      }
      if (globals.json) {
        ctx.out.data(JSON.stringify(rows, null, 2));
        return;
      }
      if (rows.length === 0) {
        ctx.out.info(`The store ${s.dir} is empty`);
        return;
      }
      ctx.out.data(
        table(
          ["NAME", "VERSION", "SIZE", "HASH", "USED BY"],
          rows.map((r) => [
            few(r.names, ",") || "-",
            few(r.versions, ",") || "-",
            formatBytes(r.size),
            shortHash(r.hash.slice(7)),
            r.locks.length === 0 ? "(unused)" : few(r.locks, ", "),
          ]),
        ).trimEnd(),
      );
    });

  store
    .command("verify")
    .description("Rehash objects (all, or the named ones) and report")
    .argument("[artifacts...]", "Lock names or hashes (default: every object)")
    .option("--repair", "Remove corrupt objects and fetch them again")
    .option("--lock <file>", "Lock file for names (default: dtk.lock beside the config)")
    .option("--mirror <url>", "Mirror for --repair (repeatable)", collect, [] as string[])
    .action(async (artifacts, opts, cmd) => {
      const { globals, config, store: s } = await context(ctx, cmd as unknown as Command);
      const hexes = artifacts.length === 0 ? await s.list() : [
        ...new Set(
          (await Promise.all(artifacts.map((a) => lookupBlobs(ctx, config, s, a, opts.lock))))
            .flat(),
        ),
      ];
      const started = performance.now();
      let bytes = 0;
      const report = await verifyObjects(s, hexes, {
        repair: opts.repair,
        onBytes: (n) => bytes += n,
        download: { mirrors: mirrorList(opts.mirror, config, ctx.env), ...downloadTuning(ctx) },
      });
      const elapsed = performance.now() - started;
      if (globals.json) ctx.out.data(JSON.stringify(report, null, 2));
      for (const r of report) {
        const label = `${r.names.join(",") || "-"} ${formatHash(r.hex)}`;
        if (r.status === "ok") ctx.out.debug(`ok ${label}`);
        else if (r.status === "repaired") ctx.out.warn(`repaired ${label} (was ${r.actual})`);
        else if (r.status === "missing") ctx.out.warn(`missing ${label}`);
        else if (r.actual === r.hex) {
          ctx.out.warn(
            `damaged ${label}: the bytes are right, but the file is writable or its metadata disagrees`,
          );
        } else if (r.actual === undefined) {
          ctx.out.warn(`corrupt ${label}: not a regular file`);
        } else ctx.out.warn(`corrupt ${label}: content hashes to ${formatHash(r.actual)}`);
      }
      const bad = report.filter((r) => r.status === "corrupt" || r.status === "missing");
      const secs = elapsed / 1000;
      const summary =
        `${report.length} objects, ${formatBytes(bytes)} in ${formatDuration(elapsed)}` +
        (secs > 0 ? ` (${formatBytes(bytes / secs)}/s)` : "");
      if (bad.length > 0) {
        throw new IntegrityError(`${bad.length} of ${report.length} objects failed verification`, {
          hint: "Run dtk store verify --repair to fetch them again",
        });
      }
      ctx.out.success(`Verified ${summary}`);
    });

  store
    .command("gc")
    .description("Remove objects that no registered lock or cluster needs")
    .option("--dry-run", "Only list what would be removed")
    .option(
      "--force",
      "Go on when a registered lock cannot be read: forget it and remove what only it needed",
    )
    .action(async function (this: Command, opts: { dryRun?: boolean; force?: boolean }) {
      const { globals, store: s } = await context(ctx, this);
      const report = await gcStore(s, { dryRun: opts.dryRun, force: opts.force });
      if (globals.json) {
        ctx.out.data(JSON.stringify(report, null, 2));
        return;
      }
      const verb = opts.dryRun ? "would remove" : "removed";
      for (const r of report.removed) {
        ctx.out.info(
          `${verb} ${r.names.join(",") || "-"} ${formatHash(r.hex)} (${formatBytes(r.size)})`,
        );
      }
      for (const root of report.staleRoots) ctx.out.info(`${verb} root ${root} (file gone)`);
      for (const root of report.droppedRoots) {
        ctx.out.warn(
          `${opts.dryRun ? "would forget" : "forgot"} root ${root.path}: ${root.reason}`,
        );
      }
      if (report.partials > 0) {
        ctx.out.info(`${verb} ${report.partials} partial download file(s) no process holds`);
      }
      ctx.out.success(
        `${opts.dryRun ? "Would remove" : "Removed"} ${report.removed.length} objects ` +
          `(${formatBytes(report.bytes)}), kept ${report.kept.length}`,
      );
    });

  store
    .command("add")
    .description("Put a local file into the store and print its hash")
    .argument("<file>", "The file")
    .option("--name <name>", "Name to record (default: the file name)")
    .option("--hash <sha256>", "Fail unless the file has this hash")
    .action(async (file, opts, cmd) => {
      const { store: s } = await context(ctx, cmd as unknown as Command);
      const expected = opts.hash === undefined ? undefined : parseHash(opts.hash);
      if (opts.hash !== undefined && expected === undefined) {
        throw new UsageError(`Invalid --hash ${q(opts.hash)}`, {
          hint: "Use sha256:<64 hex digits>",
        });
      }
      const path = resolve(ctx.cwd, file);
      const result = await addFile(s, path, { name: opts.name, expected }).catch((error) => {
        if (error instanceof Deno.errors.NotFound) {
          throw new UsageError(`File ${q(file)} does not exist`);
        }
        throw error;
      });
      ctx.out.data(formatHash(result.hex));
      ctx.out.success(
        `${result.status === "added" ? "Added" : "Already present:"} ${file} (${
          formatBytes(result.size)
        })`,
      );
    });

  store
    .command("export")
    .description("Copy the objects a lock needs, and the lock, to a folder (for offline machines)")
    .argument("<dir>", "Target folder")
    .option("--lock <file>", "Lock file (default: dtk.lock beside the config)")
    .option("--oci", "Also make the folder an OCI image layout of the lock's images")
    .action(async (dir, opts, cmd) => {
      const { config, store: s } = await context(ctx, cmd as unknown as Command);
      const path = opts.lock ? resolve(ctx.cwd, opts.lock) : lockPath(config);
      const lock = await requireLock(path);
      const result = await exportLock(s, lock, resolve(ctx.cwd, dir), { oci: opts.oci });
      ctx.out.success(
        `Exported ${Object.keys(lock.artifacts).length} artifacts to ${dir} ` +
          `(${result.objects} copied, ${formatBytes(result.bytes)})` +
          (opts.oci ? `; OCI layout of ${result.images} image(s)` : ""),
      );
    });

  store
    .command("import")
    .description("Import the objects and the lock of a folder made by dtk store export")
    .argument("<dir>", "Folder")
    .option("--lock <file>", "Where to write the lock (default: dtk.lock beside the config)")
    .option("--force", "Replace a different existing lock")
    .action(async (dir, opts, cmd) => {
      const { config, store: s } = await context(ctx, cmd as unknown as Command);
      const target = opts.lock ? resolve(ctx.cwd, opts.lock) : lockPath(config);
      const result = await importDir(s, resolve(ctx.cwd, dir));
      const existing = await readLock(target).catch(() => undefined);
      const same = existing !== undefined &&
        JSON.stringify(existing.artifacts) === JSON.stringify(result.lock.artifacts);
      if (existing !== undefined && !same && !opts.force) {
        throw new DtkError(`Lock file ${q(target)} exists and differs from the imported one`, {
          exitCode: ExitCode.usage,
          hint:
            "The objects were imported; pass --force to replace the lock, or --lock FILE to write it elsewhere",
        });
      }
      if (!same) await writeLock(target, result.lock);
      await s.addRoot(target);
      ctx.out.success(
        `Imported ${result.imported} objects (${result.present} already present); lock: ${target}`,
      );
    });
}

/** Like `lookup`, but an image's lock name gives every blob of the image the store holds. */
async function lookupBlobs(
  ctx: CliContext,
  config: Config,
  store: ObjectStore,
  what: string,
  lockFile: string | undefined,
): Promise<string[]> {
  const hex = await lookup(ctx, config, store, what, lockFile);
  const lock = await readLock(lockFile ? resolve(ctx.cwd, lockFile) : lockPath(config));
  const entry = lock?.artifacts[what];
  if (entry === undefined || !isImageArtifact(entry)) return [hex];
  const blobs = await walkImage(store, { name: what, ...entry }, { partial: true })
    .catch(() => []);
  return [hex, ...blobs.map((b) => b.digest.slice(7)).filter((h) => h !== hex)];
}

/** The first few of a list and how many more: a table cell stays readable with 10,000 names. */
function few(items: readonly string[], sep: string, max = 3): string {
  const shown = items.slice(0, max).join(sep);
  return items.length > max ? `${shown}${sep}… (+${items.length - max} more)` : shown;
}

/** A lock name or a hash (full, or a unique prefix of 8+ hex digits) → the object hash. */
async function lookup(
  ctx: CliContext,
  config: Config,
  store: ObjectStore,
  what: string,
  lockFile: string | undefined,
): Promise<string> {
  const full = parseHash(what);
  if (full !== undefined) return full;
  const path = lockFile ? resolve(ctx.cwd, lockFile) : lockPath(config);
  const lock = await readLock(path);
  const entry = lock?.artifacts[what];
  if (entry !== undefined) return artifactHex(entry);
  const prefix = what.replace(/^sha256:/, "").toLowerCase();
  if (/^[0-9a-f]{8,63}$/.test(prefix)) {
    const matches = (await store.list()).filter((h) => h.startsWith(prefix));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new UsageError(`Hash prefix ${q(what)} is ambiguous`);
  }
  throw new UsageError(`No artifact ${q(what)} in ${q(path)} or the store`, {
    hint: "Use a lock name (see dtk store ls) or a sha256",
  });
}

/** `dtk lock --why IMAGE`: who in the config needs an image; exit 1 when nothing does. */
async function explainImage(ctx: CliContext, cmd: Command, ref: string): Promise<void> {
  const globals = cmd.optsWithGlobals() as GlobalOptions;
  const config = await ctx.loadConfig(globals);
  for (const gap of unlistedCharts(config)) {
    ctx.out.warn(
      `add-on ${q(gap.addon)} chart ${
        q(gap.version)
      } has no image list: its images were not searched`,
    );
  }
  const who = whyImage(config, ref);
  if (globals.json) {
    ctx.out.data(JSON.stringify(
      {
        image: ref,
        neededBy: who.map((w) => ({
          addon: w.addon,
          ref: w.ref,
          ...(w.digest === undefined ? {} : { digest: w.digest }),
          ...(w.via === undefined ? {} : { via: w.via }),
        })),
      },
      null,
      2,
    ));
  } else if (who.length > 0) {
    ctx.out.data(table(
      ["NEEDED BY", "IMAGE", "HOW"],
      who.map((w) => [
        w.addon,
        w.digest === undefined ? w.ref : `${w.ref}@${w.digest}`,
        w.via ??
          (w.addon === "sandbox"
            ? "containerd sandbox image"
            : w.addon === "control-plane"
            ? "static pod"
            : "chart"),
      ]),
    ));
  }
  if (who.length === 0) {
    throw new DtkError(`No part of the config needs image ${q(ref)}`, {
      exitCode: ExitCode.failure,
      hint: "dtk lock locks the sandbox image, the static control plane pods' images and the " +
        "enabled add-ons' images; check the name and tag, or enable the add-on that runs it",
    });
  }
}

/**
 * With helm on the PATH, renders each enabled add-on's chart that is in the store and warns
 * about every image its list lacks (such an image is not locked, so an offline cluster would
 * miss it). Without helm, or for a chart not fetched yet, it says so and goes on.
 */
export async function checkLockedCharts(
  ctx: CliContext,
  config: Config,
  lock: Lockfile,
): Promise<void> {
  const helm = await which("helm", ctx.env("PATH") ?? Deno.env.get("PATH") ?? "");
  if (helm === undefined) {
    ctx.out.debug(
      "helm is not on the PATH: the add-on image lists were not checked against the charts",
    );
    return;
  }
  const dir = storeDir(config, ctx.env);
  const tmpDir = await Deno.makeTempDir({ prefix: "dtk-template-" });
  try {
    const checks = await checkChartImages(config, {
      runner: ctx.runner,
      helm,
      tmpDir,
      chartPath: async (name) => {
        const entry = lock.artifacts[chartArtifactName(name)];
        if (entry === undefined) return undefined;
        const path = artifactPath(dir, entry);
        return await exists(path) ? path : undefined;
      },
    });
    for (const c of checks) {
      if (c.status === "failed") {
        ctx.out.warn(
          `could not check the images of add-on ${
            q(c.addon)
          } against its chart: ${c.error?.message}`,
        );
      } else if (c.missing.length > 0) {
        ctx.out.warn(
          `add-on ${q(c.addon)} chart ${q(c.version)} renders images its list lacks, so they ` +
            `are not locked: ${c.missing.join(", ")}`,
        );
      }
    }
    const unfetched = checks.filter((c) => c.status === "no-chart").map((c) => c.addon);
    if (unfetched.length > 0) {
      ctx.out.info(
        `Image lists not checked against charts not in the store yet (${unfetched.join(", ")}): ` +
          "run dtk fetch, then dtk lock again",
      );
    }
  } finally {
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
}
