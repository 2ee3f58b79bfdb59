import assert from "node:assert/strict";
import { KnownHosts } from "./_known_hosts.ts";

const KEY = (n: number) =>
  `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(n).padStart(2, "0")}${"A".repeat(40)}`;

Deno.test("known_hosts: pins of many nodes at once all land", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/known_hosts`;
    await Promise.all(
      Array.from(
        { length: 12 },
        (_, i) => new KnownHosts(path).pin(`10.0.0.${i + 2}`, 22, KEY(i), { node: `vm${i}` }),
      ),
    );
    const known = new KnownHosts(path);
    for (let i = 0; i < 12; i++) {
      assert.equal((await known.lookup(`10.0.0.${i + 2}`, 22)).length, 1, `vm${i} lost`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("host key changed: the printed ssh-keygen command quotes the known_hosts path", async () => {
  const { HostKeyChangedError } = await import("./_known_hosts.ts");
  const path = "/home/u/my project's dir/generated/dtk/ssh/known_hosts";
  const error = new HostKeyChangedError("vm1", "[127.0.0.1]:2222", "SHA256:a", "SHA256:b", path);
  const quoted = `'${path.replaceAll("'", `'\\''`)}'`;
  assert.ok(error.hint?.includes(`ssh-keygen -f ${quoted} -R '[127.0.0.1]:2222'`), error.hint);
});
