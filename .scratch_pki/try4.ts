const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
for (let r = 0; r < 3; r++) {
let t = performance.now();
const keys = await Promise.all(Array.from({length: 17}, () => crypto.subtle.generateKey(alg, true, ["sign","verify"]) as Promise<CryptoKeyPair>));
const a = performance.now() - t; t = performance.now();
for (const k of keys) await crypto.subtle.sign(alg, k.privateKey, new Uint8Array(300));
const b = performance.now() - t; t = performance.now();
for (const k of keys) await crypto.subtle.exportKey("pkcs8", k.privateKey);
const c = performance.now() - t; t = performance.now();
for (const k of keys) await crypto.subtle.exportKey("spki", k.publicKey);
const d = performance.now() - t; t = performance.now();
const ks = [];
for (let i=0;i<17;i++) ks.push(await crypto.subtle.generateKey(alg, true, ["sign","verify"]));
const e = performance.now() - t;
console.log({keygenParallel: a, sign: b, pkcs8: c, spki: d, keygenSeq: e});
}
