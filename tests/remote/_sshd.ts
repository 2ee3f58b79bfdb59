/**
 * A real OpenSSH server for tests: its own host key, its own authorized_keys, on 127.0.0.1 and a
 * free port, started as root and stopped by PID.
 *
 * @module
 */
import { join } from "node:path";

export const SSHD = "/usr/sbin/sshd";

/** Why a real sshd cannot run here, or `undefined` when it can. */
export function sshdUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "needs root to run sshd";
  for (const tool of [SSHD, "/usr/bin/ssh", "/usr/bin/ssh-keygen"]) {
    try {
      Deno.statSync(tool);
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

export async function keygen(path: string, comment = "dtk-test"): Promise<string> {
  const out = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`ssh-keygen failed: ${new TextDecoder().decode(out.stderr)}`);
  return (await Deno.readTextFile(`${path}.pub`)).trim();
}

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

export interface Sshd {
  dir: string;
  port: number;
  /** `ssh-ed25519 AAAA…` of the server. */
  hostKey: string;
  /** The client key sshd accepts. */
  clientKey: string;
  clientPublicKey: string;
  /** sshd's log so far (LogLevel VERBOSE). */
  log(): string;
  /** Successful logins so far = TCP connections that authenticated. */
  logins(): number;
  stop(): Promise<void>;
}

export async function startSshd(): Promise<Sshd> {
  const dir = await Deno.makeTempDir({ prefix: "dtk-sshd-" });
  try {
    await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    const hostKey = await keygen(join(dir, "host_ed25519"), "host");
    const clientPublicKey = await keygen(join(dir, "id_ed25519"), "client");
    await Deno.writeTextFile(join(dir, "authorized_keys"), `${clientPublicKey}\n`);
    const port = freePort();
    await Deno.writeTextFile(
      join(dir, "sshd_config"),
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${join(dir, "host_ed25519")}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        "PidFile none",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "LogLevel VERBOSE",
        "MaxSessions 50",
        "MaxStartups 50",
        "",
      ].join("\n"),
    );
    const child = new Deno.Command(SSHD, {
      args: ["-D", "-e", "-f", join(dir, "sshd_config")],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let log = "";
    const pump = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) log += decoder.decode(chunk, { stream: true });
    })();
    const deadline = Date.now() + 10_000;
    while (true) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        if (Date.now() > deadline) {
          child.kill("SIGKILL");
          await child.status;
          throw new Error(`sshd did not listen on ${port} within 10s: ${log}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return {
      dir,
      port,
      hostKey: hostKey.split(/\s+/).slice(0, 2).join(" "),
      clientKey: join(dir, "id_ed25519"),
      clientPublicKey,
      log: () => log,
      logins: () => (log.match(/Accepted publickey/g) ?? []).length,
      stop: async () => {
        // Per-connection sshd children outlive a SIGTERM to the listener: end them by parent PID.
        await new Deno.Command("pkill", { args: ["-TERM", "-P", String(child.pid)] }).output()
          .catch(() => {});
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        await child.status;
        await pump.catch(() => {});
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}
