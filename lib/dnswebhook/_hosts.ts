/**
 * Editing a hosts file for the DNS webhook: pure text functions plus one atomic write.
 *
 * dtk writes its names only inside its own block, between marker lines like the node block of
 * `lib/render` (one block per cluster), and never changes, removes or reorders a line outside
 * it: a hostile or careless batch can at most point names of the managed domains at the
 * controller.
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

/** The first line of the webhook's block for `cluster`. */
export function hostsBlockBegin(cluster: string): string {
  return `# BEGIN dtk dns-webhook ${cluster} (managed by dtk, do not edit)`;
}

/** The last line of the webhook's block for `cluster`. */
export function hostsBlockEnd(cluster: string): string {
  return `# END dtk dns-webhook ${cluster}`;
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

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Why `domain` cannot be a managed domain, or undefined when it can. A managed domain lets the
 * cluster point every name under it at the controller, so it must be a real domain of at least
 * two labels (never `com`, `*.com` or `localhost`), letters, digits and hyphens only.
 */
export function domainProblem(domain: string): string | undefined {
  const d = normalizeName(domain);
  if (d === "") return "empty";
  if (d.length > 253) return "longer than 253 characters";
  const labels = d.split(".");
  if (labels.some((l) => !LABEL.test(l))) {
    return "not a domain name (letters, digits and hyphens in labels of at most 63)";
  }
  if (labels.length < 2) return "a top-level domain: it would take over every name under it";
  if (/^[0-9]+$/.test(labels.at(-1)!)) return "an IP address, not a domain";
  if (labels.at(-1) === "localhost") return "under localhost";
  return undefined;
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

/** The names a hosts line gives, or none for a blank or comment line. */
function lineNames(line: string): string[] {
  const content = line.replace(/#.*/, "").trim();
  if (content === "") return [];
  return content.split(/\s+/).slice(1).map(normalizeName);
}

/**
 * Points each managed name of `endpoints` at `ip` inside dtk's block of the hosts file text
 * (made at the end when there is none). Lines outside the block are kept byte for byte; a name
 * a line outside the block already gives is skipped (that line is the user's and wins).
 * Unmanaged or invalid names are skipped each on its own: the rest of the batch is still
 * applied (the original stopped at the first one and wrote nothing). Linear in the lines and
 * the endpoints: each is looked at once.
 */
export function applyEndpoints(
  text: string,
  endpoints: readonly Endpoint[],
  options: { ip: string; domains: readonly string[]; cluster: string },
): HostsEdit {
  const begin = hostsBlockBegin(options.cluster);
  const end = hostsBlockEnd(options.cluster);
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  // dtk's block: a BEGIN line and the first END line after it. A BEGIN without an END (someone
  // deleted it) is not a block: that line and everything after it stay as they are.
  let first = -1;
  let last = -1;
  for (let i = 0; i < lines.length && last < 0; i++) {
    const t = lines[i]!.trim();
    if (t === begin) first = i;
    else if (t === end && first >= 0) last = i;
  }
  if (last < 0) first = -1;
  const before = first < 0 ? lines : lines.slice(0, first);
  const after = first < 0 ? [] : lines.slice(last + 1);
  /** The block's entries in order, by name: its own lines are `ip name`. */
  const block = new Map<string, string>();
  for (const line of first < 0 ? [] : lines.slice(first + 1, last)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length === 2 && !line.trim().startsWith("#")) {
      block.set(normalizeName(fields[1]!), fields[0]!);
    }
  }
  const outside = new Set<string>();
  for (const line of [...before, ...after]) for (const name of lineNames(line)) outside.add(name);
  const changes: HostsChange[] = [];
  const seen = new Set<string>();
  for (const endpoint of endpoints) {
    const raw = typeof endpoint?.dnsName === "string" ? endpoint.dnsName : "";
    const name = normalizeName(raw);
    if (seen.has(name)) continue;
    seen.add(name);
    if (!isValidHostName(name)) {
      changes.push({ name: raw, action: "skipped", reason: "not a valid host name" });
    } else if (!isManaged(name, options.domains)) {
      changes.push({ name, action: "skipped", reason: "not in a managed domain" });
    } else if (outside.has(name)) {
      changes.push({
        name,
        action: "skipped",
        reason: "the hosts file names it outside dtk's block (left as it is)",
      });
    } else if (block.get(name) === options.ip) {
      changes.push({ name, action: "unchanged" });
    } else {
      changes.push({ name, action: block.has(name) ? "updated" : "added" });
      block.set(name, options.ip);
    }
  }
  const out = [...before];
  if (block.size > 0 || first >= 0) {
    out.push(begin, ...[...block].map(([name, ip]) => `${ip} ${name}`), end);
  }
  out.push(...after);
  return { text: out.length === 0 ? "" : `${out.join("\n")}\n`, changes };
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
