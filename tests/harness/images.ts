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
    const layerPath = join(work, "layer.tar");
    await runner.run([
      "tar",
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-C",
      root,
      "-cf",
      layerPath,
      ".",
    ]);
    const img = join(work, "img");
    const blobs = join(img, "blobs", "sha256");
    await Deno.mkdir(blobs, { recursive: true });
    const blob = async (bytes: Uint8Array) => {
      const hex = sha256(bytes);
      await Deno.writeFile(join(blobs, hex), bytes);
      return { digest: `sha256:${hex}`, size: bytes.length };
    };
    const layer = await blob(await Deno.readFile(layerPath));
    const text = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const manifests = [];
    for (
      const [name, cmd] of [
        // PID 1 of a pod ignores a signal it has no handler for: a bare sleep would hold each
        // node's shutdown until systemd's 90 s stop timeout, as the real pause does not.
        [PAUSE_IMAGE, ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"]],
        [BOX_IMAGE, ["/bin/sh", "-c", "echo hello-from-a-dtk-node; exec sleep 2147483647"]],
      ] as const
    ) {
      const config = await blob(text({
        architecture: "amd64",
        os: "linux",
        config: { Cmd: cmd },
        rootfs: { type: "layers", diff_ids: [layer.digest] },
      }));
      const manifest = await blob(text({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
      }));
      manifests.push({
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: {
          "io.containerd.image.name": name,
          "org.opencontainers.image.ref.name": name.split(":").pop(),
        },
      });
    }
    await Deno.writeTextFile(
      join(img, "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests }),
    );
    await Deno.writeTextFile(
      join(img, "oci-layout"),
      JSON.stringify({ imageLayoutVersion: "1.0.0" }),
    );
    await Deno.mkdir(dirname(path), { recursive: true });
    await runner.run(["tar", "--sort=name", "--mtime=@0", "-C", img, "-cf", path, "."]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
