import { equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fingerprint, HostKeyChangedError, hostPattern, KnownHosts } from "../../lib/remote/mod.ts";
import { keygen } from "./_sshd.ts";

const hasKeygen = (() => {
  try {
    return Deno.statSync("/usr/bin/ssh-keygen").isFile;
  } catch {
    return false;
  }
})();

Deno.test("hostPattern: bare host on 22, [host]:port otherwise", () => {
  equal(hostPattern("10.0.0.2", 22), "10.0.0.2");
  equal(hostPattern("127.0.0.1", 2222), "[127.0.0.1]:2222");
});

Deno.test({
  name: `KnownHosts: pin, re-pin, refuse a changed key, replace, remove${
    hasKeygen ? "" : " (skipped: no ssh-keygen)"
  }`,
  ignore: !hasKeygen,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dtk-kh-" });
    try {
      const a = await keygen(join(dir, "a"));
      const b = await keygen(join(dir, "b"));
      // ssh-keygen is the oracle for the fingerprint.
      const out = new Deno.Command("ssh-keygen", {
        args: ["-lf", join(dir, "a.pub")],
        stdout: "piped",
      })
        .outputSync();
      equal(new TextDecoder().decode(out.stdout).split(" ")[1], fingerprint(a));

      const kh = new KnownHosts(join(dir, "ssh", "known_hosts"));
      await Deno.mkdir(join(dir, "ssh"));
      await kh.pin("127.0.0.1", 2222, a, { node: "vm1" });
      await kh.pin("127.0.0.1", 2223, b, { node: "vm2" });
      await kh.pin("127.0.0.1", 2222, a, { node: "vm1" });
      const text = await Deno.readTextFile(kh.path);
      equal(text.split("\n").filter((l) => l.startsWith("[127.0.0.1]:2222 ")).length, 1);
      equal((Deno.statSync(kh.path).mode ?? 0) & 0o777, 0o600);
      await rejects(kh.pin("127.0.0.1", 2222, b, { node: "vm1" }), (e: unknown) => {
        ok(e instanceof HostKeyChangedError);
        ok(
          e.message.includes('node "vm1"') && e.message.includes(fingerprint(a)) &&
            e.message.includes(fingerprint(b)),
          e.message,
        );
        return true;
      });
      await kh.pin("127.0.0.1", 2222, b, { node: "vm1", replace: true });
      equal((await kh.lookup("127.0.0.1", 2222)).length, 1);
      equal((await kh.lookup("127.0.0.1", 2222))[0], b.split(" ").slice(0, 2).join(" "));
      equal((await kh.lookup("127.0.0.1", 2223))[0], b.split(" ").slice(0, 2).join(" "));
      // ssh-keygen reads the file: the entry is in the form ssh expects.
      const found = new Deno.Command("ssh-keygen", {
        args: ["-F", "[127.0.0.1]:2223", "-f", kh.path],
        stdout: "piped",
      }).outputSync();
      ok(found.success);
      equal(await kh.remove("127.0.0.1", 2222), true);
      equal(await kh.remove("127.0.0.1", 2222), false);
      equal((await kh.lookup("127.0.0.1", 2222)).length, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
