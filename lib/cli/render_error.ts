/**
 * Renders an error once, in Deno's style: `error: <message>`, the details, `hint: …`, and the
 * cause chain (with stacks only under `--verbose`).
 *
 * @module
 */
import {
  CommandError,
  ConfigError,
  type ConfigIssue,
  DtkError,
  ExitCode,
  type ExitCodeValue,
} from "../errors/mod.ts";
import type { Output } from "../ui/mod.ts";
import { formatCommand } from "../exec/mod.ts";

/** One config issue as `file:line:column path` + message + hint lines. */
export function renderIssue(issue: ConfigIssue, out: Pick<Output, "cyan" | "dim">): string {
  const where = `${issue.file}:${issue.line}:${issue.column}`;
  const lines = [
    `  ${out.cyan(where)} ${out.dim(issue.path || "(document)")}`,
    `    ${issue.message}`,
  ];
  if (issue.hint) lines.push(`    hint: ${issue.hint}`);
  return lines.join("\n");
}

function indent(text: string, prefix: string): string {
  return text.split("\n").map((l) => prefix + l).join("\n");
}

/** The text printed for `error`, and the exit code the process ends with. */
export function renderError(
  error: unknown,
  out: Pick<Output, "red" | "bold" | "cyan" | "dim" | "verbose">,
): { text: string; exitCode: ExitCodeValue } {
  const lines: string[] = [];
  const message = error instanceof Error ? error.message : String(error);
  lines.push(`${out.red(out.bold("error"))}: ${message}`);
  if (error instanceof ConfigError && error.issues.length > 0) {
    for (const issue of error.issues) lines.push(renderIssue(issue, out));
  }
  if (error instanceof CommandError) {
    if (error.command.length > 0) lines.push(`  command: ${formatCommand(error.command)}`);
    if (error.code !== null) lines.push(`  exit code: ${error.code}`);
    if (error.stderrTail.trim() !== "") {
      lines.push("  output (last lines):", indent(error.stderrTail.trimEnd(), "    "));
    }
  }
  let cause = error instanceof Error ? error.cause : undefined;
  const seen = new Set<unknown>();
  let said = message;
  while (cause !== undefined && cause !== null && !seen.has(cause)) {
    seen.add(cause);
    const text = cause instanceof Error ? cause.message : String(cause);
    // A wrapper often repeats its cause's message; say it once.
    if (!said.includes(text)) lines.push(`  ${out.dim("caused by:")} ${text}`);
    said += `\n${text}`;
    if (cause instanceof CommandError && cause.stderrTail.trim() !== "") {
      lines.push(indent(cause.stderrTail.trimEnd(), "    "));
    }
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  if (error instanceof DtkError && error.hint) lines.push(`${out.cyan("hint")}: ${error.hint}`);
  if (!(error instanceof DtkError)) {
    lines.push(
      `${
        out.cyan("hint")
      }: This is a bug in dtk; run again with --verbose and report the stack trace`,
    );
  }
  if (out.verbose && error instanceof Error && error.stack) {
    lines.push(out.dim(error.stack));
  }
  const exitCode = error instanceof DtkError ? error.exitCode : ExitCode.failure;
  return { text: lines.join("\n"), exitCode };
}
