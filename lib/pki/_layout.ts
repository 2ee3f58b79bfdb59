/**
 * Where a cluster's keys, certificates and kubeconfigs live under `generated/<cluster>/`.
 *
 * @module
 */
import { join } from "node:path";
import { clusterDir } from "../paths/mod.ts";
import type { Config } from "../config/types.ts";

/** The PKI files of one cluster. */
export interface PkiLayout {
  /** `generated/<cluster>` */
  root: string;
  pkiDir: string;
  kubeconfigDir: string;
  secretsDir: string;
  sshDir: string;
  caCert: string;
  caKey: string;
  encryptionConfig: string;
  staticToken: string;
  sshPrivateKey: string;
  sshPublicKey: string;
  /** `pki/<identity>.pem` */
  cert(identity: string): string;
  /** `pki/<identity>-key.pem` */
  key(identity: string): string;
  /** `kubeconfig/<identity>.kubeconfig` */
  kubeconfig(identity: string): string;
}

/** The file layout of the cluster `config.cluster.name`. */
export function pkiLayout(config: Pick<Config, "source" | "cluster">): PkiLayout {
  const root = clusterDir(config);
  const pkiDir = join(root, "pki");
  const kubeconfigDir = join(root, "kubeconfig");
  const secretsDir = join(root, "secrets");
  const sshDir = join(root, "ssh");
  return {
    root,
    pkiDir,
    kubeconfigDir,
    secretsDir,
    sshDir,
    caCert: join(pkiDir, "ca.pem"),
    caKey: join(pkiDir, "ca-key.pem"),
    encryptionConfig: join(secretsDir, "encryption-config.yaml"),
    staticToken: join(secretsDir, "static-token.csv"),
    sshPrivateKey: join(sshDir, "id_ed25519"),
    sshPublicKey: join(sshDir, "id_ed25519.pub"),
    cert: (identity) => join(pkiDir, `${identity}.pem`),
    key: (identity) => join(pkiDir, `${identity}-key.pem`),
    kubeconfig: (identity) => join(kubeconfigDir, `${identity}.kubeconfig`),
  };
}
