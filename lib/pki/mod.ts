/**
 * The cluster's PKI, made in-process with WebCrypto: a CA per cluster (ECDSA P-256), the
 * certificate matrix of the original Desktop Kubernetes (admin, kubernetes, service-account,
 * aggregator, kube-controller-manager, kube-scheduler, kube-proxy, one kubelet per node),
 * kubeconfigs, the encryption-at-rest config, a random static admin token, and Ed25519 SSH keys
 * in OpenSSH format. `ensurePki` is idempotent: it keeps what fits the config and replaces only
 * what is missing, invalid, expiring or no longer matching.
 *
 * ```ts
 * const result = await ensurePki(config, [{ name: "vm1", ip: "192.168.122.10" }]);
 * result.adminToken; // for add-ons that log in with a bearer token
 * ```
 *
 * @module
 */
export {
  ensurePki,
  type EnsurePkiOptions,
  type EnsurePkiResult,
  ensureSshKey,
  type FileAction,
  generateHostKey,
  readAdminToken,
} from "./_ensure.ts";
export {
  type CertListing,
  checkPki,
  type CheckPkiOptions,
  type CheckPkiResult,
  listCerts,
  type PkiProblem,
} from "./_check.ts";
export {
  caSubject,
  certificateMatrix,
  type IdentitySpec,
  kubernetesDnsNames,
  type NodeIp,
  type PkiConfig,
  serviceIps,
  STATIC_IDENTITIES,
  validateNodes,
} from "./_matrix.ts";
export { type PkiLayout, pkiLayout } from "./_layout.ts";
export {
  apiServerUrl,
  type KubeconfigInput,
  kubeconfigUserName,
  parseKubeconfig,
  renderKubeconfig,
} from "./_kubeconfig.ts";
export {
  generateSshKeyPair,
  parseSshPrivateKey,
  parseSshPublicKey,
  type SshKeyPair,
} from "./_ssh.ts";
export { firstHostIp } from "./_ip.ts";
export { decodeBase64, encodeBase64 } from "./_base64.ts";
