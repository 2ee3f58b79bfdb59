/**
 * Real upstream registries for the image tests and the bench: Debian's `docker-registry`
 * (distribution) on 127.0.0.1, a free port, its own config file and storage folder, stopped by
 * its PID; images pushed to it with `skopeo copy` from OCI layouts the tests build.
 *
 * @module
 */
import { join } from "node:path";
import { type Daemon, freePort, startDaemon, waitUntil } from "../pki/_proc.ts";

/** The tools these tests need that are missing on this host. */
export async function missingTools(tools: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const tool of tools) {
    const found = await new Deno.Command("sh", {
      args: ["-c", `command -v ${tool}`],
      stdout: "null",
      stderr: "null",
    }).output();
    if (found.code !== 0) missing.push(tool);
  }
  return missing;
}

export interface Upstream {
  /** `127.0.0.1:<port>`. */
  host: string;
  daemon: Daemon;
  stop(): Promise<void>;
}

/** Starts `docker-registry` with storage under `dir`; resolves once `/v2/` answers. */
export async function startUpstream(dir: string): Promise<Upstream> {
  const port = freePort();
  const host = `127.0.0.1:${port}`;
  await Deno.mkdir(join(dir, "data"), { recursive: true });
  const config = join(dir, "registry.yml");
  await Deno.writeTextFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "data")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: ${host}`,
      "",
    ].join("\n"),
  );
  const daemon = await startDaemon(
    ["docker-registry", "serve", config],
    join(dir, "registry.log"),
  );
  try {
    await waitUntil(`docker-registry to answer on ${host}/v2/`, async () => {
      try {
        const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    }, { timeoutMs: 20_000, daemon });
  } catch (error) {
    await daemon.stop();
    throw new Error(`${(error as Error).message}\n${await daemon.output()}`);
  }
  return { host, daemon, stop: () => daemon.stop() };
}

/** Runs skopeo (no signature policy: the images are the tests' own), bounded in time. */
export async function skopeo(
  args: string[],
  options: { timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("skopeo", {
    args: ["--insecure-policy", ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 120_000),
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Pushes `oci:<layout>:<name>` to `docker://<host>/<ref>` over plain HTTP (`all`: an index whole). */
export async function push(
  layout: string,
  name: string,
  target: string,
  options: { all?: boolean } = {},
): Promise<void> {
  const r = await skopeo([
    "copy",
    ...(options.all ? ["--all"] : []),
    "--dest-tls-verify=false",
    // The digests the test built are the ones it checks: no recompression on the way.
    "--preserve-digests",
    `oci:${layout}:${name}`,
    `docker://${target}`,
  ]);
  if (r.code !== 0) throw new Error(`skopeo copy to ${target} failed:\n${r.stderr}`);
}
