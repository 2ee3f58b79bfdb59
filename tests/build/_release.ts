/**
 * What a release is made of, shared by `deno task build`, the release workflow's tests, the bundle
 * test and the start-up benchmark: the targets and their artifact names, the version a build
 * stamps, the staged copy of the source it builds from, and the `SHA256SUMS` format.
 *
 * @module
 */
import { cp, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import denoJson from "../../deno.json" with { type: "json" };
import type { BuildInfo } from "../../lib/cli/_build_info.ts";

/** The source tree this module belongs to. */
export const ROOT: string = new URL("../../", import.meta.url).pathname;

/** A release target: the `deno compile --target` triple and the platform in the artifact name. */
export interface Target {
  triple: string;
  /** `<os>-<arch>` as `install.sh` spells it, e.g. `linux-amd64`. */
  platform: string;
}

/**
 * The supported targets: Linux only. KVM is Linux-only, and the VirtualBox driver builds x86 VMs
 * (`RedHat_64`, PIIX4 IDE, an x86_64 DVD) and `dtk doctor` reads the host's `/proc` and `/sys`,
 * so a macOS binary would not create a cluster (see the README's Install section).
 */
export const TARGETS: readonly Target[] = [
  { triple: "x86_64-unknown-linux-gnu", platform: "linux-amd64" },
  { triple: "aarch64-unknown-linux-gnu", platform: "linux-arm64" },
];

/**
 * Run by the release workflow on each binary from an empty folder (and by `deno task build` on
 * the one this host runs). Each must exit 0; `doctor` 0 or 3 (a host prerequisite missing is
 * its answer on a CI runner, not a crash).
 */
export const SMOKE_COMMANDS: readonly (readonly string[])[] = [
  ["version"],
  ["version", "--json"],
  ["help"],
  ["plan"],
  ["plan", "--json"],
  ["config", "show"],
  ["completion", "bash"],
];
export const SMOKE_DOCTOR: readonly string[] = ["doctor"];

/** `dtk-<version>-<platform>`, the name of a release binary. */
export function artifactName(version: string, target: Target): string {
  return `dtk-${version}-${target.platform}`;
}

const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * The version a build stamps: `DTK_VERSION` (the workflow passes the tag's), else the tag of a
 * tag push (`GITHUB_REF_NAME`), else `deno.json`'s with `-dev` (a local build is not a release).
 */
export function releaseVersion(env: (name: string) => string | undefined): string {
  const tag = env("GITHUB_REF_TYPE") === "tag" ? env("GITHUB_REF_NAME") : undefined;
  const given = env("DTK_VERSION") || tag;
  if (!given) return `${denoJson.version}-dev`;
  const version = given.replace(/^v/, "");
  if (!SEMVER.test(version)) {
    throw new Error(`Version "${given}" is not a semantic version like v1.2.3`);
  }
  return version;
}

/** The commit a build is made from: `GITHUB_SHA`, else the checkout's HEAD, else `unknown`. */
export async function buildCommit(env: (name: string) => string | undefined): Promise<string> {
  const sha = env("GITHUB_SHA");
  if (sha) return sha;
  const out = await new Deno.Command("git", {
    args: ["-C", ROOT, "rev-parse", "HEAD"],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  return out?.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
}

/** `SOURCE_DATE_EPOCH` (reproducible builds) or now, ISO 8601 UTC to the second. */
export function buildDate(env: (name: string) => string | undefined): string {
  const epoch = env("SOURCE_DATE_EPOCH");
  const date = epoch ? new Date(Number(epoch) * 1000) : new Date();
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** What stays out of the staged source: never part of dtk at run time. */
const UNSTAGED = new Set(["tests", "dist", "generated", ".git", ".ci", ".github", "node_modules"]);

/**
 * Copies the source tree, without `tests/` and the other folders dtk never needs, into a new temp
 * folder and stamps `lib/cli/_build_info.ts` there with `build`. The working tree is never
 * touched; a graph that reached into `tests/` fails to build from the copy.
 */
export async function stageSource(build: BuildInfo, options: { root?: string } = {}) {
  const root = options.root ?? ROOT;
  const dir = await mkdtemp(join(tmpdir(), "dtk-stage-"));
  await cp(root, dir, {
    recursive: true,
    filter: (source) => {
      const [top] = relative(root, source).split("/");
      return top === undefined || !UNSTAGED.has(top);
    },
  });
  const file = join(dir, "lib/cli/_build_info.ts");
  await Deno.writeTextFile(file, stampBuildInfo(await Deno.readTextFile(file), build));
  return dir;
}

const UNSTAMPED = "export const BUILD_INFO: BuildInfo | null = null;";

/** `lib/cli/_build_info.ts` with `BUILD_INFO` set to `build`. */
export function stampBuildInfo(source: string, build: BuildInfo): string {
  if (!source.includes(UNSTAMPED)) {
    throw new Error(`lib/cli/_build_info.ts no longer holds "${UNSTAMPED}": update stampBuildInfo`);
  }
  return source.replace(
    UNSTAMPED,
    `export const BUILD_INFO: BuildInfo | null = ${JSON.stringify(build)};`,
  );
}

/** The lowercase hex sha256 of a file. */
export async function sha256File(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** `SHA256SUMS` as `sha256sum` writes and `sha256sum -c` reads it: `<hex>  <name>` per line. */
export function formatSums(entries: readonly { name: string; sha256: string }[]): string {
  return [...entries].sort((a, b) => a.name.localeCompare(b.name))
    .map((e) => `${e.sha256}  ${e.name}\n`).join("");
}
