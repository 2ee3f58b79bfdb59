/** `dtk version`. */
import type { Command } from "commander";
import denoJson from "../../deno.json" with { type: "json" };
import { BUILD_INFO, type BuildInfo } from "./_build_info.ts";
import type { CliContext, GlobalOptions } from "./context.ts";

/**
 * dtk's version: the release's, stamped at build time; from source, `deno.json`'s with `-dev`, so
 * that a source run never claims to be a release.
 */
export const VERSION: string = BUILD_INFO?.version ?? `${denoJson.version}-dev`;

/** The original Desktop Kubernetes release dtk follows. */
export const UPSTREAM_VERSION = "v1.35.0";

/** What `dtk version` reports. */
export interface VersionInfo {
  version: string;
  /** Git commit; `null` when neither the build nor a source checkout says. */
  commit: string | null;
  /** Build date (ISO 8601 UTC); `null` when run from source. */
  buildDate: string | null;
  /** The Rust target triple the runtime was built for, e.g. `x86_64-unknown-linux-gnu`. */
  target: string;
  deno: string;
  upstream: string;
}

/** Reads the commit of a source checkout; `null` outside one (a bundle, a copied tree). */
export type CommitProbe = () => Promise<string | null>;

async function sourceCommit(): Promise<string | null> {
  const here = new URL(".", import.meta.url);
  if (here.protocol !== "file:") return null;
  try {
    // A direct subprocess, not the Runner: a missing git is an answer here, not an error.
    const out = await new Deno.Command("git", {
      args: ["-C", here.pathname, "rev-parse", "HEAD"],
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).output();
    const commit = new TextDecoder().decode(out.stdout).trim();
    return out.success && /^[0-9a-f]{40}$/.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

/** The facts of this dtk: the stamped build's, else the source checkout's. */
export async function versionInfo(
  options: { build?: BuildInfo | null; commit?: CommitProbe } = {},
): Promise<VersionInfo> {
  const build = options.build === undefined ? BUILD_INFO : options.build;
  return {
    version: build?.version ?? `${denoJson.version}-dev`,
    commit: build?.commit ?? await (options.commit ?? sourceCommit)(),
    buildDate: build?.date ?? null,
    target: Deno.build.target,
    deno: Deno.version.deno,
    upstream: UPSTREAM_VERSION,
  };
}

/** The one-line form: the same facts as `--json`. */
export function formatVersion(info: VersionInfo): string {
  const commit = info.commit ? info.commit.slice(0, 12) : "unknown commit";
  const built = info.buildDate ? `built ${info.buildDate}` : "not a release build";
  return `dtk ${info.version} (${commit}, ${built}, ${info.target}, deno ${info.deno}; ` +
    `follows Desktop Kubernetes ${info.upstream})`;
}

export function registerVersionCommand(program: Command, ctx: CliContext): void {
  program
    .command("version")
    .description("Print dtk's version, commit, build date and target (works without a config)")
    .action(async function (this: Command) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const info = await versionInfo();
      ctx.out.data(globals.json ? JSON.stringify(info, null, 2) : formatVersion(info));
    });
}
