/**
 * `checkPki` verifies every file of a cluster's PKI against its CA and the config, and
 * `listCerts` describes every certificate on disk. Neither writes anything.
 *
 * @module
 */
import { basename, join, relative } from "node:path";
import { q } from "../errors/mod.ts";
import { pkiLayout } from "./_layout.ts";
import {
  certificateMatrix,
  type NodeIp,
  type PkiConfig,
  serviceIps,
  validateNodes,
} from "./_matrix.ts";
import { inspectCa, leafProblem, readIfExists } from "./_inspect.ts";
import { certFacts, keyUsageNames, parseCert, type X509Certificate } from "./_x509.ts";
import { apiServerUrl, kubeconfigUserName, parseKubeconfig } from "./_kubeconfig.ts";
import { encryptionConfigProblem, parseAdminToken } from "./_secrets.ts";
import { formatSshPublicKey, parseSshPrivateKey } from "./_ssh.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

export interface CheckPkiOptions {
  /** The nodes' real addresses. Default: read from the kubelet certificates (consistency only). */
  nodes?: readonly NodeIp[];
  now?: Date;
  /** Report certificates that expire within this many days. Default 30. */
  renewBeforeDays?: number;
}

export interface PkiProblem {
  /** Relative to `generated/<cluster>/`. */
  file: string;
  problem: string;
}

export interface CheckPkiResult {
  problems: PkiProblem[];
  /** Files that were checked and found fine. */
  ok: string[];
  /** The node addresses checked against. */
  nodes: NodeIp[];
  /** True when the addresses came from the certificates rather than from the caller. */
  nodesInferred: boolean;
}

async function modeProblem(path: string, mode: number): Promise<string | undefined> {
  const info = await Deno.stat(path);
  if (info.mode === null) return undefined;
  const actual = info.mode & 0o777;
  return actual === mode ? undefined : `mode is ${actual.toString(8)}, must be ${mode.toString(8)}`;
}

function firstIp(pem: string | undefined): string | undefined {
  if (pem === undefined) return undefined;
  try {
    return certFacts(parseCert(pem)).ipAddresses[0];
  } catch {
    return undefined;
  }
}

async function inferNodes(config: PkiConfig): Promise<NodeIp[]> {
  const layout = pkiLayout(config);
  const nodes = await Promise.all(config.vms.map(async (vm) => ({
    name: vm.name,
    ip: firstIp(await readIfExists(layout.cert(`kubelet-${vm.name}`))),
  })));
  const controller = nodes[0];
  if (controller && controller.ip === undefined) {
    // The kubernetes certificate names the controller too, beside loopback and Service IPs.
    const kubernetes = await readIfExists(layout.cert("kubernetes"));
    if (kubernetes !== undefined) {
      try {
        const known = new Set(["127.0.0.1", ...serviceIps(config)]);
        controller.ip = certFacts(parseCert(kubernetes)).ipAddresses.find((ip) => !known.has(ip));
      } catch {
        // Reported when the kubernetes certificate itself is checked.
      }
    }
  }
  // An address that cannot be read stays unknown; the certificate naming it is reported anyway.
  return nodes.map((n) => ({ name: n.name, ip: n.ip ?? "0.0.0.0" }));
}

/** Checks the cluster's PKI files; never writes. */
export async function checkPki(
  config: PkiConfig,
  options: CheckPkiOptions = {},
): Promise<CheckPkiResult> {
  const layout = pkiLayout(config);
  const time = {
    now: options.now ?? new Date(),
    renewBeforeMs: (options.renewBeforeDays ?? 30) * DAY_MS,
  };
  const problems: PkiProblem[] = [];
  const ok: string[] = [];
  const rel = (path: string) => relative(layout.root, path);
  const report = (path: string, problem: string | undefined) => {
    if (problem === undefined) ok.push(rel(path));
    else problems.push({ file: rel(path), problem });
  };

  const nodesInferred = options.nodes === undefined;
  const nodes = validateNodes(config, options.nodes ?? await inferNodes(config));
  const specs = certificateMatrix(config, nodes);

  const caPem = await readIfExists(layout.caCert);
  const caKeyPem = await readIfExists(layout.caKey);
  const caInspection = await inspectCa(caPem, caKeyPem, time);
  let caCert: X509Certificate | undefined;
  if (caInspection.ok) {
    caCert = caInspection.ca.cert;
    report(layout.caCert, undefined);
    report(layout.caKey, await modeProblem(layout.caKey, 0o600));
  } else {
    report(layout.caCert, `CA ${caInspection.problem}`);
    try {
      if (caPem !== undefined) caCert = parseCert(caPem);
    } catch {
      // Leaves are then reported as unverifiable below.
    }
  }

  const leaves = new Map<string, { certPem?: string; keyPem?: string }>();
  for (const spec of specs) {
    const certPath = layout.cert(spec.identity);
    const keyPath = layout.key(spec.identity);
    const certPem = await readIfExists(certPath);
    const keyPem = await readIfExists(keyPath);
    leaves.set(spec.identity, { certPem, keyPem });
    const problem = caCert || certPem === undefined
      ? await leafProblem(spec, certPem, keyPem, caCert!, time)
      : "cannot be verified: the CA certificate is unreadable";
    report(certPath, problem);
    if (keyPem !== undefined) report(keyPath, await modeProblem(keyPath, 0o600));
  }

  const server = apiServerUrl(nodes[0]!.ip);
  for (const spec of specs.filter((s) => s.kubeconfig)) {
    const path = layout.kubeconfig(spec.identity);
    const text = await readIfExists(path);
    if (text === undefined) {
      report(path, "missing");
      continue;
    }
    let problem: string | undefined;
    try {
      const kc = parseKubeconfig(text);
      const leaf = leaves.get(spec.identity);
      const user = kubeconfigUserName(spec.identity, config.cluster.name);
      if (kc.clusterName !== config.cluster.name) {
        problem = `cluster is named ${q(kc.clusterName)}, needs ${q(config.cluster.name)}`;
      } else if (kc.userName !== user) problem = `user is ${q(kc.userName)}, needs ${q(user)}`;
      else if (kc.server !== server) problem = `server is ${q(kc.server)}, needs ${q(server)}`;
      else if (kc.caPem !== caPem) problem = "embedded CA differs from pki/ca.pem";
      else if (kc.certPem !== leaf?.certPem) {
        problem = `embedded certificate differs from ${q(`pki/${spec.identity}.pem`)}`;
      } else if (kc.keyPem !== leaf?.keyPem) {
        problem = `embedded key differs from ${q(`pki/${spec.identity}-key.pem`)}`;
      } else problem = await modeProblem(path, 0o600);
    } catch (error) {
      problem = `unreadable kubeconfig: ${(error as Error).message}`;
    }
    report(path, problem);
  }

  // Files of identities the config no longer has: stale credentials a user could still use.
  const wanted = new Set<string>();
  for (const spec of specs) {
    wanted.add(layout.cert(spec.identity)).add(layout.key(spec.identity));
    if (spec.kubeconfig) wanted.add(layout.kubeconfig(spec.identity));
  }
  for (const dir of [layout.pkiDir, layout.kubeconfigDir]) {
    for (const name of await listDir(dir)) {
      const path = join(dir, name);
      if (path === layout.caCert || path === layout.caKey || wanted.has(path)) continue;
      if (/\.(pem|kubeconfig)$/.test(name)) report(path, "not needed by the config (stale)");
    }
  }

  const encryption = await readIfExists(layout.encryptionConfig);
  report(
    layout.encryptionConfig,
    encryption === undefined
      ? "missing"
      : encryptionConfigProblem(encryption) ?? await modeProblem(layout.encryptionConfig, 0o600),
  );
  const token = await readIfExists(layout.staticToken);
  report(
    layout.staticToken,
    token === undefined
      ? "missing"
      : parseAdminToken(token) === undefined
      ? "not a static token file with a random admin token"
      : await modeProblem(layout.staticToken, 0o600),
  );

  const sshPrivate = await readIfExists(layout.sshPrivateKey);
  if (sshPrivate === undefined) {
    report(layout.sshPrivateKey, "missing");
  } else {
    try {
      const parsed = await parseSshPrivateKey(sshPrivate);
      report(layout.sshPrivateKey, await modeProblem(layout.sshPrivateKey, 0o600));
      const publicText = await readIfExists(layout.sshPublicKey);
      report(
        layout.sshPublicKey,
        publicText === undefined
          ? "missing"
          : publicText.trim() !== formatSshPublicKey(parsed.publicKey, parsed.comment)
          ? "does not match the private key"
          : undefined,
      );
    } catch (error) {
      report(layout.sshPrivateKey, `unusable: ${(error as Error).message}`);
    }
  }
  return { problems, ok, nodes, nodesInferred };
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/** One certificate as `dtk certs list` shows it. */
export interface CertListing {
  /** Relative to `generated/<cluster>/`; a kubeconfig's embedded client certificate too. */
  file: string;
  subject: string;
  issuer: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  keyUsage: string[];
  extendedKeyUsage: string[];
  keyAlgorithm: string;
  serial: string;
}

/** Describes every certificate under `pki/` and in `kubeconfig/`; unreadable ones as errors. */
export async function listCerts(
  config: Pick<PkiConfig, "cluster" | "source">,
): Promise<{ certs: CertListing[]; errors: PkiProblem[] }> {
  const layout = pkiLayout(config);
  const certs: CertListing[] = [];
  const errors: PkiProblem[] = [];
  const describe = (file: string, pem: string) => {
    try {
      const facts = certFacts(parseCert(pem));
      certs.push({
        file,
        subject: facts.subject,
        issuer: facts.issuer,
        dnsNames: facts.dnsNames,
        ipAddresses: facts.ipAddresses,
        notBefore: facts.notBefore,
        notAfter: facts.notAfter,
        isCa: facts.isCa,
        keyUsage: keyUsageNames(facts.keyUsage),
        extendedKeyUsage: [
          ...(facts.serverAuth ? ["serverAuth"] : []),
          ...(facts.clientAuth ? ["clientAuth"] : []),
        ],
        keyAlgorithm: facts.keyAlgorithm,
        serial: facts.serial,
      });
    } catch (error) {
      errors.push({ file, problem: `unreadable: ${(error as Error).message}` });
    }
  };
  const pemNames = (await listDir(layout.pkiDir)).filter((n) =>
    n.endsWith(".pem") && !n.endsWith("-key.pem")
  );
  // The CA first, then the rest by name.
  pemNames.sort((a, b) => (a === "ca.pem" ? -1 : b === "ca.pem" ? 1 : a.localeCompare(b)));
  for (const name of pemNames) {
    describe(`pki/${name}`, await Deno.readTextFile(join(layout.pkiDir, name)));
  }
  for (
    const name of (await listDir(layout.kubeconfigDir)).filter((n) => n.endsWith(".kubeconfig"))
  ) {
    const file = `kubeconfig/${basename(name)}`;
    try {
      describe(
        file,
        parseKubeconfig(await Deno.readTextFile(join(layout.kubeconfigDir, name))).certPem,
      );
    } catch (error) {
      errors.push({ file, problem: `unreadable kubeconfig: ${(error as Error).message}` });
    }
  }
  return { certs, errors };
}
