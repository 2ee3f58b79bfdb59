/**
 * Editing a hosts file for the DNS webhook: pure text functions plus one atomic write.
 *
 * @module
 */
import { writeFileAtomic } from "../fs/mod.ts";

/** An external-dns endpoint, as the webhook protocol sends it. */
export interface Endpoint {
  dnsName: string;
  targets?: string[];
  recordType?: string;
  recordTTL?: number;
  labels?: Record<string, string>;
  providerSpecific?: { name: string; value: string }[];
  setIdentifier?: string;
}

/** Normalises a DNS name: lower case, no trailing dot. */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, "");
}

/**
 * True when `name` is `domain` or a name under it. A plain suffix test (the original's) would
 * also take `evildtk.io` for `dtk.io`.
 */
export function isManaged(name: string, domains: readonly string[]): boolean {
  const n = normalizeName(name);
  return domains.some((d) => {
    const domain = normalizeName(d);
    return domain !== "" && (n === domain || n.endsWith(`.${domain}`));
  });
}

const HOST_NAME = /^[a-z0-9*_]([a-z0-9*_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** True when `name` may be written into a hosts file (no spaces, comments or newlines). */
export function isValidHostName(name: string): boolean {
  const n = normalizeName(name);
  return n.length > 0 && n.length <= 253 && HOST_NAME.test(n);
}

export interface HostsChange {
  name: string;
  action: "added" | "updated" | "unchanged" | "skipped";
  reason?: string;
}

export interface HostsEdit {
  text: string;
  changes: HostsChange[];
}

function lineNames(line: string): { ip: string; names: string[] } | undefined {
  const content = line.replace(/#.*/, "").trim();
  if (content === "") return undefined;
  const [ip, ...names] = content.split(/\s+/);
  if (ip === undefined || names.length === 0) return undefined;
  return { ip, names: names.map(normalizeName) };
}

/**
 * Points each managed name of `endpoints` at `ip` in the hosts file text: a line `ip name`
 * whose only name is that name is updated in place, otherwise a line is appended. Unmanaged
 * names are skipped, each on its own: the rest of the batch is still applied (the original
 * stopped at the first one and wrote nothing). Lines naming several hosts are left alone.
 */
export function applyEndpoints(
  text: string,
  endpoints: readonly Endpoint[],
  options: { ip: string; domains: readonly string[] },
): HostsEdit {
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  const changes: HostsChange[] = [];
  const seen = new Set<string>();
  for (const endpoint of endpoints) {
    const raw = typeof endpoint?.dnsName === "string" ? endpoint.dnsName : "";
    const name = normalizeName(raw);
    if (seen.has(name)) continue;
    seen.add(name);
    if (!isValidHostName(name)) {
      changes.push({ name: raw, action: "skipped", reason: "not a valid host name" });
      continue;
    }
    if (!isManaged(name, options.domains)) {
      changes.push({ name, action: "skipped", reason: "not in a managed domain" });
      continue;
    }
    let found = false;
    for (let i = 0; i < lines.length; i++) {
      const parsed = lineNames(lines[i]!);
      if (parsed === undefined || parsed.names.length !== 1 || parsed.names[0] !== name) continue;
      found = true;
      if (parsed.ip === options.ip) {
        changes.push({ name, action: "unchanged" });
      } else {
        lines[i] = `${options.ip} ${name}`;
        changes.push({ name, action: "updated" });
      }
      break;
    }
    if (!found) {
      lines.push(`${options.ip} ${name}`);
      changes.push({ name, action: "added" });
    }
  }
  return { text: lines.length === 0 ? "" : `${lines.join("\n")}\n`, changes };
}

/**
 * Replaces the hosts file atomically, keeping its mode. A bind-mounted file (containers) cannot
 * be renamed over; then it is rewritten in place.
 */
export async function writeHostsFile(path: string, text: string): Promise<void> {
  let mode = 0o644;
  try {
    mode = (await Deno.stat(path)).mode! & 0o7777;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  try {
    await writeFileAtomic(path, text, { mode, mkdir: false });
  } catch (error) {
    if (error instanceof Deno.errors.Busy || (error as { code?: string }).code === "EBUSY") {
      await Deno.writeTextFile(path, text);
      return;
    }
    throw error;
  }
}
