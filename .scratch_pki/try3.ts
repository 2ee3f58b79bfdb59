import { createCa, issueLeaf, parseCert, keyMatchesCert, signedBy, certFacts } from "../lib/pki/_x509.ts";
import { writeSecretAtomic } from "../lib/fs/mod.ts";
const now = new Date();
for (let round = 0; round < 3; round++) {
let t = performance.now();
const ca = await createCa([["CN", "x"]], { now, validityDays: 10 });
const t1 = performance.now() - t;
t = performance.now();
const leaves = await Promise.all(Array.from({length: 17}, () => issueLeaf({ subject: [["CN","a"]], dnsNames: ["a"], ipAddresses: ["1.2.3.4"], serverAuth: true, clientAuth: true }, ca, { now, validityDays: 10 })));
const t2 = performance.now() - t;
t = performance.now();
for (const l of leaves) { const c = parseCert(l.certPem); keyMatchesCert(l.keyPem, c); }
const t3 = performance.now() - t;
t = performance.now();
for (const l of leaves) { const c = parseCert(l.certPem); await signedBy(c, ca.cert); }
const t4 = performance.now() - t;
t = performance.now();
const d = await Deno.makeTempDir({dir: "/work/main/.scratch_pki"});
for (const [i, l] of leaves.entries()) { await writeSecretAtomic(`${d}/${i}`, l.keyPem); await writeSecretAtomic(`${d}/${i}c`, l.certPem); }
const t5 = performance.now() - t;
console.log({ca: t1, leaves: t2, keymatch: t3, verify: t4, write34: t5});
}
