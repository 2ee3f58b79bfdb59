/**
 * The facts of a release build. `null` here, in the source tree: `tests/build/build.ts` writes
 * this file into the staged copy of the source it compiles, with the version from the tag, so no
 * hand-edited constant can drift from the release it names.
 *
 * @module
 */

/** Stamped at build time. */
export interface BuildInfo {
  /** The release version, from the tag (`v1.2.3` → `1.2.3`). */
  version: string;
  /** The full git commit the binary was built from. */
  commit: string;
  /** When it was built, ISO 8601 UTC. */
  date: string;
}

export const BUILD_INFO: BuildInfo | null = null;
