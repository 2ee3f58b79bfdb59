import assert from "node:assert/strict";
import {
  ed25519PublicFromSeed,
  formatSshPrivateKey,
  generateSshKeyPair,
  parseSshPrivateKey,
  parseSshPublicKey,
} from "./_ssh.ts";
import { decodeBase64 } from "./_base64.ts";

Deno.test("an OpenSSH Ed25519 key round-trips and its public line matches", async () => {
  const pair = await generateSshKeyPair("dtk@test");
  assert.match(
    pair.privateKey,
    /^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END OPENSSH PRIVATE KEY-----\n$/,
  );
  assert.match(pair.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* dtk@test$/);
  const parsed = await parseSshPrivateKey(pair.privateKey);
  assert.deepEqual(parsed.publicKey, parseSshPublicKey(pair.publicKey).publicKey);
  assert.equal(parsed.comment, "dtk@test");
});

Deno.test("the private key layout follows openssh-key-v1 with padding 1,2,3…", async () => {
  const seed = new Uint8Array(32).fill(7);
  const publicKey = await ed25519PublicFromSeed(seed);
  const text = formatSshPrivateKey(seed, publicKey, { comment: "c", checkInt: 0x01020304 });
  // The same inputs give the same bytes.
  assert.equal(text, formatSshPrivateKey(seed, publicKey, { comment: "c", checkInt: 0x01020304 }));
  const body = decodeBase64(text.split("\n").slice(1, -2).join(""));
  assert.equal(new TextDecoder().decode(body.subarray(0, 15)), "openssh-key-v1\0");
  // Section: 2 check ints (8) + "ssh-ed25519" (15) + public (36) + seed‖public (68) + "c" (5)
  // = 132 bytes, padded to the block size 8 with 1,2,3,4.
  const view = new DataView(body.buffer, body.byteOffset);
  assert.equal(view.getUint32(body.length - 140), 136);
  assert.equal(view.getUint32(body.length - 136), 0x01020304);
  assert.equal(view.getUint32(body.length - 132), 0x01020304);
  assert.deepEqual(Array.from(body.subarray(body.length - 4)), [1, 2, 3, 4]);
  const parsed = await parseSshPrivateKey(text);
  assert.deepEqual(parsed.seed, seed);
});

Deno.test("a key whose public half does not belong to its seed is refused", async () => {
  const seed = new Uint8Array(32).fill(1);
  const otherPublic = await ed25519PublicFromSeed(new Uint8Array(32).fill(2));
  const text = formatSshPrivateKey(seed, otherPublic, { comment: "x" });
  await assert.rejects(parseSshPrivateKey(text), /does not match/);
  await assert.rejects(parseSshPrivateKey("garbage"), /not an OpenSSH private key/);
});
