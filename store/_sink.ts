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

  /** Free space of the current buffer, for a file to read into. Then call `filled`. */
  target(): Uint8Array {
    return this.#current.subarray(this.#fill);
  }

  /** Records `n` bytes read into `target()`. */
  async filled(n: number): Promise<void> {
    this.#throwIfFailed();
    this.#fill += n;
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
   * file holds every byte received (a resumed download re-hashes the file) and may be closed.
   */
  async abandon(): Promise<void> {
    await this.#pending;
    if (this.#failure === undefined && this.#fill > 0) {
      const data = this.#current.subarray(0, this.#fill);
      try {
        let off = 0;
        while (off < data.length) off += await this.#file.write(data.subarray(off));
      } catch {
        // The file is a prefix of the download either way.
      }
    }
    this.#fill = 0;
    this.#failure ??= new Error("abandoned");
  }

  async #submit(): Promise<void> {
    this.#throwIfFailed();
    const data = this.#current.subarray(0, this.#fill);
    this.#hash.update(data);
    this.#written += data.length;
    this.#fill = 0;
    // Writes are chained, so they land in order even though nobody awaits each one.
    this.#pending = this.#pending.then(async () => {
      if (this.#failure !== undefined) return;
      try {
        let off = 0;
        while (off < data.length) off += await this.#file.write(data.subarray(off));
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

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}

/** Size of a BYOB read: a read returns what the socket has, seldom more than a few 100 KiB. */
const READ_SIZE = 1 << 20;

/**
 * Reads all of `body` into `sink`. A BYOB read detaches the buffer it is given until it returns,
 * so reads go to a scratch buffer and are copied: the sink's buffers must survive a failed read
 * so `abandon` can keep their bytes. `onRead` runs after every read with its byte count.
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
      let scratch = new Uint8Array(READ_SIZE);
      for (;;) {
        const { done, value } = await byob.read(scratch);
        if (done) return;
        await sink.write(value);
        scratch = new Uint8Array(value.buffer as ArrayBuffer);
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
    const n = await file.read(sink.target());
    if (n === null) return;
    await sink.filled(n);
    options.onRead?.(n);
  }
}
