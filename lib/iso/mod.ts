/**
 * A writer of small ISO 9660 images with Joliet names, for the seeds dtk hands to VMs: the
 * Kickstart volume `OEMDRV`, VirtualBox's `CFGENP0S8` network volume and cloud-init's `cidata`.
 * It holds one flat folder of small files, which is all these need, and is byte-for-byte
 * deterministic: every timestamp comes from `SOURCE_DATE_EPOCH` (default 0) and files are sorted.
 *
 * Layout: 16 empty sectors, the primary descriptor (ISO names), the Joliet supplementary
 * descriptor (Unicode names, what Linux mounts by default), the terminator, four path tables,
 * the two root folders, then the file data shared by both trees.
 *
 * @module
 */
import { q, UsageError } from "../errors/mod.ts";
import { writeFileAtomic } from "../fs/mod.ts";

const SECTOR = 2048;
const encoder = new TextEncoder();

/** One file of the image. */
export interface IsoFile {
  /** Name in the root folder (no `/`), at most 64 characters. */
  name: string;
  data: string | Uint8Array;
}

export interface IsoOptions {
  /** Volume label, e.g. `OEMDRV`, `CFGENP0S8`, `cidata` (at most 32 ASCII characters). */
  label: string;
  /** Seconds since the epoch for every timestamp; default `$SOURCE_DATE_EPOCH`, else 0. */
  epoch?: number;
}

/** Builds the image in memory. */
export function buildIso(files: readonly IsoFile[], options: IsoOptions): Uint8Array {
  const label = options.label;
  if (label === "" || label.length > 32 || !/^[\x20-\x7e]+$/.test(label)) {
    throw new UsageError(`Invalid ISO volume label ${q(label)}`, {
      hint: "Use 1 to 32 printable ASCII characters, e.g. cidata",
    });
  }
  const epoch = options.epoch ?? sourceDateEpoch();
  const seen = new Set<string>();
  const entries = files.map((file) => {
    if (
      file.name === "" || file.name.includes("/") || file.name.includes("\0") ||
      [...file.name].length > 64
    ) {
      throw new UsageError(`Invalid file name for an ISO image: ${q(file.name)}`, {
        hint: "Use a plain name of at most 64 characters, without a slash",
      });
    }
    if (seen.has(file.name)) {
      throw new UsageError(`Duplicate file in an ISO image: ${q(file.name)}`);
    }
    seen.add(file.name);
    return {
      name: file.name,
      data: typeof file.data === "string" ? encoder.encode(file.data) : file.data,
    };
  });
  entries.sort((a, b) => compareBytes(ucs2(a.name), ucs2(b.name)));
  const isoNames = primaryNames(entries.map((e) => e.name));

  const primaryIds = isoNames.map((n) => encoder.encode(n));
  const jolietIds = entries.map((e) => ucs2(e.name));
  // ISO 9660 wants the primary tree sorted by its own identifiers.
  const primaryOrder = entries.map((_, i) => i).sort((a, b) =>
    compareBytes(primaryIds[a]!, primaryIds[b]!)
  );

  const primaryDirSize = dirSize(primaryOrder.map((i) => primaryIds[i]!));
  const jolietDirSize = dirSize(jolietIds);
  let lba = 23;
  const primaryDirLba = lba;
  lba += primaryDirSize / SECTOR;
  const jolietDirLba = lba;
  lba += jolietDirSize / SECTOR;
  const fileLba: number[] = [];
  for (const entry of entries) {
    fileLba.push(lba);
    lba += Math.ceil(entry.data.length / SECTOR);
  }
  const totalSectors = lba;
  const image = new Uint8Array(totalSectors * SECTOR);
  const date = dirDate(epoch);

  const writeDir = (
    at: number,
    size: number,
    order: number[],
    ids: Uint8Array[],
  ) => {
    const records: Uint8Array[] = [
      dirRecord(new Uint8Array([0]), at / SECTOR, size, true, date),
      dirRecord(new Uint8Array([1]), at / SECTOR, size, true, date),
      ...order.map((i) => dirRecord(ids[i]!, fileLba[i]!, entries[i]!.data.length, false, date)),
    ];
    let offset = at;
    for (const record of records) {
      // A record never crosses a sector boundary.
      if (Math.floor(offset / SECTOR) !== Math.floor((offset + record.length - 1) / SECTOR)) {
        offset = Math.ceil(offset / SECTOR) * SECTOR;
      }
      image.set(record, offset);
      offset += record.length;
    }
  };
  writeDir(primaryDirLba * SECTOR, primaryDirSize, primaryOrder, primaryIds);
  writeDir(jolietDirLba * SECTOR, jolietDirSize, entries.map((_, i) => i), jolietIds);
  entries.forEach((entry, i) => image.set(entry.data, fileLba[i]! * SECTOR));

  const volumeDate = descriptorDate(epoch);
  image.set(
    volumeDescriptor({
      type: 1,
      label: padAscii(label, 32),
      totalSectors,
      lPath: 19,
      mPath: 20,
      root: dirRecord(new Uint8Array([0]), primaryDirLba, primaryDirSize, true, date),
      volumeDate,
      text: (s, n) => padAscii(s, n),
    }),
    16 * SECTOR,
  );
  image.set(
    volumeDescriptor({
      type: 2,
      label: padUcs2(label.slice(0, 16), 32),
      totalSectors,
      lPath: 21,
      mPath: 22,
      root: dirRecord(new Uint8Array([0]), jolietDirLba, jolietDirSize, true, date),
      volumeDate,
      text: (s, n) => padUcs2(s, n),
      // UCS-2 level 3: the escape sequence that makes this descriptor Joliet.
      escape: encoder.encode("%/E"),
    }),
    17 * SECTOR,
  );
  image.set([255, ...encoder.encode("CD001"), 1], 18 * SECTOR);
  image.set(pathTable(primaryDirLba, true), 19 * SECTOR);
  image.set(pathTable(primaryDirLba, false), 20 * SECTOR);
  image.set(pathTable(jolietDirLba, true), 21 * SECTOR);
  image.set(pathTable(jolietDirLba, false), 22 * SECTOR);
  return image;
}

/** Builds the image and writes it atomically to `path` (mode 0600 by default: seeds hold keys). */
export async function writeIso(
  path: string,
  files: readonly IsoFile[],
  options: IsoOptions & { mode?: number },
): Promise<void> {
  await writeFileAtomic(path, buildIso(files, options), { mode: options.mode ?? 0o600 });
}

/** `SOURCE_DATE_EPOCH` as a number, or 0. */
export function sourceDateEpoch(): number {
  let raw: string | undefined;
  try {
    raw = Deno.env.get("SOURCE_DATE_EPOCH");
  } catch {
    raw = undefined;
  }
  if (raw === undefined || raw === "") return 0;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new UsageError(`Invalid SOURCE_DATE_EPOCH ${q(raw)}`, {
      hint: "Set it to a whole number of seconds since 1970, or unset it",
    });
  }
  return value;
}

// ISO level 2 names: upper case d-characters, a dot, version ";1"; unique within the folder.
function primaryNames(names: string[]): string[] {
  const used = new Set<string>();
  return names.map((name) => {
    const dot = name.lastIndexOf(".");
    const clean = (s: string) => s.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
    let base = clean(dot > 0 ? name.slice(0, dot) : name);
    const ext = clean(dot > 0 ? name.slice(dot + 1) : "").slice(0, 8);
    base = base.slice(0, 28 - ext.length);
    let candidate = `${base}.${ext}`;
    for (let n = 1; used.has(candidate); n++) {
      const suffix = `_${n}`;
      candidate = `${base.slice(0, 28 - ext.length - suffix.length)}${suffix}.${ext}`;
    }
    used.add(candidate);
    return `${candidate};1`;
  });
}

function dirSize(ids: Uint8Array[]): number {
  let offset = 34 * 2;
  for (const id of ids) {
    const length = recordLength(id.length);
    if (Math.floor(offset / SECTOR) !== Math.floor((offset + length - 1) / SECTOR)) {
      offset = Math.ceil(offset / SECTOR) * SECTOR;
    }
    offset += length;
  }
  return Math.ceil(offset / SECTOR) * SECTOR;
}

function recordLength(idLength: number): number {
  return 33 + idLength + (idLength % 2 === 0 ? 1 : 0);
}

function dirRecord(
  id: Uint8Array,
  lba: number,
  size: number,
  directory: boolean,
  date: Uint8Array,
): Uint8Array {
  const record = new Uint8Array(recordLength(id.length));
  record[0] = record.length;
  both32(record, 2, lba);
  both32(record, 10, size);
  record.set(date, 18);
  record[25] = directory ? 2 : 0;
  both16(record, 28, 1);
  record[32] = id.length;
  record.set(id, 33);
  return record;
}

function pathTable(rootLba: number, little: boolean): Uint8Array {
  const table = new Uint8Array(10);
  table[0] = 1;
  new DataView(table.buffer).setUint32(2, rootLba, little);
  new DataView(table.buffer).setUint16(6, 1, little);
  return table;
}

function volumeDescriptor(options: {
  type: number;
  label: Uint8Array;
  totalSectors: number;
  lPath: number;
  mPath: number;
  root: Uint8Array;
  volumeDate: Uint8Array;
  text: (s: string, n: number) => Uint8Array;
  escape?: Uint8Array;
}): Uint8Array {
  const d = new Uint8Array(SECTOR);
  const view = new DataView(d.buffer);
  d[0] = options.type;
  d.set(encoder.encode("CD001"), 1);
  d[6] = 1;
  d.set(options.text("LINUX", 32), 8);
  d.set(options.label, 40);
  both32(d, 80, options.totalSectors);
  if (options.escape) d.set(options.escape, 88);
  both16(d, 120, 1);
  both16(d, 124, 1);
  both16(d, 128, SECTOR);
  both32(d, 132, 10);
  view.setUint32(140, options.lPath, true);
  view.setUint32(148, options.mPath, false);
  d.set(options.root, 156);
  d.set(options.text("", 128), 190);
  d.set(options.text("", 128), 318);
  d.set(options.text("", 128), 446);
  d.set(options.text("DTK", 128), 574);
  d.set(options.text("", 37), 702);
  d.set(options.text("", 37), 739);
  d.set(options.text("", 37), 776);
  d.set(options.volumeDate, 813);
  d.set(options.volumeDate, 830);
  d.set(notSpecifiedDate(), 847);
  d.set(notSpecifiedDate(), 864);
  d[881] = 1;
  return d;
}

function both16(target: Uint8Array, at: number, value: number): void {
  const view = new DataView(target.buffer, target.byteOffset);
  view.setUint16(at, value, true);
  view.setUint16(at + 2, value, false);
}

function both32(target: Uint8Array, at: number, value: number): void {
  const view = new DataView(target.buffer, target.byteOffset);
  view.setUint32(at, value, true);
  view.setUint32(at + 4, value, false);
}

function dirDate(epoch: number): Uint8Array {
  const t = new Date(epoch * 1000);
  return new Uint8Array([
    t.getUTCFullYear() - 1900,
    t.getUTCMonth() + 1,
    t.getUTCDate(),
    t.getUTCHours(),
    t.getUTCMinutes(),
    t.getUTCSeconds(),
    0,
  ]);
}

function descriptorDate(epoch: number): Uint8Array {
  const t = new Date(epoch * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const text = `${p(t.getUTCFullYear(), 4)}${p(t.getUTCMonth() + 1)}${p(t.getUTCDate())}` +
    `${p(t.getUTCHours())}${p(t.getUTCMinutes())}${p(t.getUTCSeconds())}00`;
  return new Uint8Array([...encoder.encode(text), 0]);
}

function notSpecifiedDate(): Uint8Array {
  return new Uint8Array([...encoder.encode("0".repeat(16)), 0]);
}

function padAscii(text: string, length: number): Uint8Array {
  return encoder.encode(text.padEnd(length, " ").slice(0, length));
}

function ucs2(text: string): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    out[i * 2] = text.charCodeAt(i) >> 8;
    out[i * 2 + 1] = text.charCodeAt(i) & 0xff;
  }
  return out;
}

function padUcs2(text: string, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const encoded = ucs2(text.slice(0, bytes / 2));
  out.set(encoded);
  for (let i = encoded.length; i + 1 < bytes; i += 2) {
    out[i] = 0;
    out[i + 1] = 0x20;
  }
  return out;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
