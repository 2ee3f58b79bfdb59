/** `dtk version`. */
import type { Command } from "commander";
import denoJson from "../../deno.json" with { type: "json" };
import type { CliContext, GlobalOptions } from "./context.ts";

/** dtk's own version, from `deno.json`. */
export const VERSION: string = denoJson.version;

/** The original Desktop Kubernetes release dtk follows. */
export const UPSTREAM_VERSION = "v1.35.0";

export function versionInfo(): Record<string, string> {
  return {
    dtk: VERSION,
    upstream: UPSTREAM_VERSION,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    os: `${Deno.build.os}/${Deno.build.arch}`,
  };
}

export function registerVersionCommand(program: Command, ctx: CliContext): void {
  program
    .command("version")
    .description("Print dtk's version (works without a config)")
    .action(function (this: Command) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const info = versionInfo();
      if (globals.json) {
        ctx.out.data(JSON.stringify(info, null, 2));
        return;
      }
      ctx.out.data(
        `dtk ${info.dtk} (follows Desktop Kubernetes ${info.upstream}; deno ${info.deno}, ${info.os})`,
      );
    });
}
