/**
 * Certificates on WebCrypto through `@peculiar/x509`: make the CA and leaves (ECDSA P-256,
 * SHA-256), and read existing ones back to decide whether they still fit.
 *
 * @module
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { canonicalIp } from "./_ip.ts";
import { equalBytes } from "./_ssh.ts";

x509.cryptoProvider.set(crypto);

const EC_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
// Node clocks drift from the host's before NTP settles; a certificate must already be valid then.
const BACKDATE_MS = 5 * 60 * 1000;

/** An ordered distinguished name: `[["O", "system:masters"], ["CN", "admin"]]`. */
export type DistinguishedName = readonly (readonly [attribute: "O" | "OU" | "CN", value: string])[];

/** What one leaf certificate must say. */
export interface LeafProfile {
  subject: DistinguishedName;
  dnsNames: readonly string[];
  /** Canonical IP text. */
  ipAddresses: readonly string[];
  serverAuth: boolean;
  clientAuth: boolean;
  /** PEM form of the private key: PKCS#8 `PRIVATE KEY` (default) or SEC1 `EC PRIVATE KEY`. */
  keyFormat?: KeyFormat;
}

export type KeyFormat = "pkcs8" | "sec1";

/** A CA ready to sign. */
export interface SigningCa {
  cert: x509.X509Certificate;
  privateKey: CryptoKey;
}

/** PEM texts of a new key pair and its certificate. */
export interface IssuedPem {
  certPem: string;
  keyPem: string;
}

/** Renders a distinguished name the way `openssl x509 -subject` does: `O = a, CN = b`. */
export function formatDn(dn: DistinguishedName): string {
  return dn.map(([k, v]) => `${k}=${v}`).join(", ");
}

function toName(dn: DistinguishedName): x509.Name {
  return new x509.Name(dn.map(([k, v]) => ({ [k]: [v] })));
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // Positive and without a leading zero byte, as DER INTEGER rules and RFC 5280 want.
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function toPem(label: string, der: ArrayBuffer): string {
  const base64 = x509.PemConverter.encode(der, label);
  return base64.endsWith("\n") ? base64 : `${base64}\n`;
}

function certPem(cert: x509.X509Certificate): string {
  const pem = cert.toString("pem");
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(EC_ALGORITHM, true, ["sign", "verify"]) as CryptoKeyPair;
}

/** Makes a self-signed CA: CA:TRUE critical, keyCertSign+cRLSign+digitalSignature, SKID. */
export async function createCa(
  subject: DistinguishedName,
  options: { now: Date; validityDays: number },
): Promise<IssuedPem & SigningCa> {
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: toName(subject),
    notBefore: new Date(options.now.getTime() - BACKDATE_MS),
    notAfter: new Date(options.now.getTime() + options.validityDays * DAY_MS),
    signingAlgorithm: EC_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = toPem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { cert, privateKey: keys.privateKey, certPem: certPem(cert), keyPem };
}

const akidCache = new WeakMap<x509.X509Certificate, Promise<x509.Extension>>();

/** The AKID naming `ca`; computed once per CA since every leaf of a run carries the same one. */
function authorityKeyId(ca: x509.X509Certificate): Promise<x509.Extension> {
  let akid = akidCache.get(ca);
  if (!akid) {
    akid = x509.AuthorityKeyIdentifierExtension.create(ca, false);
    akidCache.set(ca, akid);
  }
  return akid;
}

/**
 * Issues a leaf: AKID, SKID, CA:FALSE (critical), keyUsage digitalSignature (critical: the only
 * TLS usage of an ECDSA key; keyEncipherment is for RSA), the profile's EKUs and SANs.
 */
export async function issueLeaf(
  profile: LeafProfile,
  ca: SigningCa,
  options: { now: Date; validityDays: number },
): Promise<IssuedPem> {
  const keys = await newKeyPair();
  const wanted = options.now.getTime() + options.validityDays * DAY_MS;
  // A leaf outliving its CA would only fail later and less clearly.
  const notAfter = new Date(Math.min(wanted, ca.cert.notAfter.getTime()));
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    await authorityKeyId(ca.cert),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const ekus = [
    ...(profile.serverAuth ? [x509.ExtendedKeyUsage.serverAuth] : []),
    ...(profile.clientAuth ? [x509.ExtendedKeyUsage.clientAuth] : []),
  ];
  if (ekus.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension(ekus, false));
  const names = [
    ...profile.dnsNames.map((value) => ({ type: "dns" as const, value })),
    ...profile.ipAddresses.map((value) => ({ type: "ip" as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: toName(profile.subject),
    issuer: ca.cert.subjectName,
    notBefore: new Date(options.now.getTime() - BACKDATE_MS),
    notAfter,
    signingAlgorithm: EC_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.privateKey,
    extensions,
  });
  const pkcs8 = toPem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = profile.keyFormat === "sec1"
    ? String(createPrivateKey(pkcs8).export({ type: "sec1", format: "pem" }))
    : pkcs8;
  return { certPem: certPem(cert), keyPem };
}

/** The format of a PEM private key, or `undefined` when it is neither PKCS#8 nor SEC1. */
export function keyFormatOf(keyPem: string): KeyFormat | undefined {
  if (/^-----BEGIN PRIVATE KEY-----/m.test(keyPem)) return "pkcs8";
  if (/^-----BEGIN EC PRIVATE KEY-----/m.test(keyPem)) return "sec1";
  return undefined;
}

/** What a certificate says, read back. */
export interface CertFacts {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  keyUsage: number | undefined;
  serverAuth: boolean;
  clientAuth: boolean;
  dnsNames: string[];
  /** Canonical IP text. */
  ipAddresses: string[];
  /** e.g. `ECDSA P-256`. */
  keyAlgorithm: string;
}

/** Parses a PEM certificate; throws on anything that is not exactly one certificate. */
export function parseCert(pem: string): x509.X509Certificate {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) throw new Error(`expected one certificate, found ${blocks.length}`);
  return new x509.X509Certificate(pem);
}

/** Reads the facts `dtk certs list` and the checks need from a certificate. */
export function certFacts(cert: x509.X509Certificate): CertFacts {
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.items ?? [];
  const usages = (eku?.usages ?? []).map(String);
  const algorithm = cert.publicKey.algorithm as EcKeyAlgorithm & RsaHashedKeyAlgorithm;
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCa: basic?.ca ?? false,
    keyUsage: usage?.usages,
    serverAuth: usages.includes(x509.ExtendedKeyUsage.serverAuth),
    clientAuth: usages.includes(x509.ExtendedKeyUsage.clientAuth),
    dnsNames: names.filter((n) => n.type === "dns").map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === "ip").map((n) => canonicalIp(n.value) ?? n.value),
    keyAlgorithm: algorithm.namedCurve
      ? `${algorithm.name} ${algorithm.namedCurve}`
      : `${algorithm.name}${algorithm.modulusLength ? ` ${algorithm.modulusLength}` : ""}`,
  };
}

/** True when the PKCS#8 (or SEC1/PKCS#1) PEM private key is the pair of the certificate's key. */
export function keyMatchesCert(keyPem: string, cert: x509.X509Certificate): boolean {
  try {
    const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "der" });
    return equalBytes(new Uint8Array(spki), new Uint8Array(cert.publicKey.rawData));
  } catch {
    return false;
  }
}

/** Imports a CA private key for signing; throws when it is not an ECDSA P-256 PKCS#8 key. */
export async function importCaKey(keyPem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  return await crypto.subtle.importKey(
    "pkcs8",
    der,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
}

/** True when `issuer` signed `cert` (signature and names; dates are checked apart). */
export async function signedBy(
  cert: x509.X509Certificate,
  issuer: x509.X509Certificate,
): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/** The expected subject rendered the same way `certFacts().subject` renders a parsed one. */
export function dnString(dn: DistinguishedName): string {
  return toName(dn).toString();
}

const KEY_USAGE_NAMES: [number, string][] = [
  [x509.KeyUsageFlags.digitalSignature, "digitalSignature"],
  [x509.KeyUsageFlags.nonRepudiation, "nonRepudiation"],
  [x509.KeyUsageFlags.keyEncipherment, "keyEncipherment"],
  [x509.KeyUsageFlags.dataEncipherment, "dataEncipherment"],
  [x509.KeyUsageFlags.keyAgreement, "keyAgreement"],
  [x509.KeyUsageFlags.keyCertSign, "keyCertSign"],
  [x509.KeyUsageFlags.cRLSign, "cRLSign"],
];

/** `digitalSignature, keyCertSign` for a key usage bit set. */
export function keyUsageNames(flags: number | undefined): string[] {
  if (flags === undefined) return [];
  return KEY_USAGE_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
}

export const KeyUsage = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  cRLSign: x509.KeyUsageFlags.cRLSign,
} as const;

export type { X509Certificate } from "@peculiar/x509";
