/**
 * `dtk verify [cluster]`: what is on each node compared with what dtk would put there now, from
 * the lock, the config and the cluster's `generated/<cluster>/` folder alone. The expectations
 * come from the same functions `cluster create` uses (`stepsForNode`, `renderStep`,
 * `binaryCopies`, the PKI placements), so verify cannot disagree with create about what belongs
 * where. Each node costs one ssh round trip when it is clean, two when something drifted.
 *
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { DtkError, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import { exists } from "../fs/mod.ts";
import { clusterDir } from "../paths/mod.ts";
import { type PkiLayout, pkiLayout } from "../pki/mod.ts";
import {
  NODE_PATHS,
  type NodeFile,
  type RenderInput,
  type RenderNode,
  renderNodes,
  type RenderOverrides,
  renderStep,
  stepsForNode,
  updateEnvironment,
  updateHosts,
} from "../render/mod.ts";
import type { Remote } from "../remote/mod.ts";
import { StateStore } from "../pipeline/mod.ts";
import { binaryCopies, Nodes, pkiSourceFile as pkiFile } from "../cluster/mod.ts";
import type { Lockfile } from "../../store/mod.ts";
import { shortDiff } from "./_diff.ts";
import { reportedVersion, VERSIONED_BINARIES, versionMatches } from "./_versions.ts";
import { compareImages, IMAGES_PROBE_SCRIPT, parseImagesProbe } from "./_images.ts";
import { lockedImages } from "../registry/mod.ts";

x509.cryptoProvider.set(crypto);

/** `ok`; `drifted`: differs from what dtk would install; `missing`; `unchecked`: could not tell. */
export type ItemStatus = "ok" | "drifted" | "missing" | "unchecked";

/**
 * `binary`: installed from the store; `file`: rendered; `edited`: a system file dtk edits a block
 * of (`/etc/hosts`, `/etc/environment`); `cert`: a certificate; `secret`: a key, kubeconfig or
 * other secret (compared by hash only, never shown); `version`: what a binary's `--version` says;
 * `image`: a running container's image digest against the lock's pin.
 */
export type ItemKind = "binary" | "file" | "edited" | "cert" | "secret" | "version" | "image";

export interface VerifyItem {
  kind: ItemKind;
  /** Path on the node; for `version`, the binary's path. */
  item: string;
  status: ItemStatus;
  /** sha256 hex, a version, or a short description; `""` when not known. */
  expected: string;
  actual: string;
  /** Why it drifted or could not be checked. */
  detail?: string;
  /** For a drifted small text file: a short diff, expected → actual. */
  diff?: string;
}

export interface NodeReport {
  node: string;
  /** Where its sshd answers, from `state.json`. */
  address?: string;
  /** Set when the node could not be checked at all (unreachable, no address). */
  error?: string;
  items: VerifyItem[];
}

/** `clean`: exit 0; `drifted`: exit 1 (anything drifted or missing); `unchecked`: exit 2. */
export type VerifyOutcome = "clean" | "drifted" | "unchecked";

export interface ClusterReport {
  cluster: string;
  outcome: VerifyOutcome;
  counts: Record<ItemStatus, number>;
  nodes: NodeReport[];
  elapsedMs: number;
}

export interface VerifyClusterOptions {
  lock: Lockfile;
  runner: Runner;
  /** The store, used only to unpack a tarball whose members are not in the cluster's cache. */
  storeDir: string;
  /** The overrides `cluster create` rendered with (`testNspawn.renderOverrides`). */
  renderOverrides?: RenderOverrides;
  /** Default: now. */
  now?: Date;
  /** A certificate expiring sooner counts as drifted. Default 30 days. */
  expiryWarningDays?: number;
  /** Bound of each command on a node. Default 120 s. */
  timeoutMs?: number;
  /** Reaches a node another way than the cluster's ssh (tests). */
  remote?: (node: string) => Remote;
  signal?: AbortSignal;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// A certificate dated a little in the future is a clock step between host and node, not drift.
const FUTURE_TOLERANCE_MS = 10 * 60 * 1000;
/** Larger files are compared by hash only, without a diff. */
const DIFF_LIMIT = 64 * 1024;

function sha256(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}

function octal(mode: number): string {
  return mode.toString(8);
}

interface BinaryExpectation {
  dest: string;
  mode: number;
  artifact: string;
  sha256?: string;
  error?: string;
}

interface PkiExpectation {
  path: string;
  mode: number;
  kind: "cert" | "secret";
  ca: boolean;
  local: string;
  /** Content of dtk's copy, or undefined when it is missing. */
  content?: string;
}

interface Expectations {
  binaries: BinaryExpectation[];
  files: NodeFile[];
  pki: PkiExpectation[];
}

/** Facts of one node, read in one round trip. */
interface Probe {
  hashes: Map<string, { sha256: string; mode: number } | undefined>;
  contents: Map<string, string | undefined>;
  versions: Map<string, { code: number; output: string } | undefined>;
}

// openssl's sha256 uses SHA-NI and is 3-4x faster than coreutils' sha256sum on hundreds of MB of
// binaries; sha256sum remains the fallback on nodes without openssl.
const PROBE_SCRIPT = `set -u
if command -v openssl >/dev/null 2>&1; then
  h() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
else
  h() { sha256sum -- "$1" | cut -d' ' -f1; }
fi
while IFS= read -r line; do
  p=\${line#? }
  case "$line" in
    H*) if [ -f "$p" ]; then
          printf 'H\\t%s\\t%s\\t%s\\n' "$p" "$(h "$p")" "$(stat -c %a -- "$p")"
        else printf 'H\\t%s\\t-\\t-\\n' "$p"; fi ;;
    C*) if [ -f "$p" ]; then
          printf 'C\\t%s\\t%s\\n' "$p" "$(head -c ${DIFF_LIMIT + 1} -- "$p" | base64 -w0)"
        else printf 'C\\t%s\\t-\\n' "$p"; fi ;;
    V*) if [ -f "$p" ] && [ -x "$p" ]; then
          o=$(timeout 10 "$p" --version 2>&1 </dev/null); r=$?
          printf 'V\\t%s\\t%s\\t%s\\n' "$p" "$r" "$(printf '%s' "$o" | head -c 2000 | base64 -w0)"
        else printf 'V\\t%s\\t-\\t-\\n' "$p"; fi ;;
  esac
done
`;

function decodeBase64(text: string): string {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

async function probe(
  remote: Remote,
  request: { hash: string[]; content: string[]; version: string[] },
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<Probe> {
  const out: Probe = { hashes: new Map(), contents: new Map(), versions: new Map() };
  const lines = [
    ...request.hash.map((p) => `H ${p}`),
    ...request.content.map((p) => `C ${p}`),
    ...request.version.map((p) => `V ${p}`),
  ];
  if (lines.length === 0) return out;
  for (const line of lines) {
    if (line.includes("\n")) throw new DtkError(`Node path ${q(line.slice(2))} holds a newline`);
  }
  const result = await remote.exec(PROBE_SCRIPT, {
    stdin: lines.join("\n") + "\n",
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    what: `inspection of ${lines.length} item(s)`,
  });
  for (const line of result.stdout.split("\n")) {
    const [tag, path = "", a = "-", b = "-"] = line.split("\t");
    if (tag === "H") {
      out.hashes.set(
        path,
        a === "-" ? undefined : { sha256: a, mode: Number.parseInt(b, 8) },
      );
    } else if (tag === "C") {
      out.contents.set(path, a === "-" ? undefined : decodeBase64(a));
    } else if (tag === "V") {
      out.versions.set(
        path,
        a === "-" ? undefined : { code: Number(a), output: decodeBase64(b ?? "") },
      );
    }
  }
  return out;
}

/** Problems of a certificate: unreadable, not chained to the CA, expired or expiring. */
async function certProblems(
  pem: string,
  ca: x509.X509Certificate | undefined,
  options: { isCa: boolean; caPem?: string; now: Date; warnDays: number },
): Promise<string[]> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pem);
  } catch (error) {
    return [`unreadable certificate: ${(error as Error).message}`];
  }
  const problems: string[] = [];
  if (ca === undefined) {
    problems.push("the cluster CA (generated/<cluster>/pki/ca.pem) is missing or unreadable");
  } else if (options.isCa) {
    if (sha256(pem) !== sha256(options.caPem ?? "")) problems.push("not the cluster CA");
  } else {
    let signed = cert.issuer === ca.subject;
    if (signed) {
      try {
        signed = await cert.verify({ publicKey: ca.publicKey, signatureOnly: true });
      } catch {
        signed = false;
      }
    }
    if (!signed) problems.push(`not signed by the cluster CA (issuer ${cert.issuer})`);
  }
  const now = options.now.getTime();
  const left = cert.notAfter.getTime() - now;
  if (cert.notBefore.getTime() > now + FUTURE_TOLERANCE_MS) {
    problems.push(`not valid before ${cert.notBefore.toISOString()}`);
  }
  if (left <= 0) problems.push(`expired on ${cert.notAfter.toISOString()}`);
  else if (left < options.warnDays * DAY_MS) {
    problems.push(
      `expires in ${Math.floor(left / DAY_MS)} days (${cert.notAfter.toISOString()}); renew it`,
    );
  }
  return problems;
}

function isText(text: string): boolean {
  return !text.includes("\u0000") && !text.includes("\uFFFD");
}

function emptyCounts(): Record<ItemStatus, number> {
  return { ok: 0, drifted: 0, missing: 0, unchecked: 0 };
}

/** Compares every node of the config with the lock, the renderers and the cluster's PKI. */
export async function verifyCluster(
  config: Config,
  options: VerifyClusterOptions,
): Promise<ClusterReport> {
  const started = performance.now();
  const dir = clusterDir(config);
  const statePath = join(dir, "state.json");
  if (!(await exists(statePath))) {
    throw new DtkError(`Cluster ${q(config.cluster.name)} has no state file ${q(statePath)}`, {
      exitCode: 2,
      hint:
        "Create the cluster first (dtk cluster create), or run from the folder that holds its generated/ folder",
    });
  }
  const state = await StateStore.open(statePath, config.cluster.name);
  const layout = pkiLayout(config);
  const nodes = new Nodes(config, { layout, state, runner: options.runner });
  const names = nodes.names;
  const ips = nodes.ips();
  const unknown = names.filter((n) => ips[n] === undefined);
  if (unknown.length > 0) {
    throw new DtkError(
      `The state of cluster ${q(config.cluster.name)} has no address for ${
        unknown.map(q).join(", ")
      }`,
      { exitCode: 2, hint: "Run dtk cluster create (it resumes) so that every node is recorded" },
    );
  }
  const renderList = renderNodes(config, ips);
  const caPem = await Deno.readTextFile(layout.caCert).catch(() => undefined);
  let ca: x509.X509Certificate | undefined;
  try {
    if (caPem !== undefined) ca = new x509.X509Certificate(caPem);
  } catch { /* reported per certificate */ }
  const context: NodeContext = {
    config,
    options,
    layout,
    renderList,
    ca,
    caPem,
    now: options.now ?? new Date(),
    remote: options.remote ?? ((name) => nodes.remote(name)),
  };
  try {
    const reports = await Promise.all(names.map(async (name) => {
      const address = state.node(name);
      const report: NodeReport = {
        node: name,
        address: address ? `${address.ssh.host}:${address.ssh.port}` : undefined,
        items: [],
      };
      try {
        report.items = await verifyNode(name, context);
      } catch (error) {
        report.error = (error as Error).message;
      }
      return report;
    }));
    const counts = emptyCounts();
    for (const r of reports) for (const item of r.items) counts[item.status]++;
    const outcome: VerifyOutcome = counts.drifted + counts.missing > 0
      ? "drifted"
      : reports.some((r) => r.error !== undefined) || counts.unchecked > 0
      ? "unchecked"
      : "clean";
    return {
      cluster: config.cluster.name,
      outcome,
      counts,
      nodes: reports,
      elapsedMs: performance.now() - started,
    };
  } finally {
    await nodes.closeAll();
  }
}

interface NodeContext {
  config: Config;
  options: VerifyClusterOptions;
  layout: PkiLayout;
  renderList: RenderNode[];
  ca: x509.X509Certificate | undefined;
  caPem: string | undefined;
  now: Date;
  remote: (node: string) => Remote;
}

async function expectations(name: string, c: NodeContext): Promise<Expectations> {
  const input: RenderInput = {
    config: c.config,
    nodes: c.renderList,
    node: name,
    overrides: c.options.renderOverrides,
  };
  const source = {
    lock: c.options.lock,
    storeDir: c.options.storeDir,
    cacheDir: join(clusterDir(c.config), "cache", "unpacked"),
    runner: c.options.runner,
  };
  const out: Expectations = { binaries: [], files: [], pki: [] };
  const seenPki = new Set<string>();
  for (const step of stepsForNode(input)) {
    const files = renderStep(step, input);
    out.files.push(...files.files);
    for (const install of files.binaries) {
      try {
        for (const copy of await binaryCopies([install], source)) {
          out.binaries.push({
            dest: copy.dest,
            mode: copy.mode,
            artifact: copy.artifact,
            sha256: copy.sha256,
          });
        }
      } catch (error) {
        const dest = install.kind === "file" ? install.dest : `${install.destDir}/*`;
        out.binaries.push({
          dest,
          mode: install.mode,
          artifact: install.artifact,
          error: (error as Error).message,
        });
      }
    }
    for (const placement of files.pki) {
      if (seenPki.has(placement.path)) continue;
      seenPki.add(placement.path);
      const local = pkiFile(c.layout, placement.source);
      const kind = placement.source.kind === "ca-cert" || placement.source.kind === "cert"
        ? "cert"
        : "secret";
      out.pki.push({
        path: placement.path,
        mode: placement.mode,
        kind,
        ca: placement.source.kind === "ca-cert",
        local,
        content: await Deno.readTextFile(local).catch(() => undefined),
      });
    }
  }
  return out;
}

function modeDetail(expected: number, actual: number | undefined): string | undefined {
  return actual === undefined || actual === expected
    ? undefined
    : `mode is ${octal(actual)}, expected ${octal(expected)}`;
}

async function verifyNode(name: string, c: NodeContext): Promise<VerifyItem[]> {
  const want = await expectations(name, c);
  const remote = c.remote(name);
  const timeoutMs = c.options.timeoutMs ?? 120_000;
  const signal = c.options.signal;
  const checkable = want.binaries.filter((b) => b.sha256 !== undefined);
  const versioned = checkable.filter((b) =>
    VERSIONED_BINARIES.includes(b.dest.slice(b.dest.lastIndexOf("/") + 1))
  );
  const first = await probe(remote, {
    hash: [
      ...checkable.map((b) => b.dest),
      ...want.files.map((f) => f.path),
      ...want.pki.map((p) => p.path),
    ],
    content: [NODE_PATHS.hosts, NODE_PATHS.environment],
    version: versioned.map((b) => b.dest),
  }, { timeoutMs, signal });

  // Second round trip only for what drifted: rendered files for a diff, certificates to inspect.
  const driftedFiles = want.files.filter((f) => {
    const got = first.hashes.get(f.path);
    return got !== undefined && got.sha256 !== sha256(f.content) &&
      f.content.length <= DIFF_LIMIT;
  });
  const driftedCerts = want.pki.filter((p) => {
    const got = first.hashes.get(p.path);
    return p.kind === "cert" && got !== undefined &&
      (p.content === undefined || got.sha256 !== sha256(p.content));
  });
  const second = driftedFiles.length + driftedCerts.length > 0
    ? await probe(remote, {
      hash: [],
      content: [...driftedFiles.map((f) => f.path), ...driftedCerts.map((p) => p.path)],
      version: [],
    }, { timeoutMs, signal })
    : undefined;

  const items: VerifyItem[] = [];
  for (const b of want.binaries) {
    if (b.sha256 === undefined) {
      items.push({
        kind: "binary",
        item: b.dest,
        status: "unchecked",
        expected: "",
        actual: "",
        detail: `cannot tell what artifact ${q(b.artifact)} holds: ${b.error}`,
      });
      continue;
    }
    const got = first.hashes.get(b.dest);
    items.push(compareHash("binary", b.dest, b.sha256, b.mode, got, {
      what: `artifact ${q(b.artifact)} of the lock`,
    }));
  }
  for (const f of want.files) {
    const expected = sha256(f.content);
    const got = first.hashes.get(f.path);
    const item = compareHash("file", f.path, expected, f.mode, got, {
      what: "what dtk renders from the config now",
    });
    const content = second?.contents.get(f.path);
    if (item.status === "drifted" && content !== undefined && content.length <= DIFF_LIMIT) {
      if (isText(content)) item.diff = shortDiff(f.content, content);
    }
    items.push(item);
  }
  for (const p of want.pki) items.push(await comparePki(p, first, second, c));
  for (
    const [path, edit] of [
      [NODE_PATHS.hosts, (t: string) => updateHosts(t, c.renderList)],
      [NODE_PATHS.environment, (t: string) => updateEnvironment(t)],
    ] as const
  ) {
    const content = first.contents.get(path);
    if (content === undefined) {
      items.push({
        kind: "edited",
        item: path,
        status: "missing",
        expected: "dtk's entries",
        actual: "",
      });
      continue;
    }
    const fixed = edit(content);
    items.push(
      fixed === content
        ? { kind: "edited", item: path, status: "ok", expected: "dtk's entries", actual: "present" }
        : {
          kind: "edited",
          item: path,
          status: "drifted",
          expected: "dtk's entries",
          actual: "differ",
          detail: "the entries dtk maintains differ from what it would write now",
          diff: shortDiff(fixed, content),
        },
    );
  }
  for (const b of versioned) {
    const got = first.hashes.get(b.dest);
    if (got === undefined) continue; // already reported as a missing binary
    const expected = c.options.lock.artifacts[b.artifact]?.version ?? "";
    const ran = first.versions.get(b.dest);
    const reported = ran ? reportedVersion(ran.output) : undefined;
    const base = { kind: "version" as const, item: b.dest, expected };
    if (ran === undefined || ran.code !== 0 || reported === undefined) {
      const line = ran?.output.trim().split("\n")[0] ?? "";
      items.push({
        ...base,
        status: "drifted",
        actual: reported ?? "",
        detail: ran === undefined
          ? "not executable on the node"
          : `${b.dest} --version exited ${ran.code}${line ? `: ${line}` : ""}`,
      });
      continue;
    }
    const ok = expected === "" || versionMatches(expected, reported);
    items.push({
      ...base,
      status: ok ? "ok" : "drifted",
      actual: reported,
      ...(ok ? {} : {
        detail: `reports ${reported}, the lock pins ${expected} (artifact ${q(b.artifact)})`,
      }),
    });
  }
  items.push(...await imageItems(remote, c, { timeoutMs, signal }));
  return items;
}

/** Every running container's image against the lock's pins (only for a lock with images). */
async function imageItems(
  remote: Remote,
  c: NodeContext,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<VerifyItem[]> {
  const images = lockedImages(c.options.lock);
  if (images.length === 0) return [];
  const result = await remote.exec(IMAGES_PROBE_SCRIPT, {
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    what: "list of running containers",
  });
  const probe = parseImagesProbe(result.stdout);
  if (probe.error !== undefined) {
    return [{
      kind: "image",
      item: "containers",
      status: "unchecked",
      expected: "",
      actual: "",
      detail: probe.error,
    }];
  }
  return compareImages(probe.containers, images).map((f) => ({
    kind: "image" as const,
    item: f.container.label === ""
      ? `${f.container.id} (${f.container.image})`
      : `${f.container.label} (${f.container.image})`,
    status: f.ok ? "ok" as const : "drifted" as const,
    expected: f.expected,
    actual: f.container.digest,
    ...(f.detail === undefined ? {} : { detail: f.detail }),
  }));
}

function compareHash(
  kind: ItemKind,
  path: string,
  expected: string,
  mode: number,
  got: { sha256: string; mode: number } | undefined,
  options: { what: string },
): VerifyItem {
  if (got === undefined) {
    return { kind, item: path, status: "missing", expected, actual: "", detail: "not on the node" };
  }
  const problems: string[] = [];
  if (got.sha256 !== expected) problems.push(`content differs from ${options.what}`);
  const m = modeDetail(mode, got.mode);
  if (m) problems.push(m);
  return problems.length === 0
    ? { kind, item: path, status: "ok", expected, actual: got.sha256 }
    : {
      kind,
      item: path,
      status: "drifted",
      expected,
      actual: got.sha256,
      detail: problems.join("; "),
    };
}

async function comparePki(
  p: PkiExpectation,
  first: Probe,
  second: Probe | undefined,
  c: NodeContext,
): Promise<VerifyItem> {
  const got = first.hashes.get(p.path);
  const expected = p.content === undefined ? "" : sha256(p.content);
  if (p.content === undefined) {
    return {
      kind: p.kind,
      item: p.path,
      status: "unchecked",
      expected,
      actual: got?.sha256 ?? "",
      detail: `dtk's copy ${q(p.local)} is missing`,
    };
  }
  if (got === undefined) {
    return {
      kind: p.kind,
      item: p.path,
      status: "missing",
      expected,
      actual: "",
      detail: "not on the node",
    };
  }
  const problems: string[] = [];
  if (got.sha256 !== expected) problems.push(`differs from dtk's copy ${q(p.local)}`);
  const m = modeDetail(p.mode, got.mode);
  if (m) problems.push(m);
  if (p.kind === "cert") {
    const pem = got.sha256 === expected ? p.content : second?.contents.get(p.path);
    if (pem === undefined) problems.push("cannot read it back from the node");
    else {
      problems.push(
        ...await certProblems(pem, c.ca, {
          isCa: p.ca,
          caPem: c.caPem,
          now: c.now,
          warnDays: c.options.expiryWarningDays ?? 30,
        }),
      );
    }
  }
  return {
    kind: p.kind,
    item: p.path,
    status: problems.length === 0 ? "ok" : "drifted",
    expected,
    actual: got.sha256,
    ...(problems.length === 0 ? {} : { detail: problems.join("; ") }),
  };
}
