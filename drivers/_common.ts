/**
 * What both drivers say the same way.
 *
 * @module
 */
import { DtkError, q } from "../lib/errors/mod.ts";
import type { TemplateSpec } from "./types.ts";

/** The error for an operation on a VM that is not there. */
export function missing(name: string): DtkError {
  return new DtkError(`VM ${q(name)} does not exist`, {
    hint: "Create the cluster first: dtk cluster create",
  });
}

/** A medium (ISO, image) the template needs, or an error saying which is missing. */
export function requireMedia(spec: TemplateSpec, key: keyof TemplateSpec["media"]): string {
  const path = spec.media[key];
  if (!path) {
    throw new DtkError(`No ${q(key)} medium was given for template VM ${q(spec.name)}`, {
      hint: "Run dtk fetch, then try again",
    });
  }
  return path;
}
