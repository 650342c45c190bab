// A small read-only ZIP reader for torch.save archives: central directory (with ZIP64), stored entries
// read by byte range straight from the file, deflated entries inflated whole under a size cap.
// Every size and offset comes from a stranger's file, so each is checked against the file before use.
import { openSync, closeSync, fstatSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { EngineError } from '../errors.js';
import { readExact } from './file-io.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated; nothing else is read. */
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** Deflate cannot expand more than ~1032:1; a larger declared ratio is a forged size. */
const MAX_DEFLATE_RATIO = 1100;
/** Deflated entries are inflated in memory; torch never compresses, so this only bounds forged files. */
export const MAX_INFLATED_BYTES = 1 << 30;
const MAX_CENTRAL_DIRECTORY_BYTES = 256 * 1024 * 1024;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;

function u64(view: DataView, at: number): number {
  const value = view.getBigUint64(at, true);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(value);
}

export class ZipArchive {
  private readonly dataStarts = new Map<string, number>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly fileSize: number,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  static open(path: string): ZipArchive {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      return new ZipArchive(path, fd, size, readCentralDirectory(fd, size, path));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private fail(why: string): never {
    throw new EngineError('bad_zip', `${this.path} is not a readable archive: ${why}`);
  }

  entry(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /** Where the entry's (possibly compressed) bytes start in the file. */
  private dataStart(entry: ZipEntry): number {
    const cached = this.dataStarts.get(entry.name);
    if (cached !== undefined) return cached;
    const fail = (why: string): never => this.fail(`entry ${entry.name} ${why}`);
    if (entry.localHeaderOffset + 30 > this.fileSize) fail('has its header past the end of the file (truncated?)');
    const header = readExact(this.fd, 30, entry.localHeaderOffset, () => fail('has a truncated header'));
    const view = new DataView(header.buffer);
    if (view.getUint32(0, true) !== SIG_LOCAL) fail('does not start with a local file header');
    // Sizes in the local header may be zero (data descriptor follows); the central directory's are used.
    const start = entry.localHeaderOffset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
    if (start + entry.compressedSize > this.fileSize) {
      fail(`claims ${entry.compressedSize} bytes at offset ${start}, past the end of the ${this.fileSize}-byte file (truncated?)`);
    }
    this.dataStarts.set(entry.name, start);
    return start;
  }

  /** Bytes [begin, end) of the entry's uncompressed content, in fresh 8-byte-aligned memory. */
  read(entry: ZipEntry, begin = 0, end = entry.size): Uint8Array {
    if (this.closed) throw new EngineError('closed', `${this.path} was closed before reading ${entry.name}`);
    if (!(Number.isSafeInteger(begin) && Number.isSafeInteger(end) && 0 <= begin && begin <= end && end <= entry.size)) {
      this.fail(`a read of bytes ${begin}..${end} of entry ${entry.name} lies outside its ${entry.size} bytes`);
    }
    if (entry.flags & 1) this.fail(`entry ${entry.name} is encrypted`);
    const start = this.dataStart(entry);
    if (entry.method === 0) {
      if (entry.compressedSize !== entry.size) this.fail(`stored entry ${entry.name} has two different sizes`);
      return readExact(this.fd, end - begin, start + begin, () => this.fail(`entry ${entry.name} is truncated`));
    }
    if (entry.method !== 8) {
      this.fail(`entry ${entry.name} uses compression method ${entry.method}; only stored and deflated entries are read`);
    }
    if (entry.size > MAX_INFLATED_BYTES || entry.size > entry.compressedSize * MAX_DEFLATE_RATIO + 1024) {
      this.fail(`entry ${entry.name} declares ${entry.size} bytes from ${entry.compressedSize} compressed, ` +
        `beyond what this reader inflates (${MAX_INFLATED_BYTES} bytes, ratio ${MAX_DEFLATE_RATIO}); re-save it uncompressed`);
    }
    const compressed = readExact(this.fd, entry.compressedSize, start, () => this.fail(`entry ${entry.name} is truncated`));
    let inflated: Buffer;
    try {
      inflated = inflateRawSync(compressed, { maxOutputLength: Math.max(1, entry.size) });
    } catch (err) {
      return this.fail(`entry ${entry.name} does not inflate to its declared ${entry.size} bytes (${(err as Error).message})`);
    }
    if (inflated.byteLength !== entry.size) {
      this.fail(`entry ${entry.name} inflates to ${inflated.byteLength} bytes, not its declared ${entry.size}`);
    }
    return new Uint8Array(inflated.subarray(begin, end));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

function readCentralDirectory(fd: number, fileSize: number, path: string): Map<string, ZipEntry> {
  const fail = (why: string): never => {
    throw new EngineError('bad_zip', `${path} is not a readable archive: ${why}`);
  };
  const tailLength = Math.min(fileSize, 22 + 0xffff);
  const tail = readExact(fd, tailLength, fileSize - tailLength, () => fail('it could not be read'));
  const tailView = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tailView.getUint32(i, true) === SIG_EOCD && i + 22 + tailView.getUint16(i + 20, true) <= tailLength) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('it has no end-of-central-directory record (truncated, or not a zip)');
  let count = tailView.getUint16(eocd + 10, true);
  let cdSize = tailView.getUint32(eocd + 12, true);
  let cdOffset = tailView.getUint32(eocd + 16, true);
  if (eocd >= 20 && tailView.getUint32(eocd - 20, true) === SIG_ZIP64_LOCATOR) {
    const at = u64(tailView, eocd - 20 + 8);
    if (at + 56 > fileSize) fail('its ZIP64 end record lies past the end of the file');
    const record = readExact(fd, 56, at, () => fail('its ZIP64 end record is truncated'));
    const view = new DataView(record.buffer);
    if (view.getUint32(0, true) !== SIG_ZIP64_EOCD) fail('its ZIP64 locator points at no ZIP64 end record');
    count = u64(view, 32);
    cdSize = u64(view, 40);
    cdOffset = u64(view, 48);
  }
  if (cdOffset + cdSize > fileSize) fail(`its central directory (${cdSize} bytes at ${cdOffset}) lies past the end of the file`);
  if (cdSize > MAX_CENTRAL_DIRECTORY_BYTES) fail(`its central directory is ${cdSize} bytes, more than any weight file needs`);
  if (count * 46 > cdSize) fail(`it claims ${count} entries but its central directory holds at most ${Math.floor(cdSize / 46)}`);
  const cd = readExact(fd, cdSize, cdOffset, () => fail('its central directory is truncated'));
  const view = new DataView(cd.buffer);
  const decoder = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > cdSize || view.getUint32(at, true) !== SIG_CENTRAL) fail(`central directory entry ${i} is malformed`);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const next = at + 46 + nameLength + extraLength + commentLength;
    if (next > cdSize) fail(`central directory entry ${i} runs past the directory`);
    const name = decoder.decode(cd.subarray(at + 46, at + 46 + nameLength));
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    let localHeaderOffset = view.getUint32(at + 42, true);
    // ZIP64 extra field: 64-bit values for exactly those fields saturated at 0xFFFFFFFF, in this order.
    const extraEnd = at + 46 + nameLength + extraLength;
    for (let e = at + 46 + nameLength; e + 4 <= extraEnd;) {
      const id = view.getUint16(e, true);
      const length = view.getUint16(e + 2, true);
      if (e + 4 + length > extraEnd) fail(`entry ${name} has a malformed extra field`);
      if (id === 0x0001) {
        let f = e + 4;
        const take = (): number => {
          if (f + 8 > e + 4 + length) fail(`entry ${name} has a short ZIP64 field`);
          const v = u64(view, f);
          f += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      e += 4 + length;
    }
    if (![compressedSize, size, localHeaderOffset].every(Number.isSafeInteger)) fail(`entry ${name} has sizes beyond 2^53`);
    if (entries.has(name)) fail(`it holds two entries named ${name}`);
    entries.set(name, {
      name, method: view.getUint16(at + 10, true), flags: view.getUint16(at + 8, true), compressedSize, size, localHeaderOffset,
    });
    at = next;
  }
  return entries;
}
