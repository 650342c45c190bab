// A minimal torch.save writer for float32 state dicts: the zip layout torch ≥ 1.6 writes
// (<name>/data.pkl, <name>/data/<key>, <name>/version, stored uncompressed, 64-byte aligned data as
// torch aligns it), with a protocol-2 pickle of an OrderedDict of `_rebuild_tensor_v2` calls on
// FloatStorage persistent ids — the same globals torch writes and our reader allowlists. It exists so
// the smoke model set can ship files in the released checkpoints' format (body_pose_model.pth).
import { writeFile } from 'node:fs/promises';

export interface Float32Tensor {
  shape: readonly number[];
  data: Float32Array;
}

const enc = new TextEncoder();

let crcTable: Uint32Array | undefined;
function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Pickle protocol 2 pieces, as CPython's pickler emits them. */
class Pickler {
  private readonly parts: number[] = [];
  byte(...b: number[]): this { this.parts.push(...b); return this; }
  u32(v: number): this { return this.byte(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); }
  str(s: string): this { const b = enc.encode(s); this.byte(0x58).u32(b.length); this.parts.push(...b); return this; }
  global(module: string, name: string): this { this.byte(0x63); this.parts.push(...enc.encode(`${module}\n${name}\n`)); return this; }
  int(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new RangeError(`torch-write: integer ${v} out of range`);
    return v < 256 ? this.byte(0x4b, v) : this.byte(0x4a).u32(v);
  }
  tuple(xs: readonly number[]): this { this.byte(0x28); for (const x of xs) this.int(x); return this.byte(0x74); }
  emptyOrderedDict(): this { return this.global('collections', 'OrderedDict').byte(0x29, 0x52); }
  bytes(): Uint8Array { return Uint8Array.from(this.parts); }
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/** The pickle of {name: tensor} with storage keys '0', '1', … in order. */
function statePickle(names: readonly string[], tensors: readonly Float32Tensor[]): Uint8Array {
  const p = new Pickler().byte(0x80, 2).emptyOrderedDict().byte(0x28); // PROTO 2, OrderedDict(), MARK
  names.forEach((name, i) => {
    const t = tensors[i]!;
    p.str(name).global('torch._utils', '_rebuild_tensor_v2').byte(0x28); // key, fn, MARK (args)
    p.byte(0x28).str('storage').global('torch', 'FloatStorage').str(String(i)).str('cpu').int(t.data.length).byte(0x74, 0x51); // (…) BINPERSID
    p.int(0).tuple(t.shape).tuple(contiguousStrides(t.shape)).byte(0x89).emptyOrderedDict(); // offset, size, stride, False, hooks
    p.byte(0x74, 0x52); // TUPLE, REDUCE
  });
  return p.byte(0x75, 0x2e).bytes(); // SETITEMS, STOP
}

interface Entry {
  name: Uint8Array;
  data: Uint8Array;
}

/** A stored (uncompressed) zip; each entry's data starts on a 64-byte boundary, as torch writes them. */
function zip(entries: readonly Entry[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const headerLen = 30 + e.name.length;
    const pad = (64 - ((offset + headerLen + 4) % 64)) % 64;
    const extraLen = 4 + pad; // one 'padding' extra field (id 0x4b46 = 'FK', as torch's writer uses)
    const local = new DataView(new ArrayBuffer(headerLen + extraLen));
    const crc = crc32(e.data);
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, e.data.length, true);
    local.setUint32(22, e.data.length, true);
    local.setUint16(26, e.name.length, true);
    local.setUint16(28, extraLen, true);
    new Uint8Array(local.buffer).set(e.name, 30);
    local.setUint16(headerLen, 0x4b46, true);
    local.setUint16(headerLen + 2, pad, true);
    const cen = new DataView(new ArrayBuffer(46 + e.name.length));
    cen.setUint32(0, 0x02014b50, true);
    cen.setUint16(4, 20, true);
    cen.setUint16(6, 20, true);
    cen.setUint32(16, crc, true);
    cen.setUint32(20, e.data.length, true);
    cen.setUint32(24, e.data.length, true);
    cen.setUint16(28, e.name.length, true);
    cen.setUint32(42, offset, true);
    new Uint8Array(cen.buffer).set(e.name, 46);
    chunks.push(new Uint8Array(local.buffer), e.data);
    central.push(new Uint8Array(cen.buffer));
    offset += local.byteLength + e.data.length;
    if (offset > 0xffffffff) throw new RangeError('torch-write: archives over 4 GiB (zip64) are not supported');
  }
  const centralLen = central.reduce((n, c) => n + c.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, centralLen, true);
  end.setUint32(16, offset, true);
  const out = new Uint8Array(offset + centralLen + 22);
  let at = 0;
  for (const c of [...chunks, ...central, new Uint8Array(end.buffer)]) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** torch.save(state_dict) bytes for float32 tensors, in the given order. */
export function encodeTorchStateDict(tensors: Iterable<readonly [string, Float32Tensor]>, archiveName = 'archive'): Uint8Array {
  const list = [...tensors];
  for (const [name, t] of list) {
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new RangeError(`torch-write: ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
  }
  const entries: Entry[] = [{ name: enc.encode(`${archiveName}/data.pkl`), data: statePickle(list.map(([n]) => n), list.map(([, t]) => t)) }];
  list.forEach(([, t], i) => {
    entries.push({ name: enc.encode(`${archiveName}/data/${i}`), data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
  });
  entries.push({ name: enc.encode(`${archiveName}/version`), data: enc.encode('3\n') });
  return zip(entries);
}

export async function writeTorchStateDict(path: string, tensors: Iterable<readonly [string, Float32Tensor]>): Promise<void> {
  await writeFile(path, encodeTorchStateDict(tensors));
}
