/**
 * Small text builders shared by the renderers: systemd units, flag lists, YAML documents.
 *
 * @module
 */
import { stringify } from "yaml";

/** A flag list: `[name, value]`, or `[name]` for a bare switch. Order is kept. */
export type Flags = readonly (readonly [string, string] | readonly [string])[];

/** `--name=value` / `--name` strings. */
export function flagArgs(flags: Flags): string[] {
  return flags.map(([name, value]) => value === undefined ? `--${name}` : `--${name}=${value}`);
}

/** Quotes an ExecStart argument only when systemd would split or expand it. */
function unitArg(arg: string): string {
  return /^[\w@%+=:,./*-]+$/.test(arg) && !arg.includes("%") ? arg : JSON.stringify(arg);
}

export interface UnitSpec {
  description: string;
  documentation?: string;
  after?: string[];
  wants?: string[];
  requires?: string[];
  /** `[Service]` lines before ExecStart (Type=, ExecStartPre=, …). */
  pre?: string[];
  exec: readonly string[];
  /** `[Service]` lines after ExecStart. */
  post?: string[];
}

/** A systemd unit, one ExecStart argument per line. */
export function renderUnit(spec: UnitSpec): string {
  const unit = [`[Unit]`, `Description=${spec.description}`];
  if (spec.documentation) unit.push(`Documentation=${spec.documentation}`);
  if (spec.after?.length) unit.push(`After=${spec.after.join(" ")}`);
  if (spec.wants?.length) unit.push(`Wants=${spec.wants.join(" ")}`);
  if (spec.requires?.length) unit.push(`Requires=${spec.requires.join(" ")}`);
  const [program, ...args] = spec.exec.map(unitArg);
  const exec = args.length === 0
    ? `ExecStart=${program}`
    : `ExecStart=${program} \\\n${args.map((a) => `  ${a}`).join(" \\\n")}`;
  return [
    ...unit,
    "",
    "[Service]",
    ...(spec.pre ?? []),
    exec,
    ...(spec.post ?? []),
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/** One YAML document, never folding long lines (flags stay greppable). */
export function yamlDoc(value: unknown): string {
  return stringify(value, { lineWidth: 0, minContentWidth: 0 });
}

/** Octal text of a mode, e.g. `0644`. */
export function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}
