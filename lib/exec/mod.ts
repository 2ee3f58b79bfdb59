/**
 * The `Runner` port: every local subprocess dtk starts goes through it, so that tests can
 * substitute a recording fake. `LocalRunner` is the real one, on `Deno.Command`.
 *
 * @module
 */
import { CommandError, formatDuration, q, tail } from "../errors/mod.ts";

export interface RunOptions {
  cwd?: string;
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  /** Bytes or text fed to the process's stdin; stdin is closed otherwise. */
  stdin?: string | Uint8Array;
  /** Kill the process (SIGTERM, then SIGKILL) when it runs longer than this. */
  timeoutMs?: number;
  /** Throw `CommandError` on a non-zero exit. Default true. */
  check?: boolean;
  /** Shown in errors instead of the bare command, e.g. `start VM "vm1"`. */
  what?: string;
  /** Do not put stdout into the error (it may hold a secret). */
  secretOutput?: boolean;
  signal?: AbortSignal;
}

export interface RunResult {
  code: number;
  success: boolean;
  stdout: string;
  stderr: string;
  /** Wall time in milliseconds. */
  elapsedMs: number;
}

/** Runs local commands. The only way dtk code starts a local process. */
export interface Runner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/**
 * Quotes one word for a POSIX shell: as it is when it holds only characters no shell treats
 * specially, else in single quotes. The one quoting helper for every command dtk prints for the
 * user to paste and for every script it builds.
 */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Renders an argument vector as a line a POSIX shell runs as that vector, for messages. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

const decoder = new TextDecoder();

/** The real runner, on `Deno.Command`. */
export class LocalRunner implements Runner {
  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const [program, ...args] = argv;
    if (program === undefined) throw new TypeError("Cannot run an empty command");
    const started = performance.now();
    const what = options.what ?? formatCommand(argv);
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(program, {
        args,
        cwd: options.cwd,
        env: options.env,
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      const missing = error instanceof Deno.errors.NotFound;
      throw new CommandError(
        missing ? `Command not found: ${q(program)}` : `Cannot start ${q(program)}: ${error}`,
        {
          command: argv,
          code: null,
          stderrTail: "",
          cause: error,
          hint: missing ? "Install it, or check it with: dtk doctor" : undefined,
        },
      );
    }
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      const bytes = typeof options.stdin === "string"
        ? new TextEncoder().encode(options.stdin)
        : options.stdin;
      // A process that exits without reading stdin closes the pipe; that is not our error.
      await writer.write(bytes).catch(() => {});
      await writer.close().catch(() => {});
    }
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const kill = () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      killTimer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 2000);
    };
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, options.timeoutMs);
    }
    const onAbort = () => kill();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    let output: Deno.CommandOutput;
    try {
      output = await child.output();
    } finally {
      clearTimeout(timer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener("abort", onAbort);
    }
    const result: RunResult = {
      code: output.code,
      success: output.success && !timedOut,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
      elapsedMs: performance.now() - started,
    };
    if (timedOut) {
      throw new CommandError(
        `${what} did not finish within ${formatDuration(options.timeoutMs ?? 0)}`,
        {
          command: argv,
          code: null,
          stderrTail: tail(result.stderr),
          hint: "The command hung; run it by hand to see why, or raise the timeout",
        },
      );
    }
    if (options.signal?.aborted) {
      throw new CommandError(`${what} was cancelled`, {
        command: argv,
        code: null,
        stderrTail: tail(result.stderr),
        cause: options.signal.reason,
      });
    }
    if (!result.success && options.check !== false) {
      throw commandFailed(argv, result, options);
    }
    return result;
  }
}

/** The error for a finished process that exited non-zero. */
export function commandFailed(
  argv: readonly string[],
  result: Pick<RunResult, "code" | "stdout" | "stderr">,
  options: Pick<RunOptions, "what" | "secretOutput"> & { hint?: string } = {},
): CommandError {
  const what = options.what ?? formatCommand(argv);
  const detail = result.stderr.trim() !== ""
    ? result.stderr
    : options.secretOutput
    ? ""
    : result.stdout;
  return new CommandError(`${what} failed with exit code ${result.code}`, {
    command: argv,
    code: result.code,
    stderrTail: tail(detail),
    hint: options.hint,
  });
}

/** Returns the path of an executable on `PATH` (or the `path` given), or `undefined`. */
export async function which(
  name: string,
  path = Deno.env.get("PATH") ?? "",
): Promise<string | undefined> {
  if (name.includes("/")) return await isExecutable(name) ? name : undefined;
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const candidate = `${dir}/${name}`;
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}
