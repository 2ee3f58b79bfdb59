/**
 * `dtk export logs [DIR]`: the cluster's support bundle (see `lib/support`).
 *
 * @module
 */
import type { Command } from "commander";
import { join, resolve } from "node:path";
import type { Config } from "../config/types.ts";
import { formatDuration, q } from "../errors/mod.ts";
import { clusterDir, pkiLayout } from "../paths/mod.ts";
import type { RenderOverrides } from "../render/mod.ts";
import { formatBytes } from "../ui/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";

export function registerExportCommands(program: Command, ctx: CliContext): void {
  const group = program.command("export").description("Export what dtk knows of a cluster");
  group
    .command("logs")
    .description("Write a support bundle of the config's cluster (.tar.gz with a manifest)")
    .argument("[dir]", "Folder to write it in (default: the current folder)")
    .addHelpText(
      "after",
      `
The bundle (dtk-<cluster>-<timestamp>.tar.gz) holds dtk's run logs, the state, lock and plan, the
files dtk renders for each node and the add-ons' values, per node the journal of every dtk unit
(the last day, at most 1 MiB each), crictl ps -a and the logs of containers not running, kubectl
get events -A, describe nodes and get pods, dtk doctor --json and dtk version --json, and
manifest.json listing every file and what could not be collected. No private key, token or
encryption secret goes in: owner-only files are left out and every secret value is redacted.`,
    )
    .action(async (dir, _options, cmd) => {
      const started = performance.now();
      const opts = cmd.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(opts);
      const { collectBundle, writeBundle } = await import("../support/mod.ts");
      const { logTimestamp } = await import("../runlog/mod.ts");
      const sources = await bundleSources(config, ctx);
      try {
        const { entries, manifest } = await collectBundle(config, sources.options);
        const target = resolve(
          ctx.cwd,
          dir ?? ".",
          `dtk-${config.cluster.name}-${logTimestamp(new Date())}.tar.gz`,
        );
        const size = await writeBundle(target, entries);
        for (const p of manifest.problems) ctx.out.warn(`Not collected: ${p.what}: ${p.error}`);
        if (opts.json) {
          ctx.out.data(JSON.stringify({ path: target, bytes: size, ...manifest }, null, 2));
        } else ctx.out.data(target);
        ctx.out.success(
          `Wrote ${manifest.files.length} files (${formatBytes(size)}) for cluster ${
            q(config.cluster.name)
          } in ${formatDuration(performance.now() - started)}`,
        );
      } finally {
        await sources.close();
      }
    });
}

/** The cluster's nodes, units and rendered files, as the bundle collector asks for them. */
async function bundleSources(config: Config, ctx: CliContext) {
  const [{ StateStore }, { Nodes }, render, { buildPlan }] = await Promise.all([
    import("../pipeline/mod.ts"),
    import("../cluster/mod.ts"),
    import("../render/mod.ts"),
    import("../plan/mod.ts"),
  ]);
  const state = await StateStore.open(join(clusterDir(config), "state.json"), config.cluster.name);
  const nodes = new Nodes(config, { layout: pkiLayout(config), state, runner: ctx.runner });
  const ips = nodes.ips();
  const overrides = config.testNspawn?.["renderOverrides"] as RenderOverrides | undefined;
  const steps = (node: string) => {
    const input = { config, nodes: render.renderNodes(config, ips), node, overrides };
    return render.stepsForNode(input).map((s) => render.renderStep(s, input));
  };
  const options: import("../support/mod.ts").BundleOptions = {
    runner: ctx.runner,
    remote: (n) => state.node(n) ? nodes.remote(n) : undefined,
    units: (n) => {
      try {
        return steps(n).flatMap((s) => s.units);
      } catch {
        return [];
      }
    },
    rendered: (n) =>
      steps(n).flatMap((s) => s.files.map((f) => ({ path: f.path, content: f.content }))),
    plan: () =>
      JSON.stringify(
        buildPlan(config, { createTemplate: config.vm.createTemplate, createVms: true }),
        null,
        2,
      ),
    extras: [
      {
        path: "dtk/doctor.json",
        produce: async () => {
          const { blockingFailures, runDoctor } = await import("../doctor/mod.ts");
          const checks = await runDoctor(config, { runner: ctx.runner, env: ctx.env });
          return JSON.stringify(
            { virt: config.virt, ok: blockingFailures(checks).length === 0, checks },
            null,
            2,
          );
        },
      },
      {
        path: "dtk/version.json",
        produce: async () =>
          JSON.stringify(await (await import("./version.ts")).versionInfo(), null, 2),
      },
    ],
  };
  return { options, close: () => nodes.closeAll() };
}
