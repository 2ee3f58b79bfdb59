/**
 * Ed25519 SSH keys in the OpenSSH formats, made with WebCrypto so that dtk needs no `ssh-keygen`:
 * the private key as `openssh-key-v1` (unencrypted, the form `ssh-keygen -N ""` writes) and the
 * public key as an `ssh-ed25519 AAAA… comment` line.
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "./_base64.ts";

const MAGIC = new TextEncoder().encode("openssh-key-v1\0");
const KEY_TYPE = "ssh-ed25519";
// DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX = Uint8Array.from([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
]);

/** An Ed25519 key pair in OpenSSH formats. */
export interface SshKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` … (unencrypted). */
  privateKey: string;
  /** `ssh-ed25519 AAAA… comment` (no trailing newline). */
  publicKey: string;
}

class Writer {
  #chunks: Uint8Array[] = [];
  #length = 0;

  uint32(value: number): this {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value);
    return this.raw(bytes);
  }
  string(value: string | Uint8Array): this {
    const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
    return this.uint32(bytes.length).raw(bytes);
  }
  raw(bytes: Uint8Array): this {
    this.#chunks.push(bytes);
    this.#length += bytes.length;
    return this;
  }
  get length(): number {
    return this.#length;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

class Reader {
  #bytes: Uint8Array;
  #offset = 0;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  uint32(): number {
    if (this.#offset + 4 > this.#bytes.length) throw new Error("truncated key");
    const value = new DataView(this.#bytes.buffer, this.#bytes.byteOffset + this.#offset, 4)
      .getUint32(0);
    this.#offset += 4;
    return value;
  }
  bytes(): Uint8Array {
    const length = this.uint32();
    if (this.#offset + length > this.#bytes.length) throw new Error("truncated key");
    const out = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return out;
  }
  text(): string {
    return new TextDecoder().decode(this.bytes());
  }
  rest(): Uint8Array {
    return this.#bytes.subarray(this.#offset);
  }
}

function publicBlob(publicKey: Uint8Array): Uint8Array {
  return new Writer().string(KEY_TYPE).string(publicKey).bytes();
}

/** `ssh-ed25519 <base64 blob> <comment>` for a raw 32-byte public key. */
export function formatSshPublicKey(publicKey: Uint8Array, comment: string): string {
  const line = `${KEY_TYPE} ${encodeBase64(publicBlob(publicKey))}`;
  return comment ? `${line} ${comment}` : line;
}

/** Serialises an Ed25519 seed and public key as an unencrypted `openssh-key-v1` private key. */
export function formatSshPrivateKey(
  seed: Uint8Array,
  publicKey: Uint8Array,
  options: { comment: string; checkInt?: number },
): string {
  const check = options.checkInt ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
  const secret = new Uint8Array(64);
  secret.set(seed, 0);
  secret.set(publicKey, 32);
  const section = new Writer()
    .uint32(check)
    .uint32(check)
    .string(KEY_TYPE)
    .string(publicKey)
    .string(secret)
    .string(options.comment);
  // The "none" cipher has a block size of 8; padding bytes count 1, 2, 3, …
  for (let pad = 1; section.length % 8 !== 0; pad++) section.raw(Uint8Array.of(pad));
  const body = new Writer()
    .raw(MAGIC)
    .string("none")
    .string("none")
    .string("")
    .uint32(1)
    .string(publicBlob(publicKey))
    .string(section.bytes())
    .bytes();
  const base64 = encodeBase64(body);
  const lines = base64.match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${
    lines.join("\n")
  }\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** A new Ed25519 key pair in OpenSSH formats. */
export async function generateSshKeyPair(comment: string): Promise<SshKeyPair> {
  const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const seed = pkcs8.slice(pkcs8.length - 32);
  return {
    privateKey: formatSshPrivateKey(seed, publicKey, { comment }),
    publicKey: formatSshPublicKey(publicKey, comment),
  };
}

/** What an OpenSSH Ed25519 private key holds. */
export interface ParsedSshPrivateKey {
  seed: Uint8Array;
  publicKey: Uint8Array;
  comment: string;
}

/**
 * Reads an unencrypted OpenSSH Ed25519 private key and proves that its public half belongs to its
 * seed. Throws `Error` with the reason when it is anything else.
 */
export async function parseSshPrivateKey(text: string): Promise<ParsedSshPrivateKey> {
  const match = text.match(
    /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/,
  );
  if (!match) throw new Error("not an OpenSSH private key");
  const body = decodeBase64(match[1]!.replace(/\s+/g, ""));
  if (!MAGIC.every((b, i) => body[i] === b)) throw new Error("not an openssh-key-v1 key");
  const reader = new Reader(body.subarray(MAGIC.length));
  const cipher = reader.text();
  const kdf = reader.text();
  reader.bytes();
  if (cipher !== "none" || kdf !== "none") throw new Error("key is encrypted with a passphrase");
  if (reader.uint32() !== 1) throw new Error("key file holds more than one key");
  const blob = new Reader(reader.bytes());
  if (blob.text() !== KEY_TYPE) throw new Error(`key type is not ${KEY_TYPE}`);
  const outerPublic = blob.bytes();
  const section = new Reader(reader.bytes());
  if (section.uint32() !== section.uint32()) throw new Error("check integers differ");
  if (section.text() !== KEY_TYPE) throw new Error(`key type is not ${KEY_TYPE}`);
  const publicKey = section.bytes();
  const secret = section.bytes();
  const comment = section.text();
  if (publicKey.length !== 32 || secret.length !== 64) throw new Error("bad Ed25519 key length");
  const seed = secret.slice(0, 32);
  const derived = await ed25519PublicFromSeed(seed);
  if (!equalBytes(derived, publicKey) || !equalBytes(outerPublic, publicKey)) {
    throw new Error("public key does not match the private key");
  }
  return { seed, publicKey: publicKey.slice(), comment };
}

/** Parses an `ssh-ed25519 AAAA… comment` line into the raw public key. */
export function parseSshPublicKey(line: string): { publicKey: Uint8Array; comment: string } {
  const [type, base64, ...comment] = line.trim().split(/\s+/);
  if (type !== KEY_TYPE || base64 === undefined) throw new Error(`not an ${KEY_TYPE} public key`);
  const blob = new Reader(decodeBase64(base64));
  if (blob.text() !== KEY_TYPE) throw new Error(`not an ${KEY_TYPE} public key`);
  const publicKey = blob.bytes();
  if (publicKey.length !== 32) throw new Error("bad Ed25519 key length");
  return { publicKey: publicKey.slice(), comment: comment.join(" ") };
}

/** The raw Ed25519 public key of a 32-byte seed. */
export async function ed25519PublicFromSeed(seed: Uint8Array): Promise<Uint8Array> {
  const pkcs8 = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
  pkcs8.set(PKCS8_ED25519_PREFIX);
  pkcs8.set(seed, PKCS8_ED25519_PREFIX.length);
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  if (!jwk.x) throw new Error("cannot derive the Ed25519 public key");
  return decodeBase64(jwk.x.replaceAll("-", "+").replaceAll("_", "/"));
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
