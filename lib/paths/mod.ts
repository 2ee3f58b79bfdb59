/**
 * Where dtk keeps things on the host. Every cluster has its own folder under `generated/`, so
 * several clusters live side by side:
 *
 * ```
 * generated/<cluster>/
 *   state.json            steps done, with digests of their inputs (resume)
 *   ssh/                  id_ed25519, id_ed25519.pub, known_hosts (pinned host keys), cm-* sockets
 *   pki/                  ca.pem, ca-key.pem, <identity>.pem, <identity>-key.pem
 *   kubeconfig/           admin.kubeconfig, kube-controller-manager.kubeconfig, …
 *   secrets/              encryption-config.yaml, static-token.csv (0600)
 *   nodes/<vm>/           files rendered for each node
 *   addons/<addon>/       rendered helm values
 *   vm/                   kickstart, ISOs, cloud-init seeds
 *   logs/                 <timestamp>-<command>.log: a log of every create, up, down, delete,
 *                         install-addon (lib/runlog)
 * ```
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "../config/types.ts";

/** `generated/` beside the config file (beside the cwd for the built-in config). */
export function generatedDir(config: Pick<Config, "source">): string {
  return join(config.source.dir, "generated");
}

/** The cluster's own folder: `generated/<cluster name>`. */
export function clusterDir(config: Pick<Config, "source" | "cluster">): string {
  return join(generatedDir(config), config.cluster.name);
}

/** `dtk.lock` beside the config. */
export function lockPath(config: Pick<Config, "source">): string {
  return join(config.source.dir, "dtk.lock");
}

/**
 * The store folder: `store.path` from config, else `$DTK_STORE`, else
 * `$XDG_CACHE_HOME/dtk/store`, else `~/.cache/dtk/store`.
 */
export function storeDir(
  config: Pick<Config, "store"> | undefined,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string {
  const configured = config?.store.path;
  if (configured) return configured;
  const fromEnv = env("DTK_STORE");
  if (fromEnv) return fromEnv;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "dtk", "store");
  return join(env("HOME") ?? "/root", ".cache", "dtk", "store");
}

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
