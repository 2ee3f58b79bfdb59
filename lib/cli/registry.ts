/**
 * `dtk registry`: serves the lock's container images from the store, read-only, until
 * interrupted.
 *
 * @module
 */
import type { Command } from "commander";
import { resolve } from "node:path";
import { escapeLines, q, UsageError } from "../errors/mod.ts";
import { lockPath, storeDir } from "../paths/mod.ts";
import { type Lockfile, openStore, requireLock } from "../../store/mod.ts";
import type { CliContext, GlobalOptions } from "./context.ts";

/** The bound of a stop: requests in flight get this long, then their streams end. */
const STOP_MS = 800;

function refOf(lock: Lockfile, name: string): string {
  const ref = (lock.artifacts[name] as unknown as { ref?: unknown } | undefined)?.ref;
  return typeof ref === "string" ? ref : name;
}

export function registerRegistryCommand(program: Command, ctx: CliContext): void {
  program
    .command("registry")
    .description("Serve the lock's container images from the store (read-only OCI registry)")
    .option(
      "--listen <host:port>",
      "Address to serve on; port 0 picks a free one (default: 127.0.0.1:5380)",
    )
    .option("--lock <file>", "Lock file (default: dtk.lock beside the config)")
    .addHelpText(
      "after",
      `
Serves GET and HEAD of /v2/<name>/manifests/<tag|digest> and /v2/<name>/blobs/<digest> for the
images of the lock (kind "image"), and nothing else: tags resolve only through the lock, there
is no push. <name> is the repository without the registry host; containerd's ?ns=<registry>
picks the registry. Prints the address it serves on; stops on Ctrl-C or SIGTERM.
Pull with e.g.: skopeo inspect --tls-verify=false docker://127.0.0.1:5380/pause:3.10`,
    )
    .action(async function (this: Command) {
      const opts = this.optsWithGlobals() as GlobalOptions & { listen?: string; lock?: string };
      const config = await ctx.loadConfig(opts);
      const registry = await import("../registry/mod.ts");
      const listen = opts.listen === undefined
        ? { hostname: "127.0.0.1", port: registry.DEFAULT_REGISTRY_PORT }
        : registry.parseListen(opts.listen);
      if (listen === undefined) {
        throw new UsageError(`Invalid --listen ${q(opts.listen)}`, {
          hint: "Give HOST:PORT, e.g. 127.0.0.1:5380, [::1]:5380 or :5380 for every address",
        });
      }
      const path = opts.lock ? resolve(ctx.cwd, opts.lock) : lockPath(config);
      const lock = await requireLock(path);
      const store = openStore(storeDir(config, ctx.env));
      const { server, index } = await registry.serveLock(lock, {
        store,
        hostname: listen.hostname,
        port: listen.port,
        lockPath: path,
        onError: (error) =>
          ctx.out.error(`registry: ${escapeLines(String((error as Error).message ?? error))}`),
      });
      // Both signals stop it: Ctrl-C in a terminal, SIGTERM from a service manager.
      const handlers: [Deno.Signal, () => void][] = [];
      const stopped = new Promise<string>((resolve) => {
        for (const signal of ["SIGINT", "SIGTERM"] as const) {
          const handler = () => resolve(signal);
          handlers.push([signal, handler]);
          Deno.addSignalListener(signal, handler);
        }
        server.finished.then(() => resolve("server closed"));
      });
      const url = `http://${server.address}`;
      if (opts.json) {
        ctx.out.data(JSON.stringify({
          address: server.address,
          url,
          images: index.images.map((i) => ({
            name: i.name,
            ref: refOf(lock, i.name),
            hash: `sha256:${i.hex}`,
          })),
        }));
      } else {
        ctx.out.data(url);
        ctx.out.info(
          `Serving ${index.images.length} image(s) of ${path} from ${store.dir} (Ctrl-C to stop):`,
        );
        for (const image of index.images) {
          ctx.out.info(
            `  ${server.address}/${image.ref.repository}@sha256:${image.hex}  ${
              refOf(lock, image.name)
            }`,
          );
        }
      }
      const why = await stopped.finally(() => {
        for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
      });
      const { graceful } = await server.shutdown(STOP_MS);
      ctx.out.info(
        `Stopped (${why}${graceful ? "" : ", requests still in flight were cut off"})`,
      );
    });
}
