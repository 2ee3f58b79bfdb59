/**
 * The cluster's nodes as dtk reaches them: addresses from the state file, one multiplexed
 * `Remote` per node, host keys pinned in the cluster's own known_hosts.
 *
 * @module
 */
import { join } from "node:path";
import { DtkError, q } from "../errors/mod.ts";
import type { Runner } from "../exec/mod.ts";
import type { Config } from "../config/types.ts";
import type { PkiLayout } from "../pki/mod.ts";
import type { PkiSource } from "../render/mod.ts";
import { generateHostKey } from "../pki/mod.ts";
import { KnownHosts, type Remote, SshRemote } from "../remote/mod.ts";
import { exists, writeFileAtomic, writeSecretAtomic } from "../fs/mod.ts";
import type { HostKey, NodeAddress } from "../../drivers/types.ts";
import type { StateStore } from "../pipeline/mod.ts";
import { type NodeStep, nodeStepScript, stepNodes } from "../addons/mod.ts";

export class Nodes {
  readonly #config: Config;
  readonly #layout: PkiLayout;
  readonly #state: StateStore;
  readonly #runner: Runner;
  readonly #remotes = new Map<string, SshRemote>();

  constructor(config: Config, options: { layout: PkiLayout; state: StateStore; runner: Runner }) {
    this.#config = config;
    this.#layout = options.layout;
    this.#state = options.state;
    this.#runner = options.runner;
  }

  get knownHostsFile(): string {
    return join(this.#layout.sshDir, "known_hosts");
  }

  get names(): string[] {
    return this.#config.vms.map((vm) => vm.name);
  }

  get controller(): string {
    return this.names[0] ?? "";
  }

  address(name: string): NodeAddress {
    const address = this.#state.node(name);
    if (!address) {
      throw new DtkError(`No address known for node ${q(name)}`, {
        hint: "Create the cluster first (dtk cluster create), or start it (dtk cluster up)",
      });
    }
    return address;
  }

  /** `name → ip` of every node whose address is known. */
  ips(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of this.names) {
      const a = this.#state.node(name);
      if (a) out[name] = a.ip;
    }
    return out;
  }

  /** The node's remote (one multiplexed ssh connection, reused). */
  remote(name: string): Remote {
    let remote = this.#remotes.get(name);
    if (!remote) {
      const a = this.address(name);
      remote = new SshRemote({
        node: name,
        host: a.ssh.host,
        port: a.ssh.port,
        identityFile: this.#layout.sshPrivateKey,
        knownHostsFile: this.knownHostsFile,
        controlDir: this.#layout.sshDir,
        runner: this.#runner,
      });
      this.#remotes.set(name, remote);
    }
    return remote;
  }

  /** Forgets a node's remote (its address changed). */
  async reset(name: string): Promise<void> {
    await this.#remotes.get(name)?.close().catch(() => {});
    this.#remotes.delete(name);
  }

  /** The host key dtk made for a node (made once, kept in `ssh/host-keys/`). */
  async hostKey(name: string): Promise<HostKey> {
    const dir = join(this.#layout.sshDir, "host-keys");
    const privatePath = join(dir, name);
    const publicPath = `${privatePath}.pub`;
    if (await exists(privatePath) && await exists(publicPath)) {
      return {
        privateKey: await Deno.readTextFile(privatePath),
        publicKey: (await Deno.readTextFile(publicPath)).trim(),
      };
    }
    const key = await generateHostKey(name);
    await writeSecretAtomic(privatePath, key.privateKey);
    await writeFileAtomic(publicPath, `${key.publicKey.trim()}\n`, { mode: 0o644 });
    return { privateKey: key.privateKey, publicKey: key.publicKey.trim() };
  }

  /** Pins a node's host key; a different key already pinned is refused. */
  async pin(name: string, address: NodeAddress, publicKey: string): Promise<void> {
    await new KnownHosts(this.knownHostsFile).pin(address.ssh.host, address.ssh.port, publicKey, {
      node: name,
    });
  }

  async isPinned(address: NodeAddress): Promise<boolean> {
    const keys = await new KnownHosts(this.knownHostsFile).lookup(
      address.ssh.host,
      address.ssh.port,
    );
    return keys.length > 0;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#remotes.values()].map((r) => r.close().catch(() => {})));
    this.#remotes.clear();
  }
}

/** The local file behind a PKI placement: what `cluster create` uploads and `verify` compares. */
export function pkiSourceFile(layout: PkiLayout, source: PkiSource): string {
  switch (source.kind) {
    case "ca-cert":
      return layout.caCert;
    case "ca-key":
      return layout.caKey;
    case "cert":
      return layout.cert(source.identity);
    case "key":
      return layout.key(source.identity);
    case "kubeconfig":
      return layout.kubeconfig(source.identity);
    case "encryption-config":
      return layout.encryptionConfig;
    case "static-token":
      return layout.staticToken;
  }
}

/** Runs an add-on's node step (files, then commands) on its nodes over their pinned ssh. */
export function addonNodeStepRunner(nodes: Nodes): (step: NodeStep) => Promise<void> {
  return async (step) => {
    const targets = nodes.names.map((name, i) => ({ name, controller: i === 0 }));
    for (const node of stepNodes(step, targets)) {
      await nodes.remote(node.name).exec("sh -s", {
        stdin: nodeStepScript(step),
        timeoutMs: 10 * 60_000,
        what: `node step ${q(step.id)} on ${q(node.name)}`,
      });
    }
  };
}
