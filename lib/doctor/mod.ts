/**
 * `dtk doctor`: every host prerequisite of the configured driver, each with what was found, what
 * is required and the exact command that fixes a problem. `preflight` is the subset that stops
 * `cluster create` before it touches anything.
 *
 * ```ts
 * const failures = await preflight(config, { runner });
 * if (failures.length > 0) throw preflightError(failures);
 * ```
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { PrerequisiteError, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import {
  type Check,
  diskChecks,
  helmCheck,
  kubectlCheck,
  kvmAccelCheck,
  kvmDeviceCheck,
  kvmToolChecks,
  kvmVsVirtualboxCheck,
  libvirtGroupCheck,
  libvirtNetworkCheck,
  memoryCheck,
  scpCheck,
  sshCheck,
  vboxCheck,
} from "./_checks.ts";
import { Host } from "./_host.ts";
import { type RegistryDoctorInput, registryPortCheck, registryReachCheck } from "./_registry.ts";

export type { Check, CheckStatus } from "./_checks.ts";
export { DEFAULT_DISK_GIB, MINIMUMS, storeNeedBytes } from "./_checks.ts";
export type { RegistryDoctorInput } from "./_registry.ts";

export interface DoctorOptions {
  /** Runs `ssh -V`, `virsh …`, `df`, `id`; every call is bounded by `timeoutMs`. */
  runner: Runner;
  /** Where `/proc`, `/sys`, `/dev`, `/etc/group` and system folders are read; default `/`. */
  root?: string;
  /** The environment: `PATH` (where tools are looked up), `HOME`, `DTK_STORE`, `XDG_*`. */
  env?: (name: string) => string | undefined;
  /** Per command; default 15 s (a hung libvirtd must not hang the doctor). */
  timeoutMs?: number;
  /** Where `cluster create` would serve the lock's images: checks its port and reach. */
  registry?: RegistryDoctorInput;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** Runs every check for `config.virt`, in a fixed order, concurrently. */
export async function runDoctor(config: Config, options: DoctorOptions): Promise<Check[]> {
  const host = new Host({
    runner: options.runner,
    root: options.root ?? "/",
    env: options.env ?? ((name) => Deno.env.get(name)),
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
  const pending: Promise<Check | Check[]>[] = [sshCheck(host), scpCheck(host)];
  if (config.virt === "kvm") {
    pending.push(...kvmToolChecks(host), kvmAccelCheck(host, config));
    if (config.kvm.accel === "kvm") pending.push(kvmDeviceCheck(host, config));
    pending.push(libvirtGroupCheck(host, config));
    if (config.kvm.network === "nat") pending.push(libvirtNetworkCheck(host, config));
  } else if (config.virt === "virtualbox") {
    pending.push(vboxCheck(host), kvmVsVirtualboxCheck(host));
  }
  if (config.addons.some((a) => a.enabled)) pending.push(helmCheck(host));
  pending.push(kubectlCheck(host, config), diskChecks(host, config));
  if (options.registry !== undefined) {
    pending.push(
      Promise.resolve(registryPortCheck(options.registry, config)),
      registryReachCheck(host, options.registry, config),
    );
  }
  // Containers of the test driver share the host's memory; only VMs reserve it.
  if (config.virt !== "test-nspawn") pending.push(memoryCheck(host, config));
  return (await Promise.all(pending)).flat().map(ordered);
}

/** The same check with its keys in one order, so `--json` output is stable. */
function ordered(check: Check): Check {
  const { id, title, status, found, required, blocking, fix, detail, path } = check;
  return {
    id,
    title,
    status,
    found,
    required,
    blocking,
    ...(fix === undefined ? {} : { fix }),
    ...(detail === undefined ? {} : { detail }),
    ...(path === undefined ? {} : { path }),
  };
}

/** The problems that stop `cluster create`: blocking checks that failed. */
export async function preflight(config: Config, options: DoctorOptions): Promise<Check[]> {
  return blockingFailures(await runDoctor(config, options));
}

/** The checks among `checks` that block. */
export function blockingFailures(checks: readonly Check[]): Check[] {
  return checks.filter((c) => c.blocking && c.status === "fail");
}

/** The error `cluster create` (and `dtk doctor`) raises for blocking failures: exit code 3. */
export function preflightError(failures: readonly Check[]): PrerequisiteError {
  const names = failures.map((c) => q(c.title)).join(", ");
  const first = failures[0];
  const message = failures.length === 1 && first
    ? `The host lacks a prerequisite: ${q(first.title)} (${first.found})`
    : `The host lacks ${failures.length} prerequisites: ${names}`;
  const fix = first?.fix?.split("\n")[0];
  return new PrerequisiteError(message, {
    hint: failures.length === 1 && fix
      ? `Try: ${fix}`
      : "Run dtk doctor to see how to fix each, then try again",
  });
}
