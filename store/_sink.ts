/**
 * The one path bytes take into a store temp file: gathered into large buffers, hashed, and
 * written while the next buffer fills. Overlapping the write with the network read and the hash
 * is what lets a download keep pace with curl; writing each network chunk as it comes, and
 * waiting for it, made dtk half as fast.
 *
 * @module
 */
import type { Hash } from "node:crypto";

/** 2 MiB: large enough that per-write overhead vanishes, small enough for several jobs at once. */
const BUFFER_SIZE = 2 << 20;
/** One buffer filling, one being written, one spare so the reader rarely waits. */
const POOL_SIZE = 3;

/**
 * Hashes and writes bytes to `file` in order. Fill it either by reading straight into
 * {@linkcode HashingWriter.target} (BYOB streams, files) or by handing it chunks with
 * {@linkcode HashingWriter.write}. Call {@linkcode HashingWriter.finish} to flush, or
 * {@linkcode HashingWriter.abandon} on failure, before closing the file.
 */
export class HashingWriter {
  readonly #file: Deno.FsFile;
  readonly #hash: Hash;
  readonly #free: ArrayBuffer[] = [];
  #current: Uint8Array;
  #fill = 0;
  #pending: Promise<void> = Promise.resolve();
  #failure: unknown;
  #writeError: Error | undefined;
  #wake: (() => void) | undefined;
  #written = 0;

  constructor(file: Deno.FsFile, hash: Hash, options: { bufferSize?: number } = {}) {
    this.#file = file;
    this.#hash = hash;
    const size = options.bufferSize ?? BUFFER_SIZE;
    for (let i = 0; i < POOL_SIZE; i++) this.#free.push(new ArrayBuffer(size));
    this.#current = new Uint8Array(this.#free.pop()!);
  }

  /** The error of a failed file write (disk full, read-only store), if one failed. */
  get writeError(): Error | undefined {
    return this.#writeError;
  }

  /** Bytes accepted so far (hashed or waiting to be). */
  get bytes(): number {
    return this.#written + this.#fill;
  }

  /** Free space of the current buffer, to read into. Then pass what was read to `filled`. */
  target(): Uint8Array {
    return this.#current.subarray(this.#fill);
  }

  /**
   * Records `view`, the bytes just read into `target()`. A BYOB stream read hands the bytes back
   * in a new ArrayBuffer (the one given is detached), so the view's buffer becomes the current
   * one. Reading straight into the sink spares a copy of every byte.
   */
  async filled(view: Uint8Array): Promise<void> {
    this.#throwIfFailed();
    if (view.buffer !== this.#current.buffer) {
      this.#current = new Uint8Array(view.buffer as ArrayBuffer);
    }
    this.#fill += view.length;
    if (this.#fill === this.#current.length) await this.#submit();
  }

  /** Copies `chunk` in (for streams that cannot read into a given buffer). */
  async write(chunk: Uint8Array): Promise<void> {
    this.#throwIfFailed();
    let rest = chunk;
    while (rest.length > 0) {
      const n = Math.min(rest.length, this.#current.length - this.#fill);
      this.#current.set(rest.subarray(0, n), this.#fill);
      this.#fill += n;
      rest = rest.subarray(n);
      if (this.#fill === this.#current.length) await this.#submit();
    }
  }

  /** Hashes and writes what is buffered and waits for every write. Returns the byte count. */
  async finish(): Promise<number> {
    if (this.#fill > 0) await this.#submit();
    await this.#pending;
    this.#throwIfFailed();
    return this.#written;
  }

  /**
   * After a failure: waits for writes in flight and writes what is buffered, unhashed, so the
   * file holds the bytes received (a resumed download re-hashes the file) and may be closed.
   */
  async abandon(): Promise<void> {
    await this.#pending;
    // A BYOB read that failed took the current buffer with it: its bytes are gone, and what was
    // written before them is still a valid prefix.
    const lost = this.#current.buffer.byteLength === 0;
    if (this.#failure === undefined && this.#fill > 0 && !lost) {
      const data = this.#current.subarray(0, this.#fill);
      try {
        await this.#writeOut(data);
      } catch {
        // The file is a prefix of the download either way.
      }
    }
    this.#fill = 0;
    this.#failure ??= new Error("abandoned");
  }

  async #submit(): Promise<void> {
    this.#throwIfFailed();
    if (this.#current.buffer.byteLength === 0) {
      // Only a read that never returned its buffer gets here; never hash a hole.
      throw new Error("The read buffer was lost to a failed stream read");
    }
    const data = this.#current.subarray(0, this.#fill);
    this.#hash.update(data);
    this.#written += data.length;
    this.#fill = 0;
    // Writes are chained, so they land in order even though nobody awaits each one.
    this.#pending = this.#pending.then(async () => {
      if (this.#failure !== undefined) return;
      try {
        await this.#writeOut(data);
      } catch (error) {
        this.#failure = error;
        this.#writeError = error as Error;
      }
      this.#free.push(data.buffer as ArrayBuffer);
      this.#wake?.();
      this.#wake = undefined;
    });
    while (this.#free.length === 0) {
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    this.#throwIfFailed();
    this.#current = new Uint8Array(this.#free.pop()!);
  }

  /** Writes all of `data` (a file write may be short). */
  async #writeOut(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) off += await this.#file.write(data.subarray(off));
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}

/**
 * Reads all of `body` into `sink`, straight into the sink's buffers when the stream is a byte
 * stream (fetch bodies are). `onRead` runs after every read with its byte count.
 */
export async function pumpBody(
  body: ReadableStream<Uint8Array>,
  sink: HashingWriter,
  options: { onRead?: (n: number) => Promise<void> | void } = {},
): Promise<void> {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: take its chunks as they come.
  }
  const reader = byob ?? body.getReader();
  try {
    if (byob) {
      for (;;) {
        const { done, value } = await byob.read(sink.target());
        // Even the last read detaches the buffer; its empty view hands it back.
        if (value) await sink.filled(value);
        if (done) return;
        await options.onRead?.(value.length);
      }
    }
    const chunks = reader as ReadableStreamDefaultReader<Uint8Array>;
    for (;;) {
      const { done, value } = await chunks.read();
      if (done) return;
      await sink.write(value);
      await options.onRead?.(value.length);
    }
  } catch (error) {
    // Stop the transfer, whoever failed: the stream, the sink or the caller's check.
    await reader.cancel().catch(() => {});
    throw error;
  }
}

/** Reads all of `file` from its position into `sink`. */
export async function pumpFile(
  file: Deno.FsFile,
  sink: HashingWriter,
  options: { onRead?: (n: number) => void } = {},
): Promise<void> {
  for (;;) {
    const view = sink.target();
    const n = await file.read(view);
    if (n === null) return;
    await sink.filled(view.subarray(0, n));
    options.onRead?.(n);
  }
}
