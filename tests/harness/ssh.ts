/**
 * The harness's ssh client: system `ssh`/`scp`, key-only, with a known_hosts file holding the
 * pinned host keys (StrictHostKeyChecking=yes, never "no"), multiplexed through control sockets.
 *
 * @module
 */
import { join } from "node:path";
import type { Runner, RunOptions, RunResult } from "../../lib/exec/mod.ts";
import { writeFileAtomic } from "../../lib/fs/mod.ts";
import { pidAlive } from "./_util.ts";

export interface SshClientOptions {
  runner: Runner;
  /** Private key file (0600). */
  identity: string;
  /** known_hosts file with the pinned host keys. */
  knownHosts: string;
  /** Folder for the control sockets (short path: sockets are limited to 108 bytes). */
  controlDir: string;
}

export class SshClient {
  #options: SshClientOptions;
  #hosts = new Set<string>();

  constructor(options: SshClientOptions) {
    this.#options = options;
  }

  get knownHosts(): string {
    return this.#options.knownHosts;
  }

  get identity(): string {
    return this.#options.identity;
  }

  /** Options shared by ssh and scp. */
  commonOptions(): string[] {
    return [
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${this.#options.knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "HostKeyAlgorithms=ssh-ed25519",
      "-o",
      "ConnectTimeout=5",
      "-o",
      "ControlMaster=auto",
      "-o",
      "ControlPersist=60",
      "-o",
      `ControlPath=${join(this.#options.controlDir, "cm-%C")}`,
      "-o",
      "LogLevel=ERROR",
      "-i",
      this.#options.identity,
      "-F",
      "/dev/null",
    ];
  }

  /** Pins `hostKey` (`ssh-ed25519 AAAA…`) for `host`, replacing an earlier pin. */
  async pin(host: string, hostKey: string): Promise<void> {
    let lines: string[] = [];
    try {
      lines = (await Deno.readTextFile(this.#options.knownHosts)).split("\n").filter((l) =>
        l.length > 0 && l.split(" ")[0] !== host
      );
    } catch { /* first pin */ }
    const [type, key] = hostKey.trim().split(/\s+/);
    lines.push(`${host} ${type} ${key}`);
    await writeFileAtomic(this.#options.knownHosts, lines.join("\n") + "\n");
  }

  /** Runs a shell command on `host` as root. */
  run(host: string, command: string, options: RunOptions = {}): Promise<RunResult> {
    this.#hosts.add(host);
    return this.#options.runner.run(
      ["ssh", ...this.commonOptions(), `root@${host}`, "--", command],
      { what: `ssh ${host} ${command.slice(0, 60)}`, timeoutMs: 60_000, ...options },
    );
  }

  /** Copies local files to `remotePath` on `host`. */
  copyTo(
    host: string,
    local: string[],
    remotePath: string,
    options: RunOptions = {},
  ): Promise<RunResult> {
    this.#hosts.add(host);
    return this.#options.runner.run(
      ["scp", "-q", ...this.commonOptions(), ...local, `root@${host}:${remotePath}`],
      { what: `scp to ${host}:${remotePath}`, timeoutMs: 120_000, ...options },
    );
  }

  /** PIDs of the control masters still running. */
  masterPids(): number[] {
    const pids: number[] = [];
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const cmd = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
        if (cmd.startsWith("ssh\0") && cmd.includes(this.#options.controlDir)) {
          if (pidAlive(Number(entry.name))) pids.push(Number(entry.name));
        }
      } catch { /* exited */ }
    }
    return pids;
  }

  /** Ends every control master this client started. */
  async close(): Promise<void> {
    await Promise.all([...this.#hosts].map((host) =>
      this.#options.runner.run(
        ["ssh", ...this.commonOptions(), "-O", "exit", `root@${host}`],
        { check: false, timeoutMs: 10_000 },
      ).catch(() => {})
    ));
    this.#hosts.clear();
    // A master whose node vanished may not answer -O exit: end it by PID.
    for (const pid of this.masterPids()) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* gone */ }
    }
  }
}
