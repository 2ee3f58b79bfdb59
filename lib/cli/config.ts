/** `dtk config show|check`. */
import { type Command, Option } from "commander";
import { toYamlObject } from "../config/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import { renderIssue } from "./render_error.ts";

export function registerConfigCommands(program: Command, ctx: CliContext): void {
  const config = program
    .command("config")
    .description("Show or check the config")
    .addHelpText(
      "after",
      "\nThe config is --config PATH, else $DTK_CONFIG, else ./config.yaml, else the built-in default.",
    );

  config
    .command("show")
    .description("Print the effective config, defaults filled")
    .addOption(
      new Option("-o, --output <format>", "Output format").choices(["yaml", "json"] as const)
        .default("yaml" as const),
    )
    .action(async function (this: Command, options: { output: "yaml" | "json" }) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const loaded = await ctx.loadConfig(globals);
      const object = toYamlObject(loaded);
      if (globals.json || options.output === "json") {
        ctx.out.data(JSON.stringify(object, null, 2));
      } else {
        const { stringify } = await import("yaml");
        const header = `# Effective config, from ${loaded.source.file}\n`;
        ctx.out.data(header + stringify(object, { lineWidth: 0 }));
      }
    });

  config
    .command("check")
    .description("Validate the config; exit 0 when valid, 2 when not")
    .action(async function (this: Command) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const loaded = await ctx.loadConfig(globals);
      if (globals.json) {
        ctx.out.data(
          JSON.stringify({ file: loaded.source.file, valid: true, issues: [] }, null, 2),
        );
        return;
      }
      ctx.out.success(`Config is valid: ${loaded.source.file}`);
    });
}

export { renderIssue };
