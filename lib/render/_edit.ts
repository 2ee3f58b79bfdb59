/**
 * Edits of files dtk shares with the OS (`/etc/hosts`, `/etc/environment`). Pure functions from
 * the current text to the new one, so that a re-run never duplicates a line (the original
 * appends on every run).
 *
 * @module
 */
import type { RenderNode } from "./_types.ts";

export const HOSTS_BEGIN = "# BEGIN desktop-kubernetes nodes (managed by dtk, do not edit)";
export const HOSTS_END = "# END desktop-kubernetes nodes";

function lines(text: string): string[] {
  const all = text.split("\n");
  if (all.at(-1) === "") all.pop();
  return all;
}

/** Splits on any whitespace, for comparing hosts lines regardless of spacing. */
function fields(line: string): string {
  return line.trim().split(/\s+/).join(" ");
}

/**
 * The new `/etc/hosts`: one managed block (between marker lines) naming every node, at the end.
 * An earlier block is replaced, and bare `<ip> <name>` lines the original appended (the same
 * line as one in the block) are dropped. Everything else is kept as it was.
 */
export function updateHosts(
  current: string,
  nodes: readonly Pick<RenderNode, "name" | "ip">[],
): string {
  const entries = nodes.map((n) => `${n.ip} ${n.name}`);
  const managed = new Set(entries);
  const kept: string[] = [];
  const all = lines(current);
  // A block is a BEGIN and the first END after it, with no other BEGIN between. A BEGIN whose
  // END was deleted is no block: without this, every line after it would be dropped.
  const inBlock = new Array<boolean>(all.length).fill(false);
  let open = -1;
  all.forEach((line, i) => {
    if (line.trim() === HOSTS_BEGIN) open = i;
    else if (line.trim() === HOSTS_END && open >= 0) {
      inBlock.fill(true, open, i + 1);
      open = -1;
    }
  });
  all.forEach((line, i) => {
    if (inBlock[i] || managed.has(fields(line))) return;
    kept.push(line);
  });
  while (kept.length > 0 && kept.at(-1)?.trim() === "") kept.pop();
  return [...kept, HOSTS_BEGIN, ...entries, HOSTS_END, ""].join("\n");
}

/** What `/etc/environment` must say so that `ctr` and `crictl` find containerd interactively. */
export const CONTAINERD_ENVIRONMENT: Readonly<Record<string, string>> = {
  CONTAINERD_NAMESPACE: "k8s.io",
  CONTAINERD_ADDRESS: "/run/containerd/containerd.sock",
};

/**
 * The new `/etc/environment` with `vars` set: an existing assignment of a variable is replaced in
 * place (once; later duplicates are dropped), a missing one is appended.
 */
export function updateEnvironment(
  current: string,
  vars: Readonly<Record<string, string>> = CONTAINERD_ENVIRONMENT,
): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of lines(current)) {
    const match = line.match(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=/);
    const name = match?.[1];
    if (name !== undefined && Object.hasOwn(vars, name)) {
      if (seen.has(name)) continue;
      seen.add(name);
      out.push(`${name}=${vars[name]}`);
      continue;
    }
    out.push(line);
  }
  for (const [name, value] of Object.entries(vars)) {
    if (!seen.has(name)) out.push(`${name}=${value}`);
  }
  return `${out.join("\n")}\n`;
}
