/**
 * Runs a plan against the world through the `Driver`, `Remote` and `Runner` ports, resumably.
 *
 * @module
 */
export * from "./executor.ts";
export * from "./state.ts";
