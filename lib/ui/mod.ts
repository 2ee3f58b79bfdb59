/**
 * Terminal output: plain lines when not on a TTY, colour only when allowed (`NO_COLOR`,
 * `--no-color`), nothing but errors under `--quiet`. Data goes to stdout, messages to stderr.
 *
 * @module
 */
import { escapeLines } from "../errors/mod.ts";

export interface OutputOptions {
  color: boolean;
  quiet: boolean;
  verbose: boolean;
  /** Whether stderr is a terminal (progress bars only then). */
  tty: boolean;
  /** Where data goes; default stdout. */
  stdout?: (text: string) => void;
  /** Where messages go; default stderr. */
  stderr?: (text: string) => void;
}

const encoder = new TextEncoder();

function writeSync(file: typeof Deno.stdout, text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

/** The one object commands print through. */
export class Output {
  readonly color: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly tty: boolean;
  #stdout: (text: string) => void;
  #stderr: (text: string) => void;

  constructor(options: OutputOptions) {
    this.color = options.color;
    this.quiet = options.quiet;
    this.verbose = options.verbose;
    this.tty = options.tty;
    this.#stdout = options.stdout ?? ((t) => writeSync(Deno.stdout, t));
    this.#stderr = options.stderr ?? ((t) => writeSync(Deno.stderr, t));
  }

  /** Output from the process's environment and flags. */
  static fromEnv(flags: { color?: boolean; quiet?: boolean; verbose?: boolean } = {}): Output {
    const noColor = Deno.env.get("NO_COLOR") !== undefined && Deno.env.get("NO_COLOR") !== "";
    const tty = Deno.stderr.isTerminal();
    return new Output({
      color: flags.color !== false && !noColor && tty,
      quiet: flags.quiet ?? false,
      verbose: flags.verbose ?? false,
      tty,
    });
  }

  /** Data for scripts (tables, YAML, JSON): always printed, to stdout. */
  data(text: string): void {
    this.#stdout(text.endsWith("\n") ? text : `${text}\n`);
  }

  // Messages carry names, URLs and output from outside (a lock, a server, a subprocess): they
  // are printed with control and bidi characters escaped, so none can recolour the terminal,
  // move the cursor or forge a line. Colour is added here, after escaping.

  /** A progress or status message, to stderr; hidden by `--quiet`. */
  info(text: string): void {
    if (!this.quiet) this.#stderr(`${escapeLines(text)}\n`);
  }

  /** A step that finished well. */
  success(text: string): void {
    if (!this.quiet) this.#stderr(`${this.green("✔")} ${escapeLines(text)}\n`);
  }

  /** Shown only with `--verbose`. */
  debug(text: string): void {
    if (this.verbose && !this.quiet) this.#stderr(`${this.dim(escapeLines(text))}\n`);
  }

  /** Something the user should know; shown even under `--quiet`. */
  warn(text: string): void {
    this.#stderr(`${this.yellow("warning")}: ${escapeLines(text)}\n`);
  }

  /** Raw text to stderr (used by the error renderer). */
  error(text: string): void {
    this.#stderr(text.endsWith("\n") ? text : `${text}\n`);
  }

  red(text: string): string {
    return this.#paint(31, text);
  }
  green(text: string): string {
    return this.#paint(32, text);
  }
  yellow(text: string): string {
    return this.#paint(33, text);
  }
  cyan(text: string): string {
    return this.#paint(36, text);
  }
  bold(text: string): string {
    return this.#paint(1, text);
  }
  dim(text: string): string {
    return this.#paint(2, text);
  }

  #paint(code: number, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }
}

/** Renders rows as aligned columns (two spaces apart), the header first. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  // A loop, not Math.max(...rows): spreading 100,000 rows overflows the call stack.
  const widths = header.map((h, i) =>
    rows.reduce((w, r) => Math.max(w, (r[i] ?? "").length), h.length)
  );
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

/**
 * Renders a byte count (or a rate's bytes per second) as `147 B` or `1.5 MiB`. The value is
 * rounded to what is shown before the unit is picked, so 1023.7 is `1.0 KiB`, never `1024 B`.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  if (!Number.isFinite(bytes)) return "? B";
  if (Math.round(bytes) < 1024) return `${Math.round(bytes)} B`;
  let value = bytes / 1024;
  let unit = 1;
  while (unit < units.length - 1 && Number(value.toFixed(1)) >= 1024) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
