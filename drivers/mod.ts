/**
 * The drivers' public face: pick the driver the config names.
 *
 * @module
 */
import type { Config } from "../lib/config/types.ts";
import { q, UsageError } from "../lib/errors/mod.ts";
import type { Runner } from "../lib/exec/mod.ts";
import { KvmDriver } from "./kvm/mod.ts";
import { VirtualBoxDriver } from "./virtualbox/mod.ts";
import type { Driver } from "./types.ts";

export type * from "./types.ts";
export { KvmDriver, kvmUnusable, realHost } from "./kvm/mod.ts";
export type { HostProbe, KvmDriverOptions } from "./kvm/mod.ts";
export { VirtualBoxDriver } from "./virtualbox/mod.ts";
export type { VirtualBoxDriverOptions } from "./virtualbox/mod.ts";

/**
 * Builds the test-only `test-nspawn` driver. It lives in `tests/harness/` and is never in dtk's
 * module graph: the test entry `tests/harness/dtk.ts` hands it to `main()`.
 */
export type TestDriverFactory = (config: Config, options: { runner: Runner }) => Driver;

export interface CreateDriverOptions {
  runner: Runner;
  testDriver?: TestDriverFactory;
}

/** The driver for `config.virt`. */
export function createDriver(config: Config, options: CreateDriverOptions): Driver {
  switch (config.virt) {
    case "kvm":
      return new KvmDriver({
        runner: options.runner,
        uri: config.kvm.uri,
        accel: config.kvm.accel,
        network: config.kvm.network,
        libvirtNetwork: config.kvm.libvirtNetwork,
        kickstart: config.kvm.kickstart,
        osVariant: config.kvm.osVariant,
        linux: config.vm.linux,
        templateSource: config.vm.templateSource,
      });
    case "virtualbox":
      return new VirtualBoxDriver({
        runner: options.runner,
        hostNetworkInterface: config.vbox.hostNetworkInterface,
        hostOnlyNetwork: config.vbox.hostOnlyNetwork,
        kickstart: config.vbox.kickstart,
        vboxdir: config.vbox.vboxdir,
        linux: config.vm.linux,
      });
    case "test-nspawn":
      if (options.testDriver) return options.testDriver(config, { runner: options.runner });
      throw new UsageError(`The driver ${q(config.virt)} exists only in dtk's tests`, {
        hint: "Run dtk through its test entry, tests/harness/dtk.ts",
      });
  }
}
