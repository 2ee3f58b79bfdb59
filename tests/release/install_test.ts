/**
 * `install.sh` against a fake release on a loopback server, under every POSIX shell this machine
 * has (dash, bash in POSIX mode, busybox sh), with a PATH holding only the tools the script may use
 * and a fake `uname`: a good release (pinned and latest), a wrong checksum, a 404, a download cut
 * off mid-way, an unsupported OS and arch, and no checksum tool. After a failure nothing is
 * installed, a dtk already there is untouched, and no temp or staged file is left behind.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ROOT } from "../build/_release.ts";

const SCRIPT = join(ROOT, "install.sh");
const VERSION = "1.2.3";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

async function which(tool: string): Promise<string | undefined> {
  const r = await new Deno.Command("sh", {
    args: ["-c", `command -v "$1"`, "sh", tool],
    stdout: "piped",
    stderr: "null",
  }).output();
  const path = decoder.decode(r.stdout).trim();
  return r.success && path.startsWith("/") ? path : undefined;
}

/** What install.sh may call, besides the shell's built-ins; `uname` is faked. */
const TOOLS = ["mktemp", "rm", "cp", "chmod", "mv", "mkdir", "grep", "cut", "tr", "sed", "wc"];
const missingTools: string[] = [];
for (const tool of [...TOOLS, "curl", "sha256sum"]) {
  if (!(await which(tool))) missingTools.push(tool);
}

interface Shell {
  name: string;
  argv: string[];
}
const SHELLS: Shell[] = [];
for (
  const [name, argv] of [
    ["dash", ["dash"]],
    ["bash --posix", ["bash", "--posix"]],
    ["busybox sh", ["busybox", "sh"]],
  ] as const
) {
  const path = await which(argv[0]);
  if (path) SHELLS.push({ name, argv: [path, ...argv.slice(1)] });
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const fakeBinary = (platform: string): Uint8Array<ArrayBuffer> =>
  encoder.encode(`#!/bin/sh\necho "fake dtk ${VERSION} ${platform}"\n`);

/** A fake release server: `/<release>/<file>`; `cut` releases send half a body, then hang up. */
function startServer() {
  const amd64 = fakeBinary("linux-amd64");
  const arm64 = fakeBinary("linux-arm64");
  const sums = (amdHash: string) =>
    `${sha256(arm64)}  dtk-${VERSION}-linux-arm64\n${amdHash}  dtk-${VERSION}-linux-amd64\n`;
  const files = new Map<string, Uint8Array<ArrayBuffer>>([
    [`/good/SHA256SUMS`, encoder.encode(sums(sha256(amd64)))],
    [`/good/dtk-${VERSION}-linux-amd64`, amd64],
    [`/good/dtk-${VERSION}-linux-arm64`, arm64],
    [`/badsum/SHA256SUMS`, encoder.encode(sums("0".repeat(64)))],
    [`/badsum/dtk-${VERSION}-linux-amd64`, amd64],
    [`/nobinary/SHA256SUMS`, encoder.encode(sums(sha256(amd64)))],
    [`/cut/SHA256SUMS`, encoder.encode(sums(sha256(amd64)))],
    [`/noentry/SHA256SUMS`, encoder.encode(`${sha256(arm64)}  dtk-${VERSION}-linux-arm64\n`)],
  ]);
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      const path = new URL(req.url).pathname;
      requests.push(path);
      const bytes = files.get(path);
      return bytes
        ? new Response(bytes, { headers: { "content-type": "application/octet-stream" } })
        : new Response("Not Found\n", { status: 404 });
    },
  );
  const { port } = server.addr as Deno.NetAddr;
  const cut = startCutServer(files.get("/cut/SHA256SUMS")!, amd64);
  return {
    url: `http://127.0.0.1:${port}`,
    cutUrl: cut.url,
    requests,
    amd64,
    arm64,
    async close() {
      await server.shutdown();
      cut.close();
    },
  };
}

/**
 * A raw HTTP/1.1 server for a download cut off mid-way: SHA256SUMS whole, the binary with its
 * full Content-Length but half its bytes, then the connection closed.
 */
function startCutServer(sums: Uint8Array, binary: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serve = async (conn: Deno.Conn) => {
    try {
      const buffer = new Uint8Array(8192);
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buffer);
        if (n === null) return;
        head += decoder.decode(buffer.subarray(0, n));
      }
      const path = head.split(" ")[1] ?? "";
      const [body, sent] = path.endsWith("/SHA256SUMS")
        ? [sums, sums]
        : [binary, binary.subarray(0, binary.length >> 1)];
      await conn.write(
        encoder.encode(
          `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`,
        ),
      );
      await conn.write(sent);
    } catch {
      // The client went away first: nothing to serve.
    } finally {
      conn.close();
    }
  };
  (async () => {
    try {
      for await (const conn of listener) serve(conn);
    } catch {
      // Closed.
    }
  })();
  const { port } = listener.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${port}`, close: () => listener.close() };
}

/** A bin folder with only `tools` linked in, plus a `uname` that answers FAKE_UNAME_S/M. */
async function toolDir(dir: string, tools: readonly string[]): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  for (const tool of tools) {
    const path = await which(tool);
    if (path) await Deno.symlink(path, join(dir, tool));
  }
  await Deno.writeTextFile(
    join(dir, "uname"),
    '#!/bin/sh\ncase "$1" in -s) echo "$FAKE_UNAME_S" ;; -m) echo "$FAKE_UNAME_M" ;; *) exit 2 ;; esac\n',
    { mode: 0o755 },
  );
  return dir;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function listing(dir: string): Promise<string[]> {
  try {
    const names: string[] = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    return names.sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

Deno.test({
  name: `install.sh installs and refuses as it should, under each POSIX shell here${
    missingTools.length ? ` (skipped: ${missingTools.join(", ")} not installed)` : ""
  }`,
  ignore: missingTools.length > 0 || SHELLS.length === 0,
  async fn(t) {
    const work = await Deno.makeTempDir({ prefix: "dtk-install-test-" });
    const fake = startServer();
    try {
      const fullBin = await toolDir(join(work, "bin-full"), [...TOOLS, "curl", "sha256sum"]);
      const noSumBin = await toolDir(join(work, "bin-nosum"), [...TOOLS, "curl"]);
      let n = 0;

      const install = async (
        shell: Shell,
        options: {
          release?: string;
          env?: Record<string, string>;
          arch?: string;
          os?: string;
          bin?: string;
          existing?: string;
        } = {},
      ) => {
        const dir = join(work, `case-${++n}`);
        const home = join(dir, "home");
        const tmp = join(dir, "tmp");
        const target = join(dir, "target");
        await Deno.mkdir(home, { recursive: true });
        await Deno.mkdir(tmp);
        if (options.existing !== undefined) {
          await Deno.mkdir(target);
          await Deno.writeTextFile(join(target, "dtk"), options.existing, { mode: 0o755 });
        }
        const before = fake.requests.length;
        const r = await new Deno.Command(shell.argv[0]!, {
          args: [...shell.argv.slice(1), SCRIPT],
          cwd: dir,
          clearEnv: true,
          env: {
            PATH: options.bin ?? fullBin,
            HOME: home,
            TMPDIR: tmp,
            FAKE_UNAME_S: options.os ?? "Linux",
            FAKE_UNAME_M: options.arch ?? "x86_64",
            DTK_DOWNLOAD_URL: `${options.release === "cut" ? fake.cutUrl : fake.url}/${
              options.release ?? "good"
            }/`,
            DTK_INSTALL_DIR: target,
            ...options.env,
          },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(30_000),
        }).output();
        const result: Result = {
          code: r.code,
          stdout: decoder.decode(r.stdout),
          stderr: decoder.decode(r.stderr),
        };
        return {
          ...result,
          target,
          home,
          requests: fake.requests.slice(before),
          leftInTmp: await listing(tmp),
          installed: await listing(target),
        };
      };

      /** A refusal: exit 1, the message, nothing new installed, nothing left behind. */
      const refused = (r: Awaited<ReturnType<typeof install>>, message: RegExp, kept = false) => {
        assert.equal(r.code, 1, `exit code\n${r.stderr}`);
        assert.match(r.stderr, message);
        assert.match(r.stderr, /install\.sh: hint: /);
        assert.deepEqual(r.leftInTmp, [], "temp files left");
        assert.deepEqual(r.installed, kept ? ["dtk"] : [], "files in the install folder");
      };

      for (const shell of SHELLS) {
        await t.step(`${shell.name}: a pinned release installs, verified`, async () => {
          const r = await install(shell, { env: { DTK_VERSION: `v${VERSION}` } });
          assert.equal(r.code, 0, r.stderr);
          const path = join(r.target, "dtk");
          assert.deepEqual(await Deno.readFile(path), fake.amd64);
          assert.equal((await Deno.stat(path)).mode! & 0o777, 0o755);
          assert.deepEqual(r.installed, ["dtk"]);
          assert.deepEqual(r.leftInTmp, []);
          assert.match(r.stderr, new RegExp(`sha256 ${sha256(fake.amd64)} .*matches SHA256SUMS`));
          assert.match(r.stderr, /gh attestation verify .*\/target\/dtk --repo /);
          assert.match(r.stderr, /is not on PATH/);
          assert.deepEqual(r.requests, ["/good/SHA256SUMS", `/good/dtk-${VERSION}-linux-amd64`]);
          const run = await new Deno.Command(path, { stdout: "piped" }).output();
          assert.equal(decoder.decode(run.stdout), `fake dtk ${VERSION} linux-amd64\n`);
        });

        await t.step(`${shell.name}: latest, arm64, default folder, over an old dtk`, async () => {
          // No DTK_INSTALL_DIR: $HOME/.local/bin. The name comes from SHA256SUMS.
          const r = await install(shell, { arch: "aarch64", env: { DTK_INSTALL_DIR: "" } });
          assert.equal(r.code, 0, r.stderr);
          const path = join(r.home, ".local/bin/dtk");
          assert.deepEqual(await Deno.readFile(path), fake.arm64);
          assert.deepEqual(await listing(join(r.home, ".local/bin")), ["dtk"]);
          const again = await install(shell, { existing: "old dtk\n" });
          assert.equal(again.code, 0, again.stderr);
          assert.deepEqual(await Deno.readFile(join(again.target, "dtk")), fake.amd64);
          assert.deepEqual(again.installed, ["dtk"]);
        });

        await t.step(`${shell.name}: a wrong checksum installs nothing`, async () => {
          const r = await install(shell, { release: "badsum", existing: "old dtk\n" });
          refused(
            r,
            /error: checksum mismatch for dtk-1\.2\.3-linux-amd64: SHA256SUMS says 0{64}/,
            true,
          );
          assert.equal(await Deno.readTextFile(join(r.target, "dtk")), "old dtk\n");
        });

        await t.step(`${shell.name}: a 404 installs nothing`, async () => {
          refused(
            await install(shell, { release: "nobinary" }),
            /error: could not download http:\S+\/nobinary\/dtk-1\.2\.3-linux-amd64: HTTP 404/,
          );
          refused(
            await install(shell, { release: "norelease", env: { DTK_VERSION: "9.9.9" } }),
            /error: could not download http:\S+\/norelease\/SHA256SUMS: HTTP 404/,
          );
          refused(
            await install(shell, { release: "noentry" }),
            /error: SHA256SUMS at http:\S+ lists no dtk binary for linux-amd64/,
          );
        });

        await t.step(`${shell.name}: a download cut off leaves no partial file`, async () => {
          const r = await install(shell, { release: "cut", existing: "old dtk\n" });
          refused(r, /error: could not download http:\S+\/cut\/dtk-1\.2\.3-linux-amd64/, true);
          assert.equal(await Deno.readTextFile(join(r.target, "dtk")), "old dtk\n");
        });

        await t.step(
          `${shell.name}: an unsupported platform is refused before any download`,
          async () => {
            const riscv = await install(shell, { arch: "riscv64" });
            refused(riscv, /error: unsupported architecture "riscv64": dtk is released for amd64/);
            assert.deepEqual(riscv.requests, []);
            const mac = await install(shell, { os: "Darwin", arch: "arm64" });
            refused(mac, /error: macOS is not supported: dtk's KVM driver is Linux-only/);
            assert.deepEqual(mac.requests, []);
            refused(
              await install(shell, { os: "FreeBSD" }),
              /unsupported operating system "FreeBSD"/,
            );
          },
        );

        await t.step(`${shell.name}: no checksum tool, no install`, async () => {
          const r = await install(shell, { bin: noSumBin });
          refused(r, /error: neither sha256sum nor shasum is installed/);
          assert.deepEqual(r.requests, []);
        });
      }

      const shasum = await which("shasum");
      const wget = await which("wget");
      const shell = SHELLS[0]!;
      await t.step(
        `${shell.name}: shasum -a 256 where sha256sum is missing${
          shasum ? "" : " (skipped: no shasum)"
        }`,
        async () => {
          if (!shasum) return;
          const bin = await toolDir(join(work, "bin-shasum"), [...TOOLS, "curl", "shasum", "perl"]);
          const good = await install(shell, { bin });
          assert.equal(good.code, 0, good.stderr);
          assert.deepEqual(await Deno.readFile(join(good.target, "dtk")), fake.amd64);
          refused(await install(shell, { bin, release: "badsum" }), /checksum mismatch/);
        },
      );
      await t.step(
        `${shell.name}: wget where curl is missing${wget ? "" : " (skipped: no wget)"}`,
        async () => {
          if (!wget) return;
          const bin = await toolDir(join(work, "bin-wget"), [...TOOLS, "wget", "sha256sum"]);
          const good = await install(shell, { bin });
          assert.equal(good.code, 0, good.stderr);
          assert.deepEqual(await Deno.readFile(join(good.target, "dtk")), fake.amd64);
          refused(
            await install(shell, { bin, release: "nobinary" }),
            /could not download .*wget exit/,
          );
          refused(await install(shell, { bin, release: "badsum" }), /checksum mismatch/);
        },
      );
    } finally {
      await fake.close();
      await Deno.remove(work, { recursive: true });
    }
  },
});

const shellcheck = await which("shellcheck");
Deno.test({
  name: `install.sh: shellcheck -s sh finds nothing${
    shellcheck ? "" : " (skipped: shellcheck not installed)"
  }`,
  ignore: !shellcheck,
  async fn() {
    const r = await new Deno.Command(shellcheck!, {
      args: ["-s", "sh", "-f", "gcc", SCRIPT],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, decoder.decode(r.stdout) + decoder.decode(r.stderr));
  },
});

Deno.test("install.sh: the release workflow's stamp line is there, empty in the source", async () => {
  const text = await Deno.readTextFile(SCRIPT);
  assert.match(text, /^DTK_REPO_DEFAULT=$/m);
  assert.match(text, /^#!\/bin\/sh\n/);
});
