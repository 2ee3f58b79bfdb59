/**
 * `ensurePki`: make what is missing, keep what fits, replace what no longer does. A second run
 * over an unchanged config writes nothing; a changed node address replaces only the files that
 * name it. Whether a file fits is read from the file itself (subject, SANs, usages, issuer,
 * dates), so no separate state file can drift from the certificates.
 *
 * @module
 */
import { basename, relative } from "node:path";
import { DtkError, q } from "../errors/mod.ts";
import { writeFileAtomic, writeSecretAtomic } from "../fs/mod.ts";
import { type PkiLayout, pkiLayout } from "./_layout.ts";
import {
  caSubject,
  certificateMatrix,
  type IdentitySpec,
  type NodeIp,
  type PkiConfig,
  validateNodes,
} from "./_matrix.ts";
import { inspectCa, leafProblem, readIfExists, type TimeOptions } from "./_inspect.ts";
import { createCa, issueLeaf, type SigningCa } from "./_x509.ts";
import { apiServerUrl, kubeconfigUserName, renderKubeconfig } from "./_kubeconfig.ts";
import {
  encryptionConfigProblem,
  newEncryptionConfig,
  newToken,
  parseAdminToken,
  renderStaticTokenFile,
} from "./_secrets.ts";
import { formatSshPublicKey, generateSshKeyPair, parseSshPrivateKey } from "./_ssh.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

export interface EnsurePkiOptions {
  /** The clock (tests). Default: now. */
  now?: Date;
  /** CA validity in days. Default 3650 (10 years). */
  caValidityDays?: number;
  /** Leaf validity in days, capped by the CA's. Default 3650. */
  leafValidityDays?: number;
  /** Replace certificates that expire within this many days. Default 30. */
  renewBeforeDays?: number;
}

/** What happened to one file. */
export interface FileAction {
  /** Relative to `generated/<cluster>/`. */
  file: string;
  action: "created" | "replaced" | "updated" | "kept" | "removed" | "mode-fixed";
  /** Why it was replaced, updated or removed. */
  reason?: string;
}

export interface EnsurePkiResult {
  layout: PkiLayout;
  /** Every file dtk manages, with what was done to it. */
  files: FileAction[];
  /** The bearer token of user `admin` (group `system:masters`) in the static token file. */
  adminToken: string;
  /** `ssh-ed25519 …` for the template's and clones' `authorized_keys`. */
  sshPublicKey: string;
  /** `https://<controller IP>:6443` */
  server: string;
}

interface Recorder {
  layout: PkiLayout;
  files: FileAction[];
}

function record(rec: Recorder, path: string, action: FileAction["action"], reason?: string) {
  const file = relative(rec.layout.root, path);
  rec.files.push(reason === undefined ? { file, action } : { file, action, reason });
}

function timeOptions(options: EnsurePkiOptions): TimeOptions & { ca: number; leaf: number } {
  const ca = options.caValidityDays ?? 3650;
  const leaf = options.leafValidityDays ?? 3650;
  if (!(ca >= 1) || !(leaf >= 1)) {
    throw new DtkError(
      `Certificate validity must be at least one day, got ${q(Math.min(ca, leaf))}`,
    );
  }
  // Renewing a third of the way before expiry at most, so that short validities do not renew on
  // every run.
  const renewDays = Math.min(options.renewBeforeDays ?? 30, Math.min(ca, leaf) / 3);
  return { now: options.now ?? new Date(), renewBeforeMs: renewDays * DAY_MS, ca, leaf };
}

async function ensureMode(rec: Recorder, path: string, mode: number): Promise<boolean> {
  const info = await Deno.stat(path);
  if (info.mode !== null && (info.mode & 0o777) !== mode) {
    await Deno.chmod(path, mode);
    record(rec, path, "mode-fixed", `was ${(info.mode & 0o777).toString(8)}`);
    return true;
  }
  return false;
}

async function ensureDirs(layout: PkiLayout): Promise<void> {
  for (const dir of [layout.pkiDir, layout.kubeconfigDir, layout.secretsDir, layout.sshDir]) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  }
}

async function ensureCa(
  rec: Recorder,
  clusterName: string,
  time: ReturnType<typeof timeOptions>,
): Promise<{ ca: SigningCa; certPem: string; renewed: boolean }> {
  const { layout } = rec;
  const inspection = await inspectCa(
    await readIfExists(layout.caCert),
    await readIfExists(layout.caKey),
    time,
  );
  if (inspection.ok) {
    if (!(await ensureMode(rec, layout.caKey, 0o600))) record(rec, layout.caKey, "kept");
    record(rec, layout.caCert, "kept");
    return { ca: inspection.ca, certPem: inspection.certPem, renewed: false };
  }
  const made = await createCa(caSubject(clusterName), { now: time.now, validityDays: time.ca });
  // Key first: a crash in between leaves a mismatched pair, which the next run replaces.
  await writeSecretAtomic(layout.caKey, made.keyPem);
  await writeFileAtomic(layout.caCert, made.certPem, { mode: 0o644 });
  const action = inspection.problem === "missing" ? "created" : "replaced";
  const reason = action === "created" ? undefined : inspection.problem;
  record(rec, layout.caKey, action, reason);
  record(rec, layout.caCert, action, reason);
  return { ca: made, certPem: made.certPem, renewed: true };
}

async function ensureLeaf(
  rec: Recorder,
  spec: IdentitySpec,
  ca: SigningCa,
  time: ReturnType<typeof timeOptions>,
): Promise<{ certPem: string; keyPem: string }> {
  const { layout } = rec;
  const certPath = layout.cert(spec.identity);
  const keyPath = layout.key(spec.identity);
  const certPem = await readIfExists(certPath);
  const keyPem = await readIfExists(keyPath);
  const problem = await leafProblem(spec, certPem, keyPem, ca.cert, time);
  if (problem === undefined && certPem !== undefined && keyPem !== undefined) {
    if (!(await ensureMode(rec, keyPath, 0o600))) record(rec, keyPath, "kept");
    record(rec, certPath, "kept");
    return { certPem, keyPem };
  }
  const issued = await issueLeaf(spec, ca, { now: time.now, validityDays: time.leaf });
  await writeSecretAtomic(keyPath, issued.keyPem);
  await writeFileAtomic(certPath, issued.certPem, { mode: 0o644 });
  const action = problem === "missing" ? "created" : "replaced";
  record(rec, keyPath, action, action === "created" ? undefined : problem);
  record(rec, certPath, action, action === "created" ? undefined : problem);
  return issued;
}

async function writeIfChanged(
  rec: Recorder,
  path: string,
  text: string,
  reason: string,
): Promise<void> {
  const current = await readIfExists(path);
  if (current === text) {
    if (!(await ensureMode(rec, path, 0o600))) record(rec, path, "kept");
    return;
  }
  await writeSecretAtomic(path, text);
  record(rec, path, current === undefined ? "created" : "updated", current ? reason : undefined);
}

/** Removes certificates, keys and kubeconfigs of identities the config no longer has. */
async function removeStale(rec: Recorder, specs: readonly IdentitySpec[]): Promise<void> {
  const { layout } = rec;
  const wanted = new Set<string>();
  for (const spec of specs) {
    wanted.add(layout.cert(spec.identity)).add(layout.key(spec.identity));
    if (spec.kubeconfig) wanted.add(layout.kubeconfig(spec.identity));
  }
  // Only names dtk itself makes for per-node or optional identities; anything else is left alone.
  const ours = (name: string) =>
    /^(kubelet-.+|kube-proxy)(-key)?\.pem$/.test(name) ||
    /^(kubelet-.+|kube-proxy)\.kubeconfig$/.test(name);
  for (const dir of [layout.pkiDir, layout.kubeconfigDir]) {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (!entry.isFile || wanted.has(path) || !ours(entry.name)) continue;
      await Deno.remove(path);
      record(rec, path, "removed", `${q(basename(path))} is not needed by the config`);
    }
  }
}

/** Makes the encryption config and static token file unless usable ones exist. */
async function ensureSecrets(rec: Recorder): Promise<{ adminToken: string }> {
  const { layout } = rec;
  const encryption = await readIfExists(layout.encryptionConfig);
  const encryptionProblem = encryption === undefined
    ? "missing"
    : encryptionConfigProblem(encryption);
  if (encryptionProblem) {
    await writeSecretAtomic(layout.encryptionConfig, newEncryptionConfig());
    const created = encryptionProblem === "missing";
    record(
      rec,
      layout.encryptionConfig,
      created ? "created" : "replaced",
      created ? undefined : encryptionProblem,
    );
  } else if (!(await ensureMode(rec, layout.encryptionConfig, 0o600))) {
    record(rec, layout.encryptionConfig, "kept");
  }
  const tokenFile = await readIfExists(layout.staticToken);
  const existing = tokenFile === undefined ? undefined : parseAdminToken(tokenFile);
  if (existing !== undefined) {
    if (!(await ensureMode(rec, layout.staticToken, 0o600))) {
      record(rec, layout.staticToken, "kept");
    }
    return { adminToken: existing };
  }
  const adminToken = newToken();
  await writeSecretAtomic(layout.staticToken, renderStaticTokenFile(adminToken));
  record(
    rec,
    layout.staticToken,
    tokenFile === undefined ? "created" : "replaced",
    tokenFile === undefined ? undefined : "not a token file dtk wrote",
  );
  return { adminToken };
}

/**
 * Makes the cluster's SSH key pair unless one exists. An existing private key is never replaced
 * (the template trusts it); an unreadable one is an error for the user to resolve.
 */
async function ensureSshKeyAt(
  rec: Recorder,
  comment: string,
): Promise<{ publicKey: string }> {
  const { layout } = rec;
  const privateText = await readIfExists(layout.sshPrivateKey);
  if (privateText === undefined) {
    const pair = await generateSshKeyPair(comment);
    await writeSecretAtomic(layout.sshPrivateKey, pair.privateKey);
    await writeFileAtomic(layout.sshPublicKey, `${pair.publicKey}\n`, { mode: 0o644 });
    record(rec, layout.sshPrivateKey, "created");
    record(rec, layout.sshPublicKey, "created");
    return { publicKey: pair.publicKey };
  }
  let parsed;
  try {
    parsed = await parseSshPrivateKey(privateText);
  } catch (error) {
    throw new DtkError(
      `SSH key ${q(layout.sshPrivateKey)} is unusable: ${(error as Error).message}`,
      {
        hint:
          "VMs made from this cluster's template trust that key; restore it, or delete it and " +
          "the cluster's VMs to start over",
      },
    );
  }
  if (!(await ensureMode(rec, layout.sshPrivateKey, 0o600))) {
    record(rec, layout.sshPrivateKey, "kept");
  }
  const publicKey = formatSshPublicKey(parsed.publicKey, parsed.comment);
  const publicText = await readIfExists(layout.sshPublicKey);
  if (publicText?.trim() === publicKey) {
    record(rec, layout.sshPublicKey, "kept");
  } else {
    await writeFileAtomic(layout.sshPublicKey, `${publicKey}\n`, { mode: 0o644 });
    record(
      rec,
      layout.sshPublicKey,
      publicText === undefined ? "created" : "updated",
      publicText === undefined ? undefined : "did not match the private key",
    );
  }
  return { publicKey };
}

/** The SSH key pair of a cluster (made if missing); needed before any VM exists. */
export async function ensureSshKey(
  config: Pick<PkiConfig, "cluster" | "source">,
): Promise<
  { privateKeyPath: string; publicKeyPath: string; publicKey: string; files: FileAction[] }
> {
  const layout = pkiLayout(config);
  await Deno.mkdir(layout.sshDir, { recursive: true, mode: 0o700 });
  const rec: Recorder = { layout, files: [] };
  const { publicKey } = await ensureSshKeyAt(rec, `dtk@${config.cluster.name}`);
  return {
    privateKeyPath: layout.sshPrivateKey,
    publicKeyPath: layout.sshPublicKey,
    publicKey,
    files: rec.files,
  };
}

/**
 * Makes or refreshes everything of the cluster's PKI: CA, the certificate matrix, kubeconfigs,
 * encryption config, static token file and SSH key pair. `nodes` are the VMs' addresses in config
 * order, the controller first.
 */
export async function ensurePki(
  config: PkiConfig,
  nodes: readonly NodeIp[],
  options: EnsurePkiOptions = {},
): Promise<EnsurePkiResult> {
  const time = timeOptions(options);
  const validNodes = validateNodes(config, nodes);
  const specs = certificateMatrix(config, validNodes);
  const layout = pkiLayout(config);
  await ensureDirs(layout);
  const rec: Recorder = { layout, files: [] };

  const { ca, certPem: caPem } = await ensureCa(rec, config.cluster.name, time);
  const issued = await Promise.all(specs.map(async (spec) => {
    const sub: Recorder = { layout, files: [] };
    const pair = await ensureLeaf(sub, spec, ca, time);
    return { spec, pair, files: sub.files };
  }));
  for (const item of issued) rec.files.push(...item.files);
  await removeStale(rec, specs);

  const server = apiServerUrl(validNodes[0]!.ip);
  for (const { spec, pair } of issued) {
    if (!spec.kubeconfig) continue;
    const text = renderKubeconfig({
      clusterName: config.cluster.name,
      userName: kubeconfigUserName(spec.identity, config.cluster.name),
      server,
      caPem,
      certPem: pair.certPem,
      keyPem: pair.keyPem,
    });
    await writeIfChanged(
      rec,
      layout.kubeconfig(spec.identity),
      text,
      "certificate or server changed",
    );
  }

  const { adminToken } = await ensureSecrets(rec);
  const { publicKey } = await ensureSshKeyAt(rec, `dtk@${config.cluster.name}`);
  return { layout, files: rec.files, adminToken, sshPublicKey: publicKey, server };
}

/** The admin bearer token of a cluster, or `undefined` before `ensurePki` made one. */
export async function readAdminToken(
  config: Pick<PkiConfig, "cluster" | "source">,
): Promise<string | undefined> {
  const text = await readIfExists(pkiLayout(config).staticToken);
  return text === undefined ? undefined : parseAdminToken(text);
}

/** A fresh Ed25519 SSH host key pair for one node (clones must not share host keys). */
export async function generateHostKey(
  hostName: string,
): Promise<{ privateKey: string; publicKey: string }> {
  return await generateSshKeyPair(`root@${hostName}`);
}
