/**
 * `dtk install-addon NAME [--force]`, `dtk addons list` and `dtk dns-webhook`.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { DtkError, formatDuration, q, UsageError } from "../errors/mod.ts";
import { exists } from "../fs/mod.ts";
import { clusterDir, lockPath, pkiLayout, storeDir } from "../paths/mod.ts";
import { table } from "../ui/mod.ts";
import type { AddonName, HelmRelease } from "../addons/mod.ts";
import { ADDON_NAMES } from "../config/mod.ts";
import {
  domainsProblem,
  ensureWebhookToken,
  isWildcardAddress,
  startDnsWebhook,
  webhookTokenPath,
} from "../dnswebhook/mod.ts";
import { artifactPath, type Lockfile, requireLock } from "../../store/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import { withRunLog } from "./_runlog.ts";

function positiveMinutes(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(`--timeout wants a number of minutes, got ${q(value)}`);
  }
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`--port wants a port number (0–65535), got ${q(value)}`);
  }
  return n;
}

/** The store path of a lock artifact, or an error saying how to get it into the lock. */
function lockedPath(config: Config, lock: Lockfile, artifact: string, addon: AddonName): string {
  const entry = lock.artifacts[artifact];
  if (entry === undefined) {
    throw new UsageError(
      `The lock ${q(lockPath(config))} has no ${q(artifact)} for add-on ${q(addon)}`,
      {
        hint: `Enable ${
          q(addon)
        } in the config (or keep it disabled and still lock it), then run: dtk lock && dtk fetch`,
      },
    );
  }
  return artifactPath(storeDir(config), entry);
}

/** Add-ons in the config's order, then the ones the config does not list. */
function listedOrder(config: Config): AddonName[] {
  const listed = config.addons.map((a) => a.name as AddonName);
  return [...listed, ...ADDON_NAMES.filter((n) => !listed.includes(n))];
}

/** Node steps run over the cluster's nodes as `cluster create` reaches them (state.json). */
async function nodeStepRunner(config: Config, ctx: CliContext) {
  const [{ addonNodeStepRunner, Nodes }, { StateStore }] = await Promise.all([
    import("../cluster/mod.ts"),
    import("../pipeline/mod.ts"),
  ]);
  const layout = pkiLayout(config);
  const state = await StateStore.open(join(layout.root, "state.json"), config.cluster.name);
  return addonNodeStepRunner(new Nodes(config, { layout, state, runner: ctx.runner }));
}

export function registerAddonsCommands(program: Command, ctx: CliContext): void {
  program
    .command("install-addon")
    .description("Install or upgrade one add-on on the running cluster, enabled or not")
    .argument("<name>", `One of: ${ADDON_NAMES.join(", ")}`)
    .option("--force", "Install even when an add-on it needs is missing or another CNI is there")
    .addOption(
      new Option("--timeout <minutes>", "Helm's timeout; readiness waits get half of it")
        .argParser(positiveMinutes),
    )
    .action(async (nameArg, options, command) => {
      // The add-on registry and installer load only for the commands that use them.
      const {
        addonChart,
        clusterFacts,
        installAddon,
        installedAddons,
        installProblems,
        listNodes,
        listReleases,
        parseAddonName,
      } = await import("../addons/mod.ts");
      const globals = command.optsWithGlobals() as GlobalOptions;
      const name = parseAddonName(nameArg);
      const config = await ctx.loadConfig(globals);
      await withRunLog(ctx, config, "install-addon", async (ctx, log) => {
        const layout = pkiLayout(config);
        const kubeconfig = layout.kubeconfig("admin");
        if (!await exists(kubeconfig)) {
          throw new DtkError(
            `Cluster ${q(config.cluster.name)} has no admin kubeconfig ${q(kubeconfig)}`,
            {
              hint: "Create the cluster first: dtk cluster create",
            },
          );
        }
        const token = await (await import("../pki/mod.ts")).readAdminToken(config);
        if (token === undefined) {
          throw new DtkError(
            `Cluster ${q(config.cluster.name)} has no admin token in ${q(layout.staticToken)}`,
            {
              hint: "Make it with: dtk cluster create (or dtk certs generate)",
            },
          );
        }
        const lock = await requireLock(lockPath(config));
        const chart = addonChart(config, name);
        const locked = lock.artifacts[chart.artifact];
        if (locked !== undefined && locked.version !== chart.version) {
          throw new UsageError(
            `The lock pins chart ${q(chart.artifact)} at ${
              q(locked.version)
            }, the config asks for ${q(chart.version)}`,
            { hint: "Update the lock: dtk lock --update && dtk fetch" },
          );
        }
        const query = { runner: ctx.runner, kubeconfig };
        const nodes = await listNodes(config, query);
        const facts = clusterFacts(config, nodes, token);
        if (name === "external-dns") {
          facts.dnsWebhookToken = await ensureWebhookToken(clusterDir(config));
        }
        const installed = installedAddons(await listReleases(query));
        const problems = installProblems(name, new Set(installed.keys()));
        if (problems.length > 0 && !options.force) {
          throw new UsageError(problems.join("; "), {
            hint:
              `Install what it needs first, or install anyway with: dtk install-addon ${name} --force`,
          });
        }
        for (const p of problems) ctx.out.warn(`${p} (installing anyway: --force)`);
        const helmMs = (options.timeout ?? 10) * 60_000;
        const result = await installAddon(name, {
          config,
          facts,
          kubeconfig,
          runner: ctx.runner,
          artifactPath: (artifact) => lockedPath(config, lock, artifact, name),
          runNodeStep: await nodeStepRunner(config, ctx),
          timeouts: options.timeout === undefined ? {} : { helmMs, readyMs: helmMs / 2 },
          log: (text) => {
            log.note(text);
            ctx.out.info(text);
          },
        });
        if (globals.json) {
          ctx.out.data(JSON.stringify(result, null, 2));
          return;
        }
        ctx.out.success(
          `Add-on ${q(name)} (chart ${result.chartVersion}) ready in ${
            formatDuration(result.elapsedMs)
          }`,
        );
      });
    });

  const addons = program.command("addons").description("The add-ons dtk knows");
  addons
    .command("list")
    .description("Every add-on: chart version, enabled in the config, installed on the cluster")
    .option("--no-cluster", "Do not ask the cluster what is installed")
    .action(async function (this: Command, options: { cluster: boolean }) {
      const { addonChart, ADDONS, installedAddons, listReleases } = await import(
        "../addons/mod.ts"
      );
      const globals = this.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(globals);
      const kubeconfig = pkiLayout(config).kubeconfig("admin");
      let installed: Map<AddonName, HelmRelease> | undefined;
      if (options.cluster && await exists(kubeconfig)) {
        try {
          installed = installedAddons(
            await listReleases({ runner: ctx.runner, kubeconfig, timeoutMs: 30_000 }),
          );
        } catch (error) {
          ctx.out.warn(
            `Cannot ask cluster ${q(config.cluster.name)} what is installed: ${
              (error as Error).message
            }`,
          );
        }
      }
      const rows = listedOrder(config).map((name) => {
        const def = ADDONS.get(name)!;
        const chart = addonChart(config, name);
        const entry = config.addons.find((a) => a.name === name);
        const release = installed?.get(name);
        return {
          name,
          chart: chart.file,
          version: chart.version,
          enabled: entry?.enabled ?? false,
          installed: installed === undefined ? null : release !== undefined,
          status: release?.status ?? null,
          release: def.release,
          namespace: def.namespace,
          description: def.description,
        };
      });
      if (globals.json) {
        ctx.out.data(JSON.stringify(rows, null, 2));
        return;
      }
      ctx.out.data(table(
        ["NAME", "CHART VERSION", "ENABLED", "INSTALLED", "NAMESPACE"],
        rows.map((r) => [
          r.name,
          r.version,
          r.enabled ? "yes" : "no",
          r.installed === null ? "unknown" : r.installed ? `yes (${r.status})` : "no",
          r.namespace,
        ]),
      ));
    });

  program
    .command("dns-webhook")
    .description(
      "Serve the external-dns webhook on the desktop: point host names of the managed domains at the controller in a hosts file",
    )
    .option("--hosts-file <path>", "The hosts file to edit", "/etc/hosts")
    .addOption(
      new Option("--port <port>", "Port to listen on (default: dns.webhook-port)").argParser(port),
    )
    .option(
      "--listen <address>",
      "Address to listen on (default: dns.host-ip, else the VM network's host address, else 127.0.0.1; 0.0.0.0 only if you mean every interface)",
    )
    .option(
      "--cluster-ip <ip>",
      "The controller's address (else set by dtk install-addon external-dns)",
    )
    .option("--domains <list>", "Managed domains, comma separated (else set by the installer)")
    .option("--dry-run", "Log the changes, do not write the hosts file")
    .option("--debug", "Log every request and record")
    .action(async function (
      this: Command,
      options: {
        hostsFile: string;
        port?: number;
        listen?: string;
        clusterIp?: string;
        domains?: string;
        dryRun?: boolean;
        debug?: boolean;
      },
    ) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(globals);
      if (options.domains !== undefined) {
        const problem = domainsProblem(options.domains);
        if (problem !== undefined) {
          throw new UsageError(`--domains: ${problem}`, { hint: "Give domains like dtk.io" });
        }
      }
      const listen = options.listen ?? await webhookListenAddress(config, ctx);
      if (isWildcardAddress(listen)) {
        ctx.out.warn(
          `Listening on every interface (${
            q(listen)
          }): every host that reaches this one can try the token`,
        );
      }
      const cluster = clusterDir(config);
      const token = await ensureWebhookToken(cluster);
      await giveBackToSudoUser(webhookTokenPath(cluster), ctx);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      Deno.addSignalListener("SIGINT", onSignal);
      Deno.addSignalListener("SIGTERM", onSignal);
      try {
        const server = await startDnsWebhook({
          token,
          cluster: config.cluster.name,
          hostsFile: options.hostsFile,
          hostname: listen,
          port: options.port ?? config.dns.webhookPort,
          clusterIp: options.clusterIp,
          domains: options.domains === undefined ? [] : [options.domains],
          dryRun: options.dryRun,
          debug: options.debug,
          signal: stop.signal,
          log: (text) => ctx.out.info(`[${new Date().toISOString()}] ${text}`),
        });
        ctx.out.info(
          `DNS webhook on http://${server.hostname}:${server.port}, editing ${
            q(options.hostsFile)
          }` +
            (options.dryRun ? " (dry run)" : "") +
            `; token in ${q(webhookTokenPath(cluster))}; Ctrl-C stops it`,
        );
        await server.finished;
        ctx.out.info("DNS webhook stopped");
      } finally {
        Deno.removeSignalListener("SIGINT", onSignal);
        Deno.removeSignalListener("SIGTERM", onSignal);
      }
    });
}

/**
 * `sudo dtk dns-webhook` (root, to edit /etc/hosts) may make the token: it stays the user's,
 * so that `dtk install-addon external-dns`, run as the user, can read it.
 */
async function giveBackToSudoUser(path: string, ctx: CliContext): Promise<void> {
  const uid = Number(ctx.env("SUDO_UID") ?? "");
  const gid = Number(ctx.env("SUDO_GID") ?? "");
  if (Deno.uid() !== 0 || !Number.isInteger(uid) || uid <= 0) return;
  await Deno.chown(path, uid, Number.isInteger(gid) && gid > 0 ? gid : null).catch(() => {});
}

/**
 * Where the webhook listens by default: the address the guests are told (`dns.host-ip`), else
 * the host's address on the VM network, else loopback. Never every interface.
 */
async function webhookListenAddress(config: Config, ctx: CliContext): Promise<string> {
  if (config.dns.hostIp !== undefined && config.dns.hostIp !== "") return config.dns.hostIp;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const { driverFor } = await import("./cluster.ts");
    const driver = await driverFor(config, ctx);
    // A libvirt daemon that hangs must not hold the webhook: loopback after 10 s.
    const endpoint = await Promise.race([
      driver.hostEndpoint?.(),
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 10_000)),
    ]);
    if (endpoint !== undefined) return endpoint.listen;
  } catch {
    // No driver tools on this host: loopback is the safe answer.
  } finally {
    clearTimeout(timer);
  }
  return "127.0.0.1";
}
