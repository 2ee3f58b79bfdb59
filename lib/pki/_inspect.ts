/**
 * Decides whether an existing CA or leaf still fits: readable, key matches, signed by the CA,
 * subject, SANs and usages as the config needs, and not about to expire. Shared by `ensurePki`
 * (regenerate what does not fit) and `checkPki` (report it).
 *
 * @module
 */
import {
  certFacts,
  dnString,
  importCaKey,
  keyFormatOf,
  keyMatchesCert,
  KeyUsage,
  parseCert,
  signedBy,
  type SigningCa,
  type X509Certificate,
} from "./_x509.ts";
import type { IdentitySpec } from "./_matrix.ts";
import { q } from "../errors/mod.ts";

const DAY_MS = 24 * 60 * 60 * 1000;
// A certificate dated a little in the future is the sign of a clock step, not of a bad file.
const FUTURE_TOLERANCE_MS = 10 * 60 * 1000;

export interface TimeOptions {
  now: Date;
  /** Renew what expires sooner than this. */
  renewBeforeMs: number;
}

/** Reads a text file, or `undefined` when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function validityProblem(cert: X509Certificate, time: TimeOptions): string | undefined {
  const now = time.now.getTime();
  if (cert.notBefore.getTime() > now + FUTURE_TOLERANCE_MS) {
    return `not valid before ${cert.notBefore.toISOString()}`;
  }
  const left = cert.notAfter.getTime() - now;
  if (left <= 0) return `expired on ${cert.notAfter.toISOString()}`;
  if (left < time.renewBeforeMs) {
    return `expires in ${Math.floor(left / DAY_MS)} days (${cert.notAfter.toISOString()})`;
  }
  return undefined;
}

/** A CA that is usable, or the reason it is not. */
export type CaInspection =
  | { ok: true; ca: SigningCa; certPem: string }
  | { ok: false; problem: string };

/** Inspects `ca.pem` and `ca-key.pem` (either may be missing). */
export async function inspectCa(
  certPem: string | undefined,
  keyPem: string | undefined,
  time: TimeOptions,
): Promise<CaInspection> {
  if (certPem === undefined) return { ok: false, problem: "missing" };
  if (keyPem === undefined) return { ok: false, problem: "its key is missing" };
  let cert: X509Certificate;
  try {
    cert = parseCert(certPem);
  } catch (error) {
    return { ok: false, problem: `unreadable certificate: ${(error as Error).message}` };
  }
  const facts = certFacts(cert);
  if (!facts.isCa) return { ok: false, problem: "not a CA certificate (CA:FALSE)" };
  if (((facts.keyUsage ?? 0) & KeyUsage.keyCertSign) === 0) {
    return { ok: false, problem: "key usage lacks keyCertSign" };
  }
  if (!(await signedBy(cert, cert))) return { ok: false, problem: "not self-signed" };
  if (!keyMatchesCert(keyPem, cert)) return { ok: false, problem: "key does not match" };
  const expiry = validityProblem(cert, time);
  if (expiry) return { ok: false, problem: expiry };
  let privateKey: CryptoKey;
  try {
    privateKey = await importCaKey(keyPem);
  } catch {
    return { ok: false, problem: "key is not an ECDSA P-256 PKCS#8 key" };
  }
  return { ok: true, ca: { cert, privateKey }, certPem };
}

const sameSet = (a: readonly string[], b: readonly string[]) => {
  const left = new Set(a.map((s) => s.toLowerCase()));
  const right = new Set(b.map((s) => s.toLowerCase()));
  return left.size === right.size && [...left].every((s) => right.has(s));
};

function ekuText(server: boolean, client: boolean): string {
  const list = [...(server ? ["serverAuth"] : []), ...(client ? ["clientAuth"] : [])];
  return list.length > 0 ? list.join(",") : "none";
}

/** Why the leaf at hand does not fit `spec` under `ca`, or `undefined` when it does. */
export async function leafProblem(
  spec: IdentitySpec,
  certPem: string | undefined,
  keyPem: string | undefined,
  ca: X509Certificate,
  time: TimeOptions,
): Promise<string | undefined> {
  if (certPem === undefined) return "missing";
  if (keyPem === undefined) return "its key is missing";
  let cert: X509Certificate;
  try {
    cert = parseCert(certPem);
  } catch (error) {
    return `unreadable certificate: ${(error as Error).message}`;
  }
  if (!keyMatchesCert(keyPem, cert)) return "key does not match the certificate";
  const format = keyFormatOf(keyPem);
  const wantFormat = spec.keyFormat ?? "pkcs8";
  if (format !== wantFormat) {
    const label = (f: string | undefined) =>
      f === "pkcs8" ? "PKCS#8" : f === "sec1" ? "SEC1" : "unknown";
    return `key is ${label(format)}, needs ${label(wantFormat)}`;
  }
  if (!(await signedBy(cert, ca))) return "not signed by the cluster CA";
  const facts = certFacts(cert);
  if (facts.isCa) return "is a CA certificate";
  const subject = dnString(spec.subject);
  if (facts.subject !== subject) return `subject is ${q(facts.subject)}, needs ${q(subject)}`;
  if (((facts.keyUsage ?? 0) & KeyUsage.digitalSignature) === 0) {
    return "key usage lacks digitalSignature";
  }
  if (facts.serverAuth !== spec.serverAuth || facts.clientAuth !== spec.clientAuth) {
    return `extended key usage is ${ekuText(facts.serverAuth, facts.clientAuth)}, needs ${
      ekuText(spec.serverAuth, spec.clientAuth)
    }`;
  }
  if (!sameSet(facts.dnsNames, spec.dnsNames)) {
    return `DNS names are ${q(facts.dnsNames.join(","))}, needs ${q(spec.dnsNames.join(","))}`;
  }
  if (!sameSet(facts.ipAddresses, spec.ipAddresses)) {
    return `IP addresses are ${q(facts.ipAddresses.join(","))}, needs ${
      q(spec.ipAddresses.join(","))
    }`;
  }
  return validityProblem(cert, time);
}
