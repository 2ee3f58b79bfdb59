import assert from "node:assert/strict";
import { KvmDriver, type KvmDriverOptions } from "../../drivers/kvm/mod.ts";
import { VirtualBoxDriver } from "../../drivers/virtualbox/mod.ts";
import type { Runner, RunResult } from "../../lib/exec/mod.ts";

/** A runner that answers each command from a table and records what ran. */
function cannedRunner(answers: Record<string, string>): Runner & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    run(argv) {
      calls.push([...argv]);
      const key = Object.keys(answers).find((k) => argv.join(" ").includes(k));
      const result: RunResult = {
        code: key === undefined ? 1 : 0,
        success: key !== undefined,
        stdout: key === undefined ? "" : answers[key]!,
        stderr: "",
        elapsedMs: 0,
      };
      return Promise.resolve(result);
    },
  };
}

function kvm(runner: Runner, network: KvmDriverOptions["network"]) {
  return new KvmDriver({
    runner,
    uri: "qemu:///system",
    accel: "kvm",
    network,
    libvirtNetwork: "default",
    kickstart: "kvm.text.ks.cfg",
    osVariant: "",
    linux: "alma9",
    templateSource: "kickstart",
  });
}

const NET_XML = `<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
  </ip>
</network>
`;

Deno.test("host endpoint: kvm nat is the libvirt network's gateway", async () => {
  const runner = cannedRunner({ "net-dumpxml default": NET_XML });
  assert.deepEqual(await kvm(runner, "nat").hostEndpoint(), {
    listen: "192.168.122.1",
    reach: "192.168.122.1",
  });
  assert.deepEqual(runner.calls, [[
    "virsh",
    "--connect",
    "qemu:///system",
    "net-dumpxml",
    "default",
  ]]);
  assert.equal(
    await kvm(cannedRunner({}), "nat").hostEndpoint(),
    undefined,
    "no network, no route",
  );
});

Deno.test("host endpoint: kvm user-mode is slirp's host alias of the loopback", async () => {
  const runner = cannedRunner({});
  assert.deepEqual(await kvm(runner, "user").hostEndpoint(), {
    listen: "127.0.0.1",
    reach: "10.0.2.2",
  });
  assert.deepEqual(runner.calls, []);
});

Deno.test("host endpoint: virtualbox host-only is the host's address on that net; bridged has none", async () => {
  const list = "Name:            vboxnet0\nIPAddress:       192.168.60.1\n\n" +
    "Name:            vboxnet1\nIPAddress:       192.168.56.1\nNetworkMask:     255.255.255.0\n";
  const vbox = (options: { hostOnlyNetwork?: string; hostNetworkInterface?: string }) =>
    new VirtualBoxDriver(
      {
        runner: cannedRunner({ "list hostonlyifs": list }),
        hostOnlyNetwork: options.hostOnlyNetwork,
        hostNetworkInterface: options.hostNetworkInterface,
        kickstart: "vbox.text.ks.cfg",
        vboxdir: "/vms",
        linux: "alma9",
      } as ConstructorParameters<typeof VirtualBoxDriver>[0],
    );
  assert.deepEqual(await vbox({ hostOnlyNetwork: "192.168.56" }).hostEndpoint(), {
    listen: "192.168.56.1",
    reach: "192.168.56.1",
  });
  assert.equal(await vbox({ hostOnlyNetwork: "10.9.9" }).hostEndpoint(), undefined);
  assert.equal(await vbox({ hostNetworkInterface: "eth0" }).hostEndpoint(), undefined);
});
