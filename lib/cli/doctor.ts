/** `dtk doctor` (alias `dtk check-tools`, the original's name): the host's prerequisites. */
import type { Command } from "commander";
import type { Check, RegistryDoctorInput } from "../doctor/mod.ts";
import type { Config } from "../config/types.ts";
import { lockPath } from "../paths/mod.ts";
import { driverFor } from "./cluster.ts";
import type { Output } from "../ui/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";

export interface DoctorCommandOptions {
  /** Host root for `/proc`, `/sys`, `/dev`, `/etc/group`; tests point it at a fake tree. */
  root?: string;
  /** Per host command; default 15 s. */
  timeoutMs?: number;
  /** Where the registry would serve (tests); default: the driver's host endpoint. */
  registry?: RegistryDoctorInput;
}

/** Where `cluster create` would serve the lock's images, as the driver says. */
export async function registryInput(config: Config, ctx: CliContext): Promise<RegistryDoctorInput> {
  const { DEFAULT_REGISTRY_PORT, lockedImages } = await import("../registry/mod.ts");
  const { readLock } = await import("../../store/mod.ts");
  const lock = await readLock(lockPath(config)).catch(() => undefined);
  const needed = lock !== undefined && lockedImages(lock).length > 0;
  try {
    const driver = await driverFor(config, ctx);
    const endpoint = await driver.hostEndpoint?.();
    return { endpoint, port: DEFAULT_REGISTRY_PORT, needed };
  } catch (error) {
    return {
      endpoint: undefined,
      port: DEFAULT_REGISTRY_PORT,
      needed,
      error: `The driver could not say where the nodes reach this host: ${
        (error as Error).message
      }`,
    };
  }
}

export function registerDoctorCommands(
  program: Command,
  ctx: CliContext,
  options: DoctorCommandOptions = {},
): void {
  program
    .command("doctor")
    .alias("check-tools")
    .description("Check this host's prerequisites for the configured driver, with fixes")
    .addHelpText(
      "after",
      `
Checks ssh/scp, the driver's tools (virsh, virt-install, virt-clone, qemu-img or VBoxManage),
usable hardware virtualisation and /dev/kvm, the libvirt group and network, KVM holding VT-x
while VirtualBox is used, helm (when add-ons are enabled), kubectl, free disk and memory, and
that dtk's registry port (5380) is free on the host address the VMs reach and not refused by
firewalld (blocking only when dtk.lock has images).
Exit code 3 when a problem would stop "dtk cluster create", else 0 (warnings included).`,
    )
    .action(async function (this: Command) {
      const globals = this.optsWithGlobals() as GlobalOptions;
      const config = await ctx.loadConfig(globals);
      const { blockingFailures, preflightError, runDoctor } = await import("../doctor/mod.ts");
      const checks = await runDoctor(config, {
        runner: ctx.runner,
        env: ctx.env,
        registry: options.registry ?? await registryInput(config, ctx),
        ...(options.root === undefined ? {} : { root: options.root }),
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      });
      const failures = blockingFailures(checks);
      if (globals.json) {
        const warnings = checks.filter((c) => c.status === "warn").length;
        ctx.out.data(JSON.stringify(
          {
            virt: config.virt,
            ok: failures.length === 0,
            failures: failures.length,
            warnings,
            checks,
          },
          null,
          2,
        ));
      } else {
        ctx.out.data(renderChecks(checks, ctx.out));
      }
      if (failures.length > 0) throw preflightError(failures);
    });
}

/**
 * The report: one row per check (check, status, found, required), and under each problem why
 * it matters and the command that fixes it. Colour only for the status word, added after the
 * padding so the columns stay aligned.
 */
export function renderChecks(checks: readonly Check[], out: Output): string {
  const header = ["CHECK", "STATUS", "FOUND", "REQUIRED"];
  const rows = checks.map((c) => [c.title, c.status, c.found, c.required]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const paint = (status: string, text: string) =>
    status === "ok" ? out.green(text) : status === "warn" ? out.yellow(text) : out.red(text);
  const line = (cells: readonly string[], color: boolean) =>
    cells.map((cell, i) => {
      const padded = i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0);
      return color && i === 1 ? paint(cell, padded) : padded;
    }).join("  ").trimEnd();
  const lines = [out.bold(line(header, false))];
  checks.forEach((check, i) => {
    lines.push(line(rows[i] ?? [], true));
    if (check.status === "ok") return;
    if (check.detail) lines.push(`    ${out.dim(check.detail)}`);
    const fix = (check.fix ?? "").split("\n").filter((l) => l !== "");
    fix.forEach((l, n) => lines.push(`    ${n === 0 ? "fix: " : "     "}${l}`));
  });
  const failures = checks.filter((c) => c.status === "fail").length;
  const warnings = checks.filter((c) => c.status === "warn").length;
  const ok = checks.length - failures - warnings;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  lines.push(
    "",
    `${ok} ok, ${plural(warnings, "warning")}, ${plural(failures, "blocking problem")}${
      failures > 0 ? ' (these stop "dtk cluster create")' : ""
    }`,
  );
  return lines.join("\n") + "\n";
}
