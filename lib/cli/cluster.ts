/**
 * `dtk cluster create`, `dtk plan`, `dtk ssh`, `dtk kubeconfig`, and the `cluster` command group
 * that the VM lifecycle commands join.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { DtkError, PrerequisiteError, q, UsageError } from "../errors/mod.ts";
import { exists, writeFileAtomic } from "../fs/mod.ts";
import { shellQuote } from "../exec/mod.ts";
import { generatedDir, lockPath, pkiLayout, storeDir } from "../paths/mod.ts";
import { lockConfig, mirrorList, openStore, readLock } from "../../store/mod.ts";
import type { Driver } from "../../drivers/mod.ts";
import type { RenderOverrides } from "../render/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import type { RunLog } from "../runlog/mod.ts";
import { withRunLog } from "./_runlog.ts";
import { registerVmCommands } from "./vm.ts";
import { registerStatusCommands } from "./status.ts";

/** `true`/`false`/`1`/`0`, as the original's `--create-template` and `--create-vms` take. */
export function parseBool(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes"].includes(v)) return true;
  if (["false", "0", "no"].includes(v)) return false;
  throw new UsageError(`Invalid boolean ${q(value)}`, { hint: "Use true or false" });
}

function parseJobs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new UsageError(`Invalid --jobs ${q(value)}`, { hint: "Use a whole number from 1 to 64" });
  }
  return n;
}

// Each command loads what it needs when it runs: `dtk fetch` or `dtk --help` should not pay
// for the drivers, the pipeline or ssh at start-up.

/** The config's driver; the test-only one only if the test entry registered it. */
export async function driverFor(config: Config, ctx: CliContext): Promise<Driver> {
  const { createDriver } = await import("../../drivers/mod.ts");
  return createDriver(config, { runner: ctx.runner, testDriver: ctx.testDriver });
}

/** Points the original's single-cluster paths at the cluster just created. */
async function linkLegacyPaths(config: Config): Promise<void> {
  const layout = pkiLayout(config);
  const base = generatedDir(config);
  const links: [string, string][] = [
    [join(base, "kickstart", "id_ed25519"), layout.sshPrivateKey],
    [join(base, "kickstart", "id_ed25519.pub"), layout.sshPublicKey],
    [join(base, "kubeconfig", "admin.kubeconfig"), layout.kubeconfig("admin")],
  ];
  for (const [link, target] of links) {
    await Deno.mkdir(join(link, ".."), { recursive: true });
    const temp = `${link}.tmp-${Deno.pid}`;
    await Deno.remove(temp).catch(() => {});
    await Deno.symlink(target, temp);
    await Deno.rename(temp, link);
  }
}

export function registerClusterCommands(program: Command, ctx: CliContext): void {
  const cluster = program
    .command("cluster")
    .description("Create a cluster, and start, stop, pause or delete its VMs");

  cluster
    .command("create")
    .description("Create the cluster of the config: template, VMs, PKI, Kubernetes, add-ons")
    .addOption(
      new Option(
        "--create-template <bool>",
        "Build the template first (default: vm.create-template)",
      )
        .argParser(parseBool),
    )
    .addOption(
      new Option("--create-vms <bool>", "Create the VMs; false: they exist and run already")
        .argParser(parseBool).default(true),
    )
    .addOption(new Option("-j, --jobs <n>", "Steps run at once").argParser(parseJobs).default(4))
    .option(
      "--frozen",
      "Use dtk.lock as it is; fail when it is missing or lacks what the config needs",
    )
    .option(
      "--offline",
      "Nodes pull images only from dtk's registry (the lock's images), never upstream",
    )
    .option("--skip-preflight", "Do not check the host first (not recommended)")
    .addHelpText(
      "after",
      `
Steps run as soon as what they need is done; finished steps are recorded in
generated/<cluster>/state.json, so running the command again resumes where it stopped.
The host is checked first (as dtk doctor does); a missing prerequisite stops it before anything
is touched (exit 3). When the lock has images (dtk lock), dtk's registry serves them to the
nodes during the create, on the host address they reach (port 5380), and every locked image is
pinned on the nodes at the end, so the cluster runs without dtk.`,
    )
    .action(async function (this: Command) {
      const opts = this.optsWithGlobals() as GlobalOptions & {
        createTemplate?: boolean;
        createVms: boolean;
        jobs: number;
        frozen?: boolean;
        skipPreflight?: boolean;
        offline?: boolean;
      };
      const config = await ctx.loadConfig(opts);
      await withRunLog(ctx, config, "create", (ctx, log) => create(ctx, config, opts, log));
    });

  const create = async (
    ctx: CliContext,
    config: Config,
    opts: GlobalOptions & {
      createTemplate?: boolean;
      createVms: boolean;
      jobs: number;
      frozen?: boolean;
      skipPreflight?: boolean;
      offline?: boolean;
    },
    log: RunLog,
  ): Promise<void> => {
    const createTemplate = opts.createTemplate ?? config.vm.createTemplate;
    const driver = await driverFor(config, ctx);
    if (!opts.skipPreflight) {
      ctx.out.info("Checking the host …");
      if (config.virt !== "test-nspawn") {
        const { preflight, preflightError } = await import("../doctor/mod.ts");
        // A registry port that is taken stops the create here, before anything is touched.
        const { registryInput } = await import("./doctor.ts");
        const failures = await preflight(config, {
          runner: ctx.runner,
          env: ctx.env,
          registry: await registryInput(config, ctx),
        });
        if (failures.length > 0) throw preflightError(failures);
      }
      const problems = await driver.preflight(
        createTemplate ? {} : { template: config.vm.templateVmname },
      );
      if (problems.length > 0) {
        throw new PrerequisiteError(
          problems.length === 1
            ? problems[0]!.message
            : `The host lacks ${problems.length} prerequisites: ${
              problems.map((p) => p.message).join("; ")
            }`,
          { hint: problems.map((p) => p.fix).join("; ") },
        );
      }
    }
    const store = openStore(storeDir(config, ctx.env));
    const path = lockPath(config);
    if (!(await exists(path)) || !opts.frozen) {
      const outcome = await lockConfig(config, {
        store,
        path,
        frozen: opts.frozen,
        download: { mirrors: mirrorList([], config, ctx.env) },
        warn: (m) => ctx.out.warn(m),
        info: (m) => ctx.out.debug(m),
      });
      if (outcome.written) ctx.out.info(`Wrote ${path}`);
    }
    const lock = await readLock(path);
    if (!lock) throw new DtkError(`Cannot read the lock ${q(path)}`);
    // The pipeline (and the X.509 code it needs) loads only when a cluster is created.
    const { checkLockCovers, ClusterCreate, formatCreateSummary } = await import(
      "../cluster/mod.ts"
    );
    if (opts.frozen) checkLockCovers(config, lock, path);
    const abort = new AbortController();
    const onSignal = () => {
      ctx.out.warn(
        "Interrupted: finishing the running steps, then stopping (Ctrl-C again to force)",
      );
      Deno.removeSignalListener("SIGINT", onSignal);
      abort.abort();
    };
    Deno.addSignalListener("SIGINT", onSignal);
    try {
      const run = new ClusterCreate(config, {
        runner: ctx.runner,
        out: ctx.out,
        driver,
        lock,
        lockPath: path,
        createTemplate,
        createVms: opts.createVms,
        jobs: opts.jobs,
        env: ctx.env,
        offline: opts.offline,
        registryPort: config.testNspawn?.["registryPort"] as number | undefined,
        signal: abort.signal,
        log,
        renderOverrides: (config.testNspawn?.["renderOverrides"] ?? undefined) as
          | RenderOverrides
          | undefined,
        timeouts: (config.testNspawn?.["timeouts"] ?? undefined) as
          | Record<string, number>
          | undefined,
      });
      const report = await run.run();
      const { criticalPath, formatRunSummary } = await import("../runlog/mod.ts");
      const timings = formatRunSummary(log.steps);
      log.note(`Phases and critical path:\n${timings}`);
      await linkLegacyPaths(config);
      if (opts.json) {
        ctx.out.data(JSON.stringify(
          {
            cluster: config.cluster.name,
            kubeconfig: report.kubeconfig,
            elapsedMs: Math.round(report.elapsedMs),
            ran: report.ran,
            skipped: report.skipped,
            phases: report.phases,
            criticalPath: criticalPath(log.steps).map((p) => ({
              step: p.id,
              elapsedMs: Math.round(p.elapsedMs),
            })),
            log: log.path,
          },
          null,
          2,
        ));
      } else {
        ctx.out.data(formatCreateSummary(report, config, timings));
      }
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
    }
  };

  registerVmCommands(cluster as unknown as Command, ctx, {
    driver: (config: Config, c: CliContext) => driverFor(config, c),
  });
  registerStatusCommands(cluster as unknown as Command, ctx, {
    driver: (config: Config, c: CliContext) => driverFor(config, c),
  });

  program
    .command("plan")
    .description("Print the steps of cluster create for the config, touching nothing")
    .addOption(
      new Option("--create-template <bool>", "As for cluster create").argParser(parseBool),
    )
    .addOption(
      new Option("--create-vms <bool>", "As for cluster create").argParser(parseBool).default(true),
    )
    .action(async function (this: Command) {
      const opts = this.optsWithGlobals() as GlobalOptions & {
        createTemplate?: boolean;
        createVms: boolean;
      };
      const config = await ctx.loadConfig(opts);
      const { buildPlan, formatPlan } = await import("../plan/mod.ts");
      const plan = buildPlan(config, {
        createTemplate: opts.createTemplate ?? config.vm.createTemplate,
        createVms: opts.createVms,
      });
      if (opts.json) ctx.out.data(JSON.stringify(plan, null, 2));
      else ctx.out.data(formatPlan(plan));
    });

  program
    .command("ssh")
    .description("Log in to a node as root, or run a command there (pinned host key)")
    .argument("<vm>", "VM name")
    .argument("[command...]", "Command to run instead of a login shell (after --)")
    .action(async (vm: string, command: string[], _options, cmd) => {
      const opts = cmd.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(opts);
      if (!config.vms.some((v) => v.name === vm)) {
        throw new UsageError(`No VM named ${q(vm)} in the config`, {
          hint: `VMs: ${config.vms.map((v) => v.name).join(", ")}`,
        });
      }
      const layout = pkiLayout(config);
      const { StateStore } = await import("../pipeline/mod.ts");
      const { SshRemote } = await import("../remote/mod.ts");
      const state = await StateStore.open(join(layout.root, "state.json"), config.cluster.name);
      const address = state.node(vm);
      if (!address) {
        throw new DtkError(`No address known for VM ${q(vm)}`, {
          hint: "Create the cluster first: dtk cluster create",
        });
      }
      const remote = new SshRemote({
        node: vm,
        host: address.ssh.host,
        port: address.ssh.port,
        identityFile: layout.sshPrivateKey,
        knownHostsFile: join(layout.sshDir, "known_hosts"),
        controlDir: layout.sshDir,
      });
      const interactive = command.length === 0 && Deno.stdin.isTerminal();
      const base = remote.sshArgs();
      const args = [
        ...base.slice(0, -1),
        ...(interactive ? ["-t"] : []),
        ...base.slice(-1),
        ...(command.length > 0 ? [command.join(" ")] : []),
      ];
      const child = new Deno.Command("ssh", {
        args,
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
      const status = await child.status;
      if (!status.success) {
        throw new DtkError(`ssh to ${q(vm)} exited with code ${status.code}`, {
          exitCode: 1,
        });
      }
    });

  program
    .command("kubeconfig")
    .description("Show where the cluster's admin kubeconfig is, or merge it into ~/.kube/config")
    .option("--merge", "Merge it into $KUBECONFIG (first path) or ~/.kube/config")
    .option("--set-current", "With --merge: make the cluster's context the current one")
    .action(async function (this: Command) {
      const opts = this.optsWithGlobals() as GlobalOptions & {
        merge?: boolean;
        setCurrent?: boolean;
      };
      const config = await ctx.loadConfig(opts);
      const path = pkiLayout(config).kubeconfig("admin");
      if (!(await exists(path))) {
        throw new DtkError(`The cluster ${q(config.cluster.name)} has no kubeconfig yet`, {
          hint: "Create it first: dtk cluster create",
        });
      }
      if (!opts.merge) {
        if (opts.json) {
          ctx.out.data(JSON.stringify({ kubeconfig: path, context: config.cluster.name }));
        } else ctx.out.data(`${path}\nexport KUBECONFIG=${shellQuote(path)}`);
        return;
      }
      const target = (ctx.env("KUBECONFIG") ?? "").split(":").find((p) => p !== "") ??
        join(ctx.env("HOME") ?? "/root", ".kube", "config");
      const existing = await Deno.readTextFile(target).catch((e) => {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw e;
      });
      const { mergeKubeconfig } = await import("../kubeconfig/mod.ts");
      const result = mergeKubeconfig(existing, await Deno.readTextFile(path), {
        setCurrent: opts.setCurrent,
        path: target,
      });
      await writeFileAtomic(target, result.text, { mode: 0o600 });
      ctx.out.success(
        `${result.replaced ? "Updated" : "Added"} context ${q(result.context)} in ${target}` +
          (opts.setCurrent ? " (now current)" : ""),
      );
      ctx.out.info(`Use it: kubectl --context ${result.context} get nodes`);
    });
}
