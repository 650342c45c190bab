// Builders for hostile and hand-made test files: pickles opcode by opcode, ZIP archives with chosen
// (or forged) sizes, and torch.save-shaped archives around them.
import { deflateRawSync } from 'node:zlib';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Bytes = number[] | Uint8Array;

export function concat(...parts: Bytes[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const le = (value: number, bytes: number): number[] => {
  const out: number[] = [];
  let v = BigInt(value);
  for (let i = 0; i < bytes; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
};
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Pickle opcodes, spelled as in CPython's pickletools. */
export const op = {
  proto: (n: number): Bytes => [0x80, n],
  stop: [0x2e],
  mark: [0x28],
  emptyDict: [0x7d],
  emptyTuple: [0x29],
  emptyList: [0x5d],
  tuple: [0x74],
  tuple1: [0x85],
  tuple2: [0x86],
  tuple3: [0x87],
  setitem: [0x73],
  setitems: [0x75],
  append: [0x61],
  reduce: [0x52],
  build: [0x62],
  newobj: [0x81],
  binpersid: [0x51],
  newFalse: [0x89],
  none: [0x4e],
  memoize: [0x94],
  stackGlobal: [0x93],
  obj: [0x6f],
  ext1: (code: number): Bytes => [0x82, code],
  binput: (i: number): Bytes => [0x71, i],
  binget: (i: number): Bytes => [0x68, i],
  int: (v: number): Bytes => (v < 256 ? [0x4b, v] : v < 65536 ? [0x4d, ...le(v, 2)] : v < 2 ** 31 ? [0x4a, ...le(v, 4)] : [0x8a, 8, ...le(v, 8)]),
  long1: (v: number): Bytes => [0x8a, 8, ...le(v, 8)],
  str: (s: string): Bytes => concat([0x58, ...le(utf8(s).length, 4)], utf8(s)),
  shortStr: (s: string): Bytes => concat([0x8c, utf8(s).length], utf8(s)),
  global: (module: string, name: string): Bytes => concat([0x63], utf8(`${module}\n${name}\n`)),
  inst: (module: string, name: string): Bytes => concat([0x69], utf8(`${module}\n${name}\n`)),
};

export const pickle = (...parts: Bytes[]): Uint8Array => concat(...parts);

/** `_rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())` as torch writes it. */
export function tensorPickle(storageClass: string, key: string, numel: number, offset: number, size: number[], stride: number[]): Uint8Array {
  const tuple = (xs: number[]): Bytes => concat(op.mark, ...xs.map(op.int), op.tuple);
  return concat(
    op.global('torch._utils', '_rebuild_tensor_v2'),
    op.mark,
    op.mark, op.str('storage'), op.global('torch', storageClass), op.str(key), op.str('cpu'), op.int(numel), op.tuple,
    op.binpersid,
    op.int(offset), tuple(size), tuple(stride), op.newFalse,
    op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce,
    op.tuple,
    op.reduce,
  );
}

/** A pickled dict {key: value-pickle, ...}. */
export function dictPickle(items: [string, Bytes][]): Uint8Array {
  return concat(op.emptyDict, op.mark, ...items.flatMap(([k, v]) => [op.str(k), v]), op.setitems);
}

export interface ZipFileSpec {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  /** Forge the uncompressed size written in the central directory. */
  declaredSize?: number;
  /** Forge the compressed size written in the central directory. */
  declaredCompressedSize?: number;
}

/** A ZIP archive; with zip64, every size and offset goes through the ZIP64 extra field and end records. */
export function buildZip(files: ZipFileSpec[], options: { zip64?: boolean } = {}): Uint8Array {
  const locals: Bytes[] = [];
  const centrals: Bytes[] = [];
  let offset = 0;
  for (const f of files) {
    const name = utf8(f.name);
    const body = f.deflate ? new Uint8Array(deflateRawSync(f.data)) : f.data;
    const method = f.deflate ? 8 : 0;
    const size = f.declaredSize ?? f.data.length;
    const compressedSize = f.declaredCompressedSize ?? body.length;
    const local = concat(le(0x04034b50, 4), le(20, 2), le(0, 2), le(method, 2), le(0, 4), le(0, 4),
      le(body.length, 4), le(f.data.length, 4), le(name.length, 2), le(0, 2), name, body);
    const wide = options.zip64 || size > 0xfffffffe || compressedSize > 0xfffffffe;
    const extra = wide ? concat(le(1, 2), le(24, 2), le(size, 8), le(compressedSize, 8), le(offset, 8)) : new Uint8Array(0);
    const small = (v: number): number => (wide ? 0xffffffff : v);
    centrals.push(concat(le(0x02014b50, 4), le(45, 2), le(45, 2), le(0, 2), le(method, 2), le(0, 4), le(0, 4),
      le(small(compressedSize), 4), le(small(size), 4), le(name.length, 2), le(extra.length, 2), le(0, 2), le(0, 2), le(0, 2), le(0, 4),
      le(small(offset), 4), name, extra));
    locals.push(local);
    offset += local.length;
  }
  const central = concat(...centrals);
  const tail: Bytes[] = [];
  if (options.zip64) {
    const eocd64At = offset + central.length;
    tail.push(concat(le(0x06064b50, 4), le(44, 8), le(45, 2), le(45, 2), le(0, 4), le(0, 4),
      le(files.length, 8), le(files.length, 8), le(central.length, 8), le(offset, 8)));
    tail.push(concat(le(0x07064b50, 4), le(0, 4), le(eocd64At, 8), le(1, 4)));
    tail.push(concat(le(0x06054b50, 4), le(0, 2), le(0, 2), le(0xffff, 2), le(0xffff, 2), le(0xffffffff, 4), le(0xffffffff, 4), le(0, 2)));
  } else {
    tail.push(concat(le(0x06054b50, 4), le(0, 2), le(0, 2), le(files.length, 2), le(files.length, 2), le(central.length, 4), le(offset, 4), le(0, 2)));
  }
  return concat(...locals, central, ...tail);
}

/** A torch.save-shaped archive: archive/data.pkl, archive/data/<key> blobs, archive/version. */
export function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array>, options: { deflate?: boolean; zip64?: boolean } = {}): Uint8Array {
  return buildZip([
    { name: 'archive/data.pkl', data: pkl, deflate: options.deflate },
    ...Object.entries(storages).map(([key, data]) => ({ name: `archive/data/${key}`, data, deflate: options.deflate })),
    { name: 'archive/version', data: utf8('3\n') },
  ], options);
}

/** A scratch folder for files written by one test file; remove() deletes it. */
export function scratchDir(label: string): { path(name: string): string; write(name: string, bytes: Uint8Array): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `likeness-${label}-`));
  return {
    path: (name) => join(dir, name),
    write: (name, bytes) => {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const bytesOfFloats = (values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);
