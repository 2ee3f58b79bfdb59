/**
 * The command tree. Each area registers its commands here; `main.ts` runs the program and
 * renders errors.
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { UsageError } from "../errors/mod.ts";
import type { CliContext } from "./context.ts";
import { registerVersionCommand, VERSION } from "./version.ts";
import { registerConfigCommands } from "./config.ts";
import { registerCompletionCommand } from "./completion.ts";
import { registerStoreCommands } from "./store.ts";
import { registerAddonsCommands } from "./addons.ts";
import { type DoctorCommandOptions, registerDoctorCommands } from "./doctor.ts";
import { registerClusterCommands } from "./cluster.ts";
import { registerCertsCommands } from "./certs.ts";
import { registerVerifyCommands } from "./verify.ts";
import { registerRegistryCommand } from "./registry.ts";
import { registerExportCommands } from "./export.ts";

export type { CliContext, GlobalOptions } from "./context.ts";
export { renderError, renderIssue } from "./render_error.ts";
export { VERSION } from "./version.ts";

const DESCRIPTION =
  `Run a real multi-node Kubernetes cluster on your desktop: VMs, upstream components
installed the hard way, every artifact pinned by sha256 in dtk.lock.`;

/** Builds the whole command tree. Output goes through `write`, so tests can capture help text. */
export function buildProgram(
  ctx: CliContext,
  options: {
    write?: (text: string) => void;
    helpWidth?: number;
    /** Where `doctor` looks for /proc, /sys, /dev (tests give a fake root). */
    doctor?: DoctorCommandOptions;
  } = {},
) {
  const write = options.write ?? ((text: string) => ctx.out.data(text.replace(/\n$/, "")));
  const program = new Command("dtk")
    .description(DESCRIPTION)
    .usage("<command> [options]")
    .version(VERSION, "--version", "Print the version")
    .option("-c, --config <path>", "Config file (default: $DTK_CONFIG, ./config.yaml, built-in)")
    .option("-v, --verbose", "More detail, and stack traces on errors")
    .option("-q, --quiet", "Only errors and data")
    .option("--json", "Machine-readable output where a command prints data")
    .addOption(new Option("--no-color", "No colours (also: NO_COLOR)"))
    .helpOption("-h, --help", "Show help")
    .helpCommand("help [command]", "Show help for a command")
    .showSuggestionAfterError(true)
    .showHelpAfterError(false)
    .configureHelp({ helpWidth: options.helpWidth ?? 100, showGlobalOptions: true })
    .configureOutput({
      writeOut: write,
      writeErr: write,
      // Errors are rendered once by main.ts, in dtk's own style.
      outputError: () => {},
    })
    .exitOverride()
    .addHelpText(
      "after",
      `
Exit codes: 0 ok, 1 failure, 2 invalid usage or config, 3 host prerequisite missing,
4 integrity (hash mismatch), 5 timeout, 130 interrupted.
Docs: README.md. Run "dtk help <command>" for a command's options.`,
    );

  const p = program as unknown as Command;
  registerClusterCommands(p, ctx);
  registerVerifyCommands(p, ctx);
  registerDoctorCommands(p, ctx, options.doctor);
  registerStoreCommands(p, ctx);
  registerRegistryCommand(p, ctx);
  registerCertsCommands(p, ctx);
  registerAddonsCommands(p, ctx);
  registerExportCommands(p, ctx);
  registerConfigCommands(program, ctx);
  registerCompletionCommand(program, ctx);
  registerVersionCommand(program, ctx);

  // Subcommands inherit the output settings and exit override.
  const configure = (command: Command) => {
    for (const sub of command.commands as Command[]) {
      sub.configureHelp({ helpWidth: options.helpWidth ?? 100, showGlobalOptions: true })
        .configureOutput({ writeOut: write, writeErr: write, outputError: () => {} })
        .exitOverride()
        .helpOption("-h, --help", "Show help")
        .showSuggestionAfterError(true);
      if ((sub.commands as Command[]).length > 0) {
        sub.helpCommand("help [command]", "Show help for a command");
      }
      configure(sub);
    }
  };
  configure(program as unknown as Command);
  return program;
}

/** Help and version requests end the program with exit code 0; other parse errors are usage errors. */
export function translateCommanderError(error: unknown): UsageError | "exit-ok" | undefined {
  if (!(error instanceof CommanderError)) return undefined;
  if (
    error.code === "commander.helpDisplayed" || error.code === "commander.version" ||
    error.code === "commander.help" || error.exitCode === 0
  ) {
    return "exit-ok";
  }
  const message = error.message.replace(/^error: /, "");
  const sentence = message.charAt(0).toUpperCase() + message.slice(1);
  return new UsageError(sentence.replace(/\.$/, "").replace(/'([^']*)'/g, '"$1"'), {
    hint: 'Run "dtk help" for the commands and options',
  });
}
