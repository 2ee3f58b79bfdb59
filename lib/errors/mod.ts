/**
 * One error hierarchy for all of dtk. Every error carries the exit code the process ends with,
 * a Deno-style message (sentence case, values quoted, no trailing period), an optional hint of
 * what to do, and its cause. `main.ts` renders them once; nothing else prints errors.
 *
 * @module
 */

/** Exit codes of the `dtk` process, documented in the README. */
export const ExitCode = {
  ok: 0,
  /** An operation failed (a subprocess, a node, a download). */
  failure: 1,
  /** The command line or the config is invalid; nothing was changed. */
  usage: 2,
  /** The host lacks a prerequisite (a tool, KVM, memory, disk); nothing was changed. */
  prerequisite: 3,
  /** Bytes did not match the hash the lock pins. */
  integrity: 4,
  /** A bounded wait expired. */
  timeout: 5,
  /** Interrupted by the user (Ctrl-C); the next run resumes. */
  interrupted: 130,
} as const;

export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

export interface DtkErrorOptions {
  /** What the user can do about it, e.g. "Try: dtk doctor". */
  hint?: string;
  cause?: unknown;
  exitCode?: ExitCodeValue;
}

/** The base of every error dtk raises on purpose. */
export class DtkError extends Error {
  readonly exitCode: ExitCodeValue;
  readonly hint: string | undefined;

  constructor(message: string, options: DtkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.hint = options.hint;
  }
}

/** A bad command line: unknown option, missing argument, wrong value. */
export class UsageError extends DtkError {
  constructor(message: string, options: Omit<DtkErrorOptions, "exitCode"> = {}) {
    super(message, { ...options, exitCode: ExitCode.usage });
  }
}

/** One problem found in a config file, located at `file:line:column`. */
export interface ConfigIssue {
  /** The config file, or `<built-in>` for the embedded default. */
  file: string;
  line: number;
  column: number;
  /** Dotted key path, e.g. `vms[1].pod-cidr`. */
  path: string;
  message: string;
  hint?: string;
}

/** An invalid config. Holds every problem found, not only the first. */
export class ConfigError extends DtkError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options: Omit<DtkErrorOptions, "exitCode"> = {}) {
    const first = issues[0];
    const message = issues.length === 1 && first
      ? `Invalid config: ${first.message}`
      : `Invalid config: ${issues.length} problems found`;
    super(message, {
      hint: options.hint ?? "Fix the config, then check it with: dtk config check",
      cause: options.cause,
      exitCode: ExitCode.usage,
    });
    this.issues = issues;
  }

  /**
   * One problem with a config value found after parsing (a version, a catalogue lookup): it has
   * a key path but no line in the file.
   */
  static forKey(
    path: string,
    message: string,
    options: { hint?: string; file?: string } = {},
  ): ConfigError {
    return new ConfigError([{
      file: options.file ?? "<config>",
      line: 0,
      column: 0,
      path,
      message,
      ...(options.hint === undefined ? {} : { hint: options.hint }),
    }]);
  }
}

/** The host lacks something dtk needs; raised before anything is touched. */
export class PrerequisiteError extends DtkError {
  constructor(message: string, options: Omit<DtkErrorOptions, "exitCode"> = {}) {
    super(message, { ...options, exitCode: ExitCode.prerequisite });
  }
}

/** Bytes that do not match the expected hash or size. */
export class IntegrityError extends DtkError {
  constructor(message: string, options: Omit<DtkErrorOptions, "exitCode"> = {}) {
    super(message, { ...options, exitCode: ExitCode.integrity });
  }
}

/** A bounded wait that expired. The message names what was awaited. */
export class TimeoutError extends DtkError {
  /** What was awaited, e.g. `IP address of VM "vm1"`. */
  readonly awaited: string;
  readonly timeoutMs: number;

  constructor(awaited: string, options: Omit<DtkErrorOptions, "exitCode"> & { timeoutMs: number }) {
    super(`Timed out after ${formatDuration(options.timeoutMs)} waiting for ${awaited}`, {
      hint: options.hint,
      cause: options.cause,
      exitCode: ExitCode.timeout,
    });
    this.awaited = awaited;
    this.timeoutMs = options.timeoutMs;
  }
}

/** The user pressed Ctrl-C, or dtk was sent SIGTERM. */
export class InterruptedError extends DtkError {
  constructor(message = "Interrupted", options: Omit<DtkErrorOptions, "exitCode"> = {}) {
    super(message, {
      hint: options.hint ?? "Run the same command again to resume",
      cause: options.cause,
      exitCode: ExitCode.interrupted,
    });
  }
}

/** A subprocess that exited non-zero (or could not start). */
export class CommandError extends DtkError {
  readonly command: readonly string[];
  /** Exit code, or `null` when the process was killed or never started. */
  readonly code: number | null;
  /** The last lines of the process's stderr (or stdout when stderr was empty). */
  readonly stderrTail: string;

  constructor(
    message: string,
    options: Omit<DtkErrorOptions, "exitCode"> & {
      command: readonly string[];
      code: number | null;
      stderrTail: string;
    },
  ) {
    super(message, { hint: options.hint, cause: options.cause, exitCode: ExitCode.failure });
    this.command = options.command;
    this.code = options.code;
    this.stderrTail = options.stderrTail;
  }
}

/**
 * Renders a number of milliseconds as `250ms`, `1.5s`, `2m 3s` or `1h 2m`. The value is rounded
 * to what is shown first, so 59.96 s is `1m 0s`, never `60.0s`, and 119.6 s never `1m 60s`.
 */
export function formatDuration(ms: number): string {
  if (Math.round(ms) < 1000) return `${Math.round(ms)}ms`;
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return `${tenths % 10 === 0 ? tenths / 10 : (tenths / 10).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  const minutes = Math.round(ms / 60_000);
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

/**
 * Characters that must never reach a terminal or a log as themselves: C0 and C1 controls, DEL,
 * line and paragraph separators, and the bidi overrides, embeddings and isolates that make text
 * read differently from what it is ("Trojan Source").
 */
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(c: string): string {
  switch (c) {
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
  }
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * User-supplied text made safe to print or log: control and bidi characters escaped
 * (`\n`, `\u202e`), everything else as it is. `q()` is this plus quotes.
 */
export function escapeText(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/**
 * Text of several lines (a message, a hint, a command's output) made safe to print: every line
 * as `escapeText` makes it, the line breaks and tabs kept.
 */
export function escapeLines(text: string): string {
  return text.split("\n").map((line) => line.split("\t").map(escapeText).join("\t")).join("\n");
}

/** Quotes a value the way Deno's messages do: `"value"`, control and bidi characters escaped. */
export function q(value: unknown): string {
  return escapeText(JSON.stringify(String(value)));
}

/** The last `lines` non-empty lines of a text, for error messages. */
export function tail(text: string, lines = 20): string {
  const all = text.trimEnd().split("\n");
  return all.slice(Math.max(0, all.length - lines)).join("\n");
}
