// torch.save checkpoints (.bin / .pt / .ckpt) read without Python and without trusting them.
// torch.save (≥ 1.6) writes a ZIP: `<archive>/data.pkl` (a protocol-2 pickle of the state dict whose
// tensors refer to storages by persistent id), `<archive>/data/<key>` (each storage's raw little-endian
// bytes), `version` and, in newer releases, `byteorder`. The pickle is run by a data-only machine
// with an allowlist of globals (torch-globals.ts); tensors are read lazily, honouring storage offset and
// strides, and always come out C-contiguous.
import { EngineError } from '../errors.js';
import { DTYPE_BYTES, checkedNumel, toFloat32, viewAs } from './dtype.js';
import type { Dtype, HostTensor, TensorData } from './dtype.js';
import { PyDict, PyList, PyTuple, describe, unpickle } from './pickle.js';
import type { PyValue } from './pickle.js';
import { TorchStorage, TorchStorageType, TorchTensor, torchGlobal } from './torch-globals.js';
import { ZipArchive } from './zip.js';
import type { ZipEntry } from './zip.js';

/** A state dict's pickle is kilobytes to a few megabytes; anything far larger is not a weight file. */
const MAX_PICKLE_BYTES = 64 * 1024 * 1024;
/** Bound the walk over nested dicts, so shared sub-dicts cannot multiply into billions of names. */
const MAX_VISITED_VALUES = 10_000_000;
const MAX_NESTING = 64;

export interface TorchTensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
}

function badCheckpoint(path: string, why: string): never {
  throw new EngineError('bad_checkpoint', `${path} is not a readable torch checkpoint: ${why}`);
}

/** A lazily read torch.save checkpoint. Close it when done. */
export class TorchCheckpoint {
  private constructor(
    readonly path: string,
    private readonly zip: ZipArchive,
    private readonly storageEntries: ReadonlyMap<string, ZipEntry>,
    private readonly tensors: ReadonlyMap<string, TorchTensor>,
  ) {}

  static open(path: string): TorchCheckpoint {
    const zip = ZipArchive.open(path);
    try {
      const pickles = [...zip.entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
      if (pickles.length !== 1) badCheckpoint(path, `it is a ZIP with ${pickles.length} <archive>/data.pkl entries, not a torch.save archive`);
      const prefix = pickles[0]!.slice(0, -'data.pkl'.length);
      const byteorder = zip.entry(`${prefix}byteorder`);
      if (byteorder && byteorder.size < 16 && new TextDecoder().decode(zip.read(byteorder)).trim() !== 'little') {
        throw new EngineError('unsupported_weights', `${path} was saved on a big-endian machine; re-save it on a little-endian one or convert it to safetensors`);
      }
      const pickleEntry = zip.entry(pickles[0]!)!;
      if (pickleEntry.size > MAX_PICKLE_BYTES) badCheckpoint(path, `its data.pkl is ${pickleEntry.size} bytes, far more than a state dict needs`);

      const storageEntries = new Map<string, ZipEntry>();
      const storages = new Map<string, TorchStorage>();
      const persistentLoad = (pid: PyValue): PyValue => {
        const [kind, type, key, , numel] = pid instanceof PyTuple ? pid.items : [];
        if (kind !== 'storage' || !(type instanceof TorchStorageType) || typeof key !== 'string') {
          return badCheckpoint(path, `its pickle references external data ${describe(pid)} that is not a storage`);
        }
        if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) return badCheckpoint(path, `storage ${key} has ${String(numel)} elements`);
        const known = storages.get(`${key}:${type.dtype}`);
        if (known) return known;
        const entry = zip.entry(`${prefix}data/${key}`) ?? badCheckpoint(path, `storage ${key} is referenced but ${prefix}data/${key} is missing`);
        const bytes = numel * DTYPE_BYTES[type.dtype];
        if (entry.size < bytes) badCheckpoint(path, `storage ${key} should hold ${numel} ${type.dtype} elements (${bytes} bytes) but has ${entry.size} bytes`);
        storageEntries.set(key, entry);
        const storage = new TorchStorage(key, type.dtype, numel);
        storages.set(`${key}:${type.dtype}`, storage);
        return storage;
      };
      const root = unpickle(zip.read(pickleEntry), {
        source: path,
        resolveGlobal: (module, name) => torchGlobal(module, name, path),
        persistentLoad,
      });
      return new TorchCheckpoint(path, zip, storageEntries, flattenStateDict(root, path));
    } catch (err) {
      zip.close();
      throw err;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private tensor(name: string): TorchTensor {
    const t = this.tensors.get(name);
    if (!t) throw new EngineError('missing_tensor', `${this.path} has no tensor named ${name}`);
    return t;
  }

  info(name: string): TorchTensorInfo {
    const t = this.tensor(name);
    return { name, dtype: t.storage.dtype, shape: [...t.shape] };
  }

  /** The tensor in its own dtype (F16/BF16 as raw Uint16 bits), C-contiguous, in fresh memory. */
  read(name: string): TensorData {
    const t = this.tensor(name);
    const { dtype } = t.storage;
    const size = DTYPE_BYTES[dtype];
    const count = checkedNumel(t.shape)!;
    if (count === 0) return viewAs(dtype, new Uint8Array(0));
    const last = lastElement(t);
    const entry = this.storageEntries.get(t.storage.key)!;
    const span = this.zip.read(entry, t.offset * size, (last + 1) * size);
    return viewAs(dtype, isContiguous(t) ? span : gather(span, size, t.shape, t.stride, count));
  }

  readFloat32(name: string): Float32Array {
    return toFloat32(this.tensor(name).storage.dtype, this.read(name));
  }

  close(): void {
    this.zip.close();
  }
}

/** Every tensor of a torch.save checkpoint, by flat name. */
export async function readTorchCheckpoint(path: string): Promise<Map<string, HostTensor>> {
  const checkpoint = TorchCheckpoint.open(path);
  try {
    const out = new Map<string, HostTensor>();
    for (const name of checkpoint.names()) {
      const { dtype, shape } = checkpoint.info(name);
      out.set(name, { dtype, shape, data: checkpoint.read(name) });
    }
    return out;
  } finally {
    checkpoint.close();
  }
}

/** The storage index of the tensor's last element; the walk in flattenStateDict has checked it fits. */
function lastElement(t: TorchTensor): number {
  return t.shape.reduce((at, n, d) => at + (n - 1) * t.stride[d]!, t.offset);
}

/** Whether the view is in C order already (the stride of a dimension of size 1 does not matter). */
function isContiguous(t: TorchTensor): boolean {
  let expected = 1;
  for (let d = t.shape.length - 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t.stride[d] !== expected) return false;
    expected *= t.shape[d]!;
  }
  return true;
}

/** Copies a strided view (elements of `size` bytes, `span` starting at the view's first element) into C order. */
function gather(span: Uint8Array, size: number, shape: readonly number[], stride: readonly number[], count: number): Uint8Array {
  const out = new Uint8Array(count * size);
  // Move elements as 1, 2 or 4-byte words (an 8-byte element is two words): exact bits, no float canonicalisation.
  const wordBytes = Math.min(size, 4);
  const words = size / wordBytes;
  const wordsOf = (b: Uint8Array): Uint8Array | Uint16Array | Uint32Array =>
    wordBytes === 1 ? b : wordBytes === 2 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const src = wordsOf(span);
  const dst = wordsOf(out);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let from = 0;
  for (let i = 0; i < count; i++) {
    for (let w = 0; w < words; w++) dst[i * words + w] = src[from * words + w]!;
    for (let d = rank - 1; d >= 0; d--) {
      from += stride[d]!;
      if (++index[d]! < shape[d]!) break;
      from -= stride[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** Flattens nested dicts (and lists) of tensors into "a.b.c" names; non-tensor leaves (epoch, config) are skipped. */
function flattenStateDict(root: PyValue, path: string): Map<string, TorchTensor> {
  if (!(root instanceof PyDict)) badCheckpoint(path, `it holds a ${describe(root)}, not a dict of tensors`);
  const out = new Map<string, TorchTensor>();
  const onPath = new Set<PyValue>();
  let visited = 0;
  const walk = (value: PyValue, name: string, depth: number): void => {
    if (depth > MAX_NESTING) badCheckpoint(path, `${name} is nested more than ${MAX_NESTING} dicts deep`);
    if (++visited > MAX_VISITED_VALUES) badCheckpoint(path, `its nested dicts expand to more than ${MAX_VISITED_VALUES} values`);
    if (value instanceof TorchTensor) {
      checkBounds(value, name, path);
      if (out.has(name)) badCheckpoint(path, `two tensors are both named ${name}`);
      out.set(name, value);
      return;
    }
    const children: [string, PyValue][] =
      value instanceof PyDict ? [...value.map].map(([k, v]) => [typeof k === 'string' ? k : String(k), v])
      : value instanceof PyList || value instanceof PyTuple ? value.items.map((v, i) => [String(i), v])
      : [];
    if (children.length === 0) return;
    if (onPath.has(value)) badCheckpoint(path, `${name || 'its top-level dict'} contains itself`);
    onPath.add(value);
    for (const [key, child] of children) walk(child, name ? `${name}.${key}` : key, depth + 1);
    onPath.delete(value);
  };
  walk(root, '', 0);
  return out;
}

function checkBounds(t: TorchTensor, name: string, path: string): void {
  const count = checkedNumel(t.shape);
  if (count === undefined) badCheckpoint(path, `tensor ${name} has an impossible shape ${JSON.stringify(t.shape)}`);
  if (count === 0) return;
  const last = lastElement(t);
  if (!Number.isSafeInteger(last) || last >= t.storage.numel) {
    badCheckpoint(path, `tensor ${name} ${JSON.stringify(t.shape)} at offset ${t.offset} with strides ${JSON.stringify(t.stride)} ` +
      `reaches past its ${t.storage.numel}-element storage ${t.storage.key}`);
  }
}
