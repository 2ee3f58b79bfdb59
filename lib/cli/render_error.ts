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
  escapeLines,
  escapeText,
  ExitCode,
  type ExitCodeValue,
} from "../errors/mod.ts";
import type { Output } from "../ui/mod.ts";
import { formatCommand } from "../exec/mod.ts";

/** At most this many config problems are printed; the rest are counted. */
export const MAX_PRINTED_ISSUES = 50;

/**
 * One config issue as `file:line:column path` + message + hint lines. The key path and the file
 * name come from the user's text: control and bidi characters in them are printed escaped.
 */
export function renderIssue(issue: ConfigIssue, out: Pick<Output, "cyan" | "dim">): string {
  const where = `${escapeText(issue.file)}:${issue.line}:${issue.column}`;
  const lines = [
    `  ${out.cyan(where)} ${out.dim(escapeText(issue.path) || "(document)")}`,
    `    ${escapeText(issue.message)}`,
  ];
  if (issue.hint) lines.push(`    hint: ${escapeText(issue.hint)}`);
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
  // Messages carry text from files, servers and subprocesses: nothing in them may move the
  // cursor, recolour the terminal or reorder what is read (escape and bidi characters).
  const message = escapeLines(error instanceof Error ? error.message : String(error));
  lines.push(`${out.red(out.bold("error"))}: ${message}`);
  if (error instanceof ConfigError && error.issues.length > 0) {
    for (const issue of error.issues.slice(0, MAX_PRINTED_ISSUES)) {
      lines.push(renderIssue(issue, out));
    }
    const more = error.issues.length - MAX_PRINTED_ISSUES;
    if (more > 0) {
      lines.push(
        `  … and ${more} more problem${
          more === 1 ? "" : "s"
        } (dtk config check --json lists them all)`,
      );
    }
  }
  if (error instanceof CommandError) {
    if (error.command.length > 0) {
      lines.push(`  command: ${escapeLines(formatCommand(error.command))}`);
    }
    if (error.code !== null) lines.push(`  exit code: ${error.code}`);
    if (error.stderrTail.trim() !== "") {
      lines.push("  output (last lines):", indent(escapeLines(error.stderrTail.trimEnd()), "    "));
    }
  }
  let cause = error instanceof Error ? error.cause : undefined;
  const seen = new Set<unknown>();
  let said = message;
  while (cause !== undefined && cause !== null && !seen.has(cause)) {
    seen.add(cause);
    const text = escapeLines(cause instanceof Error ? cause.message : String(cause));
    // A wrapper often repeats its cause's message; say it once.
    if (!said.includes(text)) lines.push(`  ${out.dim("caused by:")} ${text}`);
    said += `\n${text}`;
    if (cause instanceof CommandError && cause.stderrTail.trim() !== "") {
      lines.push(indent(escapeLines(cause.stderrTail.trimEnd()), "    "));
    }
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  if (error instanceof DtkError && error.hint) {
    lines.push(`${out.cyan("hint")}: ${escapeLines(error.hint)}`);
  }
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
