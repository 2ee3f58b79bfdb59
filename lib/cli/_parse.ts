/**
 * Parsers of command-line option values shared by the commands, so that the same mistake gets
 * the same message from each of them.
 *
 * @module
 */
import { q, UsageError } from "../errors/mod.ts";

/** The parser of a `<seconds>` option named `flag`: more than 0, at most an hour; gives ms. */
export function parseSeconds(flag: string): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0 || n > 3600) {
      throw new UsageError(`Invalid ${flag} ${q(value)}`, {
        hint: "Give seconds, more than 0 and at most 3600",
      });
    }
    return n * 1000;
  };
}
