/**
 * The config: schema, loading with `file:line:column` errors, defaults, and the validated
 * `Config` type.
 *
 * @module
 */
export * from "./types.ts";
export {
  BUILT_IN,
  DEFAULT_CONFIG_TEXT,
  defaultConfig,
  loadConfig,
  type LoadedConfig,
  type LoadOptions,
  parseConfig,
  type ParseOptions,
} from "./load.ts";
export { toYamlObject } from "./show.ts";
export { documentedKeys, type Field, SCHEMA } from "./_schema.ts";
export { ADDON_NAMES, ADDON_REQUIRES, type AddonName, CNI_ADDONS, isAddonName } from "./_addons.ts";
export { firstIp, nthSubnet24, parseCidr, parseIpv4 } from "./_net.ts";
