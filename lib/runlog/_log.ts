/**
 * The log of one run of a command that changes a cluster:
 * `generated/<cluster>/logs/<timestamp>-<command>.log`. Every step's start, end, duration and
 * result; every command dtk ran (argv, exit code, duration, the tail of stderr), with the step it
 * ran for; secrets redacted. The file is rewritten atomically as the run goes, so a crash leaves
 * the last complete picture.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { join } from "node:path";
import { CommandError, DtkError, escapeText, formatDuration, tail } from "../errors/mod.ts";
import { formatCommand, type Runner, type RunOptions, type RunResult } from "../exec/mod.ts";
import { writeFileAtomic } from "../fs/mod.ts";
import { keyBlockOpenAfter, Redactor } from "./_redact.ts";

export type StepResult = "done" | "skipped" | "failed";

/** One step as the log saw it. */
export interface LoggedStep {
  id: string;
  phase: string;
  needs: readonly string[];
  node?: string;
  /** ms since the run started. */
  startMs: number;
  endMs?: number;
  result?: StepResult;
  error?: string;
}

/** One command as the log saw it. */
export interface LoggedCommand {
  argv: string[];
  /** The step it ran for, when a step was running. */
  step?: string;
  code: number | null;
  elapsedMs: number;
  stderrTail: string;
  error?: string;
}

export interface RunLogOptions {
  /** The command, e.g. `create`, `up`, `install-addon`: names the file. */
  command: string;
  /** The dtk command line, for the log's header. */
  argv?: readonly string[];
  redactor?: Redactor;
  /**
   * The cluster's folder: its secrets are looked up again before each write, so that a secret
   * made during the run (a create's first PKI) is redacted too.
   */
  secretsDir?: string;
  now?: () => Date;
}

/** `20261203T105129Z`: sortable, no characters a file system or shell minds. */
export function logTimestamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

const STDERR_LINES = 15;

export class RunLog {
  readonly path: string;
  readonly #redactor: Redactor;
  /** Each logged entry as it came: its stamped lines, each ending in a newline. */
  readonly #entries: string[] = [];
  /**
   * The redacted text of the first entries, each entry redacted once: only a new secret (the
   * redactor then knows more of them than `#redactedWith`) makes them be redacted again.
   */
  #redacted = "";
  #settled = 0;
  #redactedWith = -1;
  readonly #steps = new Map<string, LoggedStep>();
  readonly #commands: LoggedCommand[] = [];
  readonly #context = new AsyncLocalStorage<string>();
  readonly #started = performance.now();
  readonly #now: () => Date;
  readonly #secretsDir: string | undefined;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(path: string, options: RunLogOptions) {
    this.path = path;
    this.#redactor = options.redactor ?? new Redactor();
    this.#now = options.now ?? (() => new Date());
    this.#secretsDir = options.secretsDir;
    this.#line(
      `dtk ${options.command}` + (options.argv ? `: dtk ${formatCommand(options.argv)}` : ""),
    );
  }

  /** Starts the log of a run in `logsDir` (created). */
  static async open(logsDir: string, options: RunLogOptions): Promise<RunLog> {
    await Deno.mkdir(logsDir, { recursive: true });
    const now = options.now?.() ?? new Date();
    const base = `${logTimestamp(now)}-${options.command}`;
    let path = join(logsDir, `${base}.log`);
    // Two runs in the same second keep both logs.
    for (let i = 2; await Deno.lstat(path).then(() => true, () => false); i++) {
      path = join(logsDir, `${base}-${i}.log`);
    }
    const log = new RunLog(path, options);
    await log.flush();
    return log;
  }

  get steps(): LoggedStep[] {
    return [...this.#steps.values()];
  }

  get commands(): readonly LoggedCommand[] {
    return this.#commands;
  }

  #elapsed(): number {
    return performance.now() - this.#started;
  }

  #line(text: string): void {
    const stamp = this.#now().toISOString();
    // Kept as they are and redacted at the write, with every secret known by then.
    this.#entries.push(text.split("\n").map((line) => `${stamp} ${line}\n`).join(""));
  }

  /** Runs `work` as step `id`: the commands it starts are logged under the step. */
  inStep<T>(id: string, work: () => Promise<T>): Promise<T> {
    return this.#context.run(id, work);
  }

  stepStart(
    step: { id: string; phase: string; needs: readonly string[]; node?: string; title?: string },
  ): void {
    this.#steps.set(step.id, {
      id: step.id,
      phase: step.phase,
      needs: step.needs,
      node: step.node,
      startMs: this.#elapsed(),
    });
    const where = step.node ? ` (${step.node})` : "";
    this.#line(
      escapeText(`step start ${step.id}${where}${step.title ? `: ${step.title}` : ""}`),
    );
  }

  stepEnd(id: string, result: StepResult, error?: unknown): void {
    const step = this.#steps.get(id) ??
      { id, phase: "", needs: [], startMs: this.#elapsed() };
    step.endMs = this.#elapsed();
    step.result = result;
    const took = formatDuration(step.endMs - step.startMs);
    if (error !== undefined) step.error = errorText(error);
    this.#steps.set(id, step);
    if (result === "failed") {
      this.#line(`step FAILED ${id} after ${took}: ${step.error ?? ""}`);
      const last = this.#commands.findLast((c) => c.step === id && (c.code !== 0 || c.error));
      if (last) {
        this.#line(`  failed command: ${escapeText(formatCommand(last.argv))} (${exitText(last)})`);
      }
    } else if (result === "skipped") {
      this.#line(`step skip  ${id}: unchanged`);
    } else {
      this.#line(`step done  ${id} in ${took}`);
    }
    void this.flush();
  }

  /** A command that ran (the `LoggingRunner` calls this). */
  command(record: Omit<LoggedCommand, "step">): void {
    const step = this.#context.getStore();
    const entry: LoggedCommand = {
      ...record,
      argv: record.argv.map((a) => this.#redactor.redact(a)),
      step,
    };
    this.#commands.push(entry);
    const lines = [
      `run${step ? ` [${step}]` : ""} ${escapeText(formatCommand(entry.argv))}`,
      `  → ${exitText(entry)} in ${formatDuration(entry.elapsedMs)}`,
    ];
    const stderr = tail(record.stderrTail, STDERR_LINES).trimEnd();
    if (stderr !== "") {
      lines.push(...stderr.split("\n").map((l) => `  stderr| ${escapeText(l)}`));
    }
    this.#line(lines.join("\n"));
  }

  /** A free-form line (a phase table, a summary). */
  note(text: string): void {
    this.#line(text);
  }

  /** Ends the log with the run's result and writes it. */
  async close(error?: unknown): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const took = formatDuration(this.#elapsed());
    if (error === undefined) this.#line(`result: ok in ${took}`);
    else this.#line(`result: FAILED after ${took}: ${errorText(error)}`);
    await this.flush();
  }

  /** Writes what is logged so far (atomically, owner-only: a log may name hosts and paths). */
  flush(): Promise<void> {
    const entries = this.#entries.length;
    this.#writing = this.#writing.catch(() => {}).then(async () => {
      if (this.#secretsDir !== undefined) await this.#redactor.addClusterSecrets(this.#secretsDir);
      await writeFileAtomic(this.path, this.#redactedText(entries), { mode: 0o600 });
    });
    return this.#writing;
  }

  /**
   * The first `count` entries, redacted. Each is redacted once, not the whole log at every write,
   * which grew quadratic in a long run. A secret the redactor learns later (a create's first PKI)
   * may stand in entries redacted before it was known, so they are all redacted again then. A
   * private key block may run over several entries (its redaction runs to the block's end line,
   * or to the end of the text): those entries are redacted as one, and while the block is still
   * open they stay pending, redacted again at the next write with what has come since.
   */
  #redactedText(count: number): string {
    // The set of secrets only grows: its size says whether any was added.
    const known = this.#redactor.secrets.size;
    if (known !== this.#redactedWith) {
      this.#redacted = "";
      this.#settled = 0;
      this.#redactedWith = known;
    }
    let pending = "";
    let open = false;
    for (let i = this.#settled; i < count; i++) {
      const entry = this.#entries[i]!;
      pending += entry;
      open = keyBlockOpenAfter(entry, open);
      if (!open) {
        this.#redacted += this.#redactor.redact(pending);
        this.#settled = i + 1;
        pending = "";
      }
    }
    return this.#redacted + (pending === "" ? "" : this.#redactor.redact(pending));
  }
}

function exitText(c: LoggedCommand): string {
  if (c.code === null) return c.error ? `no exit code: ${escapeText(c.error)}` : "no exit code";
  return `exit ${c.code}`;
}

/**
 * An error on one log line: its text comes from servers, files and subprocesses, and a newline
 * in it would start a line of its own, with a timestamp, that dtk never wrote.
 */
function errorText(error: unknown): string {
  if (error instanceof DtkError) {
    const cause = error.cause instanceof Error ? `; cause: ${error.cause.message}` : "";
    return escapeText(`${error.message}${cause}`);
  }
  return escapeText(error instanceof Error ? error.message : String(error));
}

/** A `Runner` that logs every command of the one it wraps. */
export class LoggingRunner implements Runner {
  readonly #inner: Runner;
  readonly #log: RunLog;

  constructor(inner: Runner, log: RunLog) {
    this.#inner = inner;
    this.#log = log;
  }

  async run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    const started = performance.now();
    try {
      const result = await this.#inner.run(argv, options);
      this.#log.command({
        argv: [...argv],
        code: result.code,
        elapsedMs: result.elapsedMs,
        stderrTail: result.success ? tail(result.stderr, 5) : result.stderr,
      });
      return result;
    } catch (error) {
      const code = error instanceof CommandError ? error.code : null;
      this.#log.command({
        argv: [...argv],
        code,
        elapsedMs: performance.now() - started,
        stderrTail: error instanceof CommandError ? error.stderrTail : "",
        error: code === null ? (error instanceof Error ? error.message : String(error)) : undefined,
      });
      throw error;
    }
  }
}
