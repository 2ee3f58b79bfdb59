/**
 * The config: schema, loading with `file:line:column` errors, defaults, and the validated
 * `Config` type. Parsing YAML text directly: `parse.ts` (`parseConfig`, `DEFAULT_CONFIG_TEXT`).
 *
 * @module
 */
export * from "./types.ts";
// The YAML parser (`parse.ts`) is not re-exported: importing this module must not load it.
export { defaultConfig, loadConfig, type LoadedConfig, type LoadOptions } from "./load.ts";
export { toYamlObject } from "./show.ts";
export { documentedKeys, type Field, SCHEMA } from "./_schema.ts";
export {
  ADDON_CONFLICTS,
  ADDON_NAMES,
  ADDON_REQUIRES,
  ADDON_REQUIRES_ONE_OF,
  type AddonName,
  CNI_ADDONS,
  isAddonName,
} from "./_addons.ts";
export { firstIp, nthSubnet24, parseCidr, parseIpv4 } from "./_net.ts";
