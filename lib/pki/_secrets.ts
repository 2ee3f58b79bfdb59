/**
 * The apiserver's encryption-at-rest config and static token file: fresh random material per
 * cluster (the original commits one fixed token to its repository).
 *
 * @module
 */
import { parse } from "yaml";
import { decodeBase64, encodeBase64 } from "./_base64.ts";

/** Renders an `EncryptionConfiguration`: AES-CBC with `key`, then identity for old data. */
export function renderEncryptionConfig(key: Uint8Array): string {
  return [
    "apiVersion: apiserver.config.k8s.io/v1",
    "kind: EncryptionConfiguration",
    "resources:",
    "  - resources:",
    "      - secrets",
    "    providers:",
    "      - aescbc:",
    "          keys:",
    "            - name: key1",
    `              secret: ${encodeBase64(key)}`,
    "      - identity: {}",
    "",
  ].join("\n");
}

/** A new encryption config with a random 32-byte key. */
export function newEncryptionConfig(): string {
  return renderEncryptionConfig(crypto.getRandomValues(new Uint8Array(32)));
}

/** Why an encryption config is unusable, or `undefined` when it is fine. */
export function encryptionConfigProblem(text: string): string | undefined {
  try {
    const doc = parse(text) as {
      kind?: string;
      resources?: { resources?: string[]; providers?: Record<string, unknown>[] }[];
    };
    if (doc?.kind !== "EncryptionConfiguration") return "kind is not EncryptionConfiguration";
    const entry = doc.resources?.find((r) => r.resources?.includes("secrets"));
    const provider = entry?.providers?.[0]?.aescbc as
      | { keys?: { name?: string; secret?: string }[] }
      | undefined;
    const secret = provider?.keys?.[0]?.secret;
    if (typeof secret !== "string") return "no aescbc key for secrets";
    if (decodeBase64(secret).length !== 32) return "the aescbc key is not 32 bytes";
    return undefined;
  } catch (error) {
    return `unreadable: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** A random bearer token: 32 bytes as 64 hex digits. */
export function newToken(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** The static token file line giving `token` to user `admin` in `system:masters`. */
export function renderStaticTokenFile(token: string): string {
  return `${token},admin,1000,"system:masters"\n`;
}

/** The admin token of a static token file, or `undefined` when the file is not one dtk wrote. */
export function parseAdminToken(text: string): string | undefined {
  const match = text.match(/^([0-9a-f]{64}),admin,1000,"system:masters"\n?$/);
  return match?.[1];
}
