/**
 * A tiny OCI image archive for the node tier, built here because nothing can be pulled: busybox
 * and the libraries it links, tagged both as containerd's sandbox image (`pause`) and as a test
 * image. `ctr image import` takes it as it is; dtk preloads it from `images/`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { LocalRunner, type Runner } from "../../lib/exec/mod.ts";

export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
export const BOX_IMAGE = "dtk.test/box:1";

const FILES = [
  "/bin/busybox",
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/x86_64-linux-gnu/libresolv.so.2",
  "/lib64/ld-linux-x86-64.so.2",
];

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

interface Descriptor {
  digest: string;
  size: number;
}

/**
 * An OCI image layout being written in a folder: single-layer amd64 images, each named in the
 * index the way `ctr image import` reads names, then the folder as one tar. Every tar is written
 * with fixed order, times and owners, so the same input gives the same digests.
 */
export class OciLayout {
  readonly #dir: string;
  readonly #manifests: unknown[] = [];

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async create(dir: string): Promise<OciLayout> {
    await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
    return new OciLayout(dir);
  }

  async #blob(bytes: Uint8Array): Promise<Descriptor> {
    const hex = sha256(bytes);
    await Deno.writeFile(join(this.#dir, "blobs", "sha256", hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  }

  #json(value: unknown): Promise<Descriptor> {
    return this.#blob(new TextEncoder().encode(JSON.stringify(value)));
  }

  /** The folder `root` as an uncompressed layer blob. */
  async layer(root: string, options: { runner: Runner }): Promise<Descriptor> {
    const tar = `${this.#dir}.layer.tar`;
    await options.runner.run([
      "tar",
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-C",
      root,
      "-cf",
      tar,
      ".",
    ]);
    try {
      return await this.#blob(await Deno.readFile(tar));
    } finally {
      await Deno.remove(tar);
    }
  }

  /** An image `name` of `layer`, with `config` as its runtime config (`Cmd`, `Env`, …). */
  async image(
    name: string,
    options: { layer: Descriptor; config: Record<string, unknown> },
  ): Promise<void> {
    const config = await this.#json({
      architecture: "amd64",
      os: "linux",
      config: options.config,
      rootfs: { type: "layers", diff_ids: [options.layer.digest] },
    });
    const manifest = await this.#json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...options.layer }],
    });
    this.#manifests.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      annotations: {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.split(":").pop(),
      },
    });
  }

  /** The index, the layout marker, then the whole layout as the tar `path`. */
  async writeTar(path: string, options: { runner: Runner }): Promise<void> {
    await Deno.writeTextFile(
      join(this.#dir, "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: this.#manifests }),
    );
    await Deno.writeTextFile(
      join(this.#dir, "oci-layout"),
      JSON.stringify({ imageLayoutVersion: "1.0.0" }),
    );
    await Deno.mkdir(dirname(path), { recursive: true });
    await options.runner.run([
      "tar",
      "--sort=name",
      "--mtime=@0",
      "-C",
      this.#dir,
      "-cf",
      path,
      ".",
    ]);
  }
}

/** Writes `path` as an OCI layout tar holding the pause and box images (one shared layer). */
export async function writeTestImages(
  path: string,
  options: { runner?: Runner } = {},
): Promise<void> {
  const runner = options.runner ?? new LocalRunner();
  const work = await Deno.makeTempDir({ prefix: "dtk-image-" });
  try {
    const root = join(work, "rootfs");
    for (const file of FILES) {
      await Deno.mkdir(join(root, dirname(file)), { recursive: true });
      await Deno.copyFile(file, join(root, file));
      await Deno.chmod(join(root, file), 0o755);
    }
    for (const applet of ["sh", "sleep", "echo", "cat", "hostname"]) {
      await Deno.symlink("busybox", join(root, "bin", applet));
    }
    await Deno.mkdir(join(root, "proc"));
    await Deno.mkdir(join(root, "sys"));
    await Deno.mkdir(join(root, "dev"));
    await Deno.mkdir(join(root, "etc"));
    await Deno.writeTextFile(join(root, "etc", "hosts"), "");
    const layout = await OciLayout.create(join(work, "img"));
    const layer = await layout.layer(root, { runner });
    for (
      const [name, cmd] of [
        // PID 1 of a pod ignores a signal it has no handler for: a bare sleep would hold each
        // node's shutdown until systemd's 90 s stop timeout, as the real pause does not.
        [PAUSE_IMAGE, ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"]],
        [BOX_IMAGE, ["/bin/sh", "-c", "echo hello-from-a-dtk-node; exec sleep 2147483647"]],
      ] as const
    ) {
      await layout.image(name, { layer, config: { Cmd: cmd } });
    }
    await layout.writeTar(path, { runner });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
