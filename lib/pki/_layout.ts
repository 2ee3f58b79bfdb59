/**
 * Where a cluster's keys, certificates and kubeconfigs live: defined in `lib/paths`, so that
 * commands can find them without loading the X.509 code.
 *
 * @module
 */
export { type PkiLayout, pkiLayout } from "../paths/mod.ts";
