/**
 * Servers dtk does not control answering without end: a chunked body with no declared length
 * is cut off at its bound instead of filling memory (registry manifests, OCI chart manifests).
 */
import assert from "node:assert/strict";
import { RegistryClient } from "../../store/_image.ts";
import { resolveOciChart } from "../../store/_oci.ts";

/** A server whose every answer is an endless body; counts the 64 KiB chunks it got to send. */
function endlessServer(): { port: number; sent: () => number; close: () => Promise<void> } {
  let sent = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 16_384) return controller.close(); // 1 GiB, then stop in any case
        sent++;
        controller.enqueue(new Uint8Array(65536).fill(123));
      },
    });
    return new Response(body, {
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
    });
  });
  return { port: server.addr.port, sent: () => sent, close: () => server.shutdown() };
}

Deno.test("registry client: an endless manifest is refused at 4 MiB, not read to the end", async () => {
  const server = endlessServer();
  try {
    const client = new RegistryClient(`127.0.0.1:${server.port}/x/y:1`, { attempts: 1 });
    await assert.rejects(() => client.manifest("1"), /too big/);
    assert.ok(server.sent() < 1024, `the server sent ${server.sent()} chunks of 64 KiB`);
  } finally {
    await server.close();
  }
});

Deno.test("OCI chart: an endless manifest is refused, not read to the end", async () => {
  const server = endlessServer();
  try {
    await assert.rejects(
      () => resolveOciChart(`oci://127.0.0.1:${server.port}/charts/x:1.0.0`),
      /larger than/,
    );
    assert.ok(server.sent() < 1024, `the server sent ${server.sent()} chunks of 64 KiB`);
  } finally {
    await server.close();
  }
});
