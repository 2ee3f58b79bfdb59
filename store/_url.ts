/**
 * URLs as dtk shows and records them: without credentials. A mirror or lock URL may carry a user
 * and password (`https://user:secret@host/…`) or a signed query (`?token=…`, S3's
 * `X-Amz-Signature`); none of that is printed or written to `meta/*.json`.
 *
 * @module
 */

/** Query parameters that carry a credential. */
const SECRET_PARAM = /token|signature|^sig$|credential|secret|password|passwd|^key$|apikey|auth/i;

/** `url` with its user, password and secret query values replaced by `REDACTED`. */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL (a folder): only a `user:pass@` shape can hide in it.
    return url.replace(/\/\/[^/@]*@/, "//");
  }
  if (!/^(https?|oci|file):$/.test(parsed.protocol)) return url;
  let changed = false;
  if (parsed.username !== "" || parsed.password !== "") {
    parsed.username = "";
    parsed.password = "";
    changed = true;
  }
  for (const key of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAM.test(key)) {
      parsed.searchParams.set(key, "REDACTED");
      changed = true;
    }
  }
  return changed ? parsed.href : url;
}

/** True when `url` carries something `redactUrl` removes. */
export function hasCredentials(url: string): boolean {
  return redactUrl(url) !== url;
}
