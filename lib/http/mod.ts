/**
 * Reading an HTTP body with a bound. `response.text()`, `json()` and `arrayBuffer()` take
 * whatever a server sends: a hostile or broken one can fill memory with a chunked body of no
 * declared length. These read chunk by chunk and stop at the limit.
 *
 * @module
 */

/**
 * The body of `body` (a Response or Request) as bytes, or undefined when it is longer than
 * `limit` bytes (declared or as it streams in); the rest is then cancelled, never read.
 */
export async function readAtMost(
  body: Pick<Response, "body" | "headers">,
  limit: number,
): Promise<Uint8Array | undefined> {
  const declared = Number(body.headers.get("content-length") ?? "0");
  if (declared > limit) {
    await body.body?.cancel().catch(() => {});
    return undefined;
  }
  if (body.body === null) return new Uint8Array();
  const reader = body.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** `readAtMost` as UTF-8 text. */
export async function readTextAtMost(
  body: Pick<Response, "body" | "headers">,
  limit: number,
): Promise<string | undefined> {
  const bytes = await readAtMost(body, limit);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}
