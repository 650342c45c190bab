// torch.save checkpoints: the golden ip-adapter.bin, strided views, and pickles built to attack the reader.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import { TorchCheckpoint, readTorchCheckpoint } from '../../../src/engine/formats/torch-pickle.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { bytesOf } from '../../../src/engine/formats/dtype.js';
import { parsePythonJson } from '../../../src/engine/formats/pyjson.js';
import { golden } from '../../helpers/paths.js';
import { buildZip, bytesOfFloats, concat, dictPickle, op, pickle, scratchDir, tensorPickle, torchZip } from './fixtures.js';
import type { Bytes } from './fixtures.js';

const scratch = scratchDir('torch');
after(() => scratch.remove());

const ipAdapterBin = join(golden('instantid-ipadapter-unet'), 'ip-adapter.bin');

function expectError(fn: () => unknown, code: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof EngineError, `expected an EngineError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

/** Wraps a pickle as data.pkl of a torch.save archive and opens it. */
function openPickle(name: string, pkl: Uint8Array, storages: Record<string, Uint8Array> = {}): TorchCheckpoint {
  return TorchCheckpoint.open(scratch.write(name, torchZip(pkl, storages)));
}

test('ip-adapter.bin holds exactly the tensors of the safetensors goldens, bit for bit', async () => {
  const fromBin = await readTorchCheckpoint(ipAdapterBin);
  const references = [
    SafetensorsFile.open(join(golden('instantid-ipadapter-unet'), 'weights.safetensors')),
    SafetensorsFile.open(join(golden('instantid-resampler'), 'weights.safetensors')),
  ];
  try {
    const expectedNames = references.flatMap((f) => f.names()).sort();
    assert.deepEqual([...fromBin.keys()].sort(), expectedNames);
    for (const [name, tensor] of fromBin) {
      const ref = references.find((f) => f.has(name))!;
      assert.equal(tensor.dtype, ref.info(name).dtype, name);
      assert.deepEqual(tensor.shape, ref.info(name).shape, name);
      assert.ok(Buffer.from(bytesOf(tensor.data)).equals(Buffer.from(ref.bytes(name))), name);
    }
  } finally {
    for (const f of references) f.close();
  }
});

test('ip-adapter.bin tensors have the sha256 values listed in case.json', async () => {
  const spec = parsePythonJson(readFileSync(join(golden('instantid-ipadapter-unet'), 'case.json'), 'utf8')) as {
    ip_adapter_bin: { tensors: Record<string, { shape: number[]; dtype: string; sha256_le_bytes: string }> };
  };
  const tensors = await readTorchCheckpoint(ipAdapterBin);
  const listed = Object.entries(spec.ip_adapter_bin.tensors);
  assert.equal(listed.length, tensors.size);
  for (const [name, { shape, dtype, sha256_le_bytes }] of listed) {
    const t = tensors.get(name);
    assert.ok(t, `missing ${name}`);
    assert.equal(dtype, 'float32');
    assert.deepEqual(t.shape, shape, name);
    assert.equal(createHash('sha256').update(bytesOf(t.data)).digest('hex'), sha256_le_bytes, name);
  }
});

test('nested dicts flatten with dots, in file order', () => {
  const file = TorchCheckpoint.open(ipAdapterBin);
  try {
    assert.equal(file.names()[0], 'image_proj.latents');
    assert.ok(file.has('ip_adapter.1.to_k_ip.weight'));
    assert.deepEqual(file.info('image_proj.latents'), { name: 'image_proj.latents', dtype: 'F32', shape: [1, 4, 32] });
  } finally {
    file.close();
  }
});

test('views honour storage offset and strides, and come out C-contiguous', () => {
  // storage "0": 0..11 as float32; a [3,4] matrix, its transpose, a column slice and a row slice.
  const storage = bytesOfFloats([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const file = openPickle('views.pt', pickle(op.proto(2), dictPickle([
    ['m', tensorPickle('FloatStorage', '0', 12, 0, [3, 4], [4, 1])],
    ['t', tensorPickle('FloatStorage', '0', 12, 0, [4, 3], [1, 4])],
    ['col', tensorPickle('FloatStorage', '0', 12, 2, [3, 1], [4, 1])],
    ['row', tensorPickle('FloatStorage', '0', 12, 8, [4], [1])],
    ['bcast', tensorPickle('FloatStorage', '0', 12, 5, [2, 2], [0, 1])],
    ['scalar', tensorPickle('FloatStorage', '0', 12, 7, [], [])],
  ]), op.stop), { 0: storage });
  try {
    assert.deepEqual(file.readFloat32('m'), new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
    assert.deepEqual(file.readFloat32('t'), new Float32Array([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]));
    assert.deepEqual(file.readFloat32('col'), new Float32Array([2, 6, 10]));
    assert.deepEqual(file.readFloat32('row'), new Float32Array([8, 9, 10, 11]));
    assert.deepEqual(file.readFloat32('bcast'), new Float32Array([5, 6, 5, 6]));
    assert.deepEqual(file.readFloat32('scalar'), new Float32Array([7]));
  } finally {
    file.close();
  }
});

test('storage classes give their dtypes; 8-byte elements are copied bit-exactly through strides', () => {
  const longs = new BigInt64Array([1n, -2n, 2n ** 62n, 4n]);
  const halves = new Uint16Array([0x3c00, 0x7e01, 0xfbff, 0x0001]);
  const file = openPickle('dtypes.pt', pickle(op.proto(2), dictPickle([
    ['ids', tensorPickle('LongStorage', 'a', 4, 0, [2, 2], [1, 2])],
    ['h', tensorPickle('HalfStorage', 'b', 4, 0, [4], [1])],
  ]), op.stop), { a: bytesOf(longs), b: bytesOf(halves) });
  try {
    assert.deepEqual(file.read('ids'), new BigInt64Array([1n, 2n ** 62n, -2n, 4n]));
    assert.equal(file.info('h').dtype, 'F16');
    assert.deepEqual(file.read('h'), halves);
  } finally {
    file.close();
  }
});

test('an OrderedDict state dict with _metadata (as state_dict() pickles) reads like a plain dict', () => {
  const pkl = pickle(op.proto(2),
    op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce,
    op.mark, op.str('w'), tensorPickle('FloatStorage', '0', 2, 0, [2], [1]), op.setitems,
    op.emptyDict, op.str('_metadata'), op.global('collections', 'OrderedDict'), op.emptyTuple, op.reduce, op.setitem, op.build,
    op.stop);
  const file = openPickle('ordered.pt', pkl, { 0: bytesOfFloats([3, 4]) });
  assert.deepEqual(file.readFloat32('w'), new Float32Array([3, 4]));
  file.close();
});

test('a re-zipped (deflated) and a ZIP64 archive read the same as a stored one', () => {
  const pkl = pickle(op.proto(2), dictPickle([['w', tensorPickle('FloatStorage', '0', 3, 0, [3], [1])]]), op.stop);
  for (const options of [{ deflate: true }, { zip64: true }]) {
    const file = TorchCheckpoint.open(scratch.write('rezipped.pt', torchZip(pkl, { 0: bytesOfFloats([1, 2, 3]) }, options)));
    assert.deepEqual(file.readFloat32('w'), new Float32Array([1, 2, 3]), JSON.stringify(options));
    file.close();
  }
});

const REFUSED = /refusing to load .*nothing in it was run/;

const attacks: [string, Bytes, RegExp][] = [
  ['os.system via GLOBAL + REDUCE', pickle(op.proto(2), op.global('os', 'system'), op.str('touch /tmp/pwned'), op.tuple1, op.reduce, op.stop), /os\.system/],
  ['posix.system (what os.system pickles as on Linux)', pickle(op.proto(2), op.global('posix', 'system'), op.str('id'), op.tuple1, op.reduce, op.stop), /posix\.system/],
  ['builtins.eval', pickle(op.proto(2), op.global('builtins', 'eval'), op.str('__import__("os")'), op.tuple1, op.reduce, op.stop), /builtins\.eval/],
  ['subprocess.Popen as an object\'s __reduce__ writes it',
    pickle(op.proto(2), op.global('subprocess', 'Popen'), op.emptyList, op.str('ls'), op.append, op.tuple1, op.reduce, op.stop), /subprocess\.Popen/],
  ['STACK_GLOBAL', pickle(op.proto(4), op.shortStr('os'), op.memoize, op.shortStr('system'), op.memoize, op.stackGlobal, op.shortStr('id'), op.tuple1, op.reduce, op.stop), /os\.system/],
  ['STACK_GLOBAL with names fetched from the memo',
    pickle(op.proto(4), op.shortStr('builtins'), op.binput(7), op.shortStr('exec'), op.binput(8), op.binget(7), op.binget(8), op.stackGlobal, op.stop), /builtins\.exec/],
  ['a dangerous global inside an otherwise normal state dict',
    pickle(op.proto(2), dictPickle([['w', tensorPickle('FloatStorage', '0', 1, 0, [1], [1])], ['x', concat(op.global('os', 'system'), op.str('id'), op.tuple1, op.reduce)]]), op.stop), /os\.system/],
  ['torch.storage._load_from_bytes (a nested torch.load)',
    pickle(op.proto(2), op.global('torch.storage', '_load_from_bytes'), op.str('x'), op.tuple1, op.reduce, op.stop), /torch\.storage\._load_from_bytes/],
  ['INST naming a dangerous class', pickle(op.proto(2), op.mark, op.str('id'), op.inst('os', 'system'), op.stop), /os\.system/],
  ['INST even on an allowed class', pickle(op.proto(2), op.mark, op.inst('collections', 'OrderedDict'), op.stop), /collections\.OrderedDict with the INST opcode/],
  ['OBJ', pickle(op.proto(2), op.mark, op.global('collections', 'OrderedDict'), op.obj, op.stop), /collections\.OrderedDict with the OBJ opcode/],
  ['EXT1 (copyreg extension registry)', pickle(op.proto(2), op.ext1(1), op.emptyTuple, op.reduce, op.stop), /extension registry/],
];

for (const [label, pkl, names] of attacks) {
  test(`refuses a pickle using ${label}, naming what it wanted`, () => {
    expectError(() => openPickle('evil.bin', Uint8Array.from(pkl), { 0: bytesOfFloats([1]) }), 'unsafe_pickle', REFUSED, names, /evil\.bin/);
  });
}

test('a truncated checkpoint fails cleanly', () => {
  const whole = readFileSync(ipAdapterBin);
  for (const keep of [whole.length - 10, Math.floor(whole.length / 2), 100, 3]) {
    expectError(() => TorchCheckpoint.open(scratch.write('cut.bin', whole.subarray(0, keep))), 'bad_zip', /cut\.bin/, /truncated/);
  }
  const pkl = pickle(op.proto(2), dictPickle([['w', tensorPickle('FloatStorage', '0', 1, 0, [1], [1])]]), op.stop);
  expectError(() => openPickle('cut-pickle.pt', pkl.subarray(0, pkl.length - 9), { 0: bytesOfFloats([1]) }), 'bad_pickle', /truncated/);
});

test('an entry declaring a huge size is refused without allocating it', () => {
  const pkl = pickle(op.proto(2), op.emptyDict, op.stop);
  const bomb = buildZip([{ name: 'archive/data.pkl', data: pkl, deflate: true, declaredSize: 2 ** 40 }]);
  expectError(() => TorchCheckpoint.open(scratch.write('bomb.bin', bomb)), 'bad_checkpoint', /data\.pkl is 1099511627776 bytes/);
  const ratio = buildZip([{ name: 'archive/data.pkl', data: new Uint8Array(100_000), deflate: true, declaredSize: 2 ** 25 }]);
  expectError(() => TorchCheckpoint.open(scratch.write('ratio.bin', ratio)), 'bad_zip', /declares 33554432 bytes from \d+ compressed/);
  const liar = buildZip([{ name: 'archive/data.pkl', data: new Uint8Array(100_000), deflate: true, declaredSize: 100_001 }]);
  expectError(() => TorchCheckpoint.open(scratch.write('liar.bin', liar)), 'bad_zip', /inflates to 100000 bytes, not its declared 100001/);
  const understated = buildZip([{ name: 'archive/data.pkl', data: new Uint8Array(100_000), deflate: true, declaredSize: 500 }]);
  expectError(() => TorchCheckpoint.open(scratch.write('under.bin', understated)), 'bad_zip', /does not inflate to its declared 500 bytes/);
  const twoSizes = buildZip([{ name: 'archive/data.pkl', data: pkl, declaredSize: 1000 }]);
  expectError(() => TorchCheckpoint.open(scratch.write('two-sizes.bin', twoSizes)), 'bad_zip', /stored entry archive\/data\.pkl has two different sizes/);
  const huge = 2 ** 33;
  const blob = buildZip([
    { name: 'archive/data.pkl', data: pickle(op.proto(2), dictPickle([['w', tensorPickle('FloatStorage', '0', huge / 4, 0, [huge / 4], [1])]]), op.stop) },
    { name: 'archive/data/0', data: new Uint8Array(16), declaredSize: huge, declaredCompressedSize: huge },
  ]);
  const file = TorchCheckpoint.open(scratch.write('huge-blob.bin', blob));
  expectError(() => file.read('w'), 'bad_zip', /entry archive\/data\/0 claims 8589934592 bytes at offset \d+, past the end/);
  file.close();
});

test('a storage smaller than its tensors, or missing, is refused', () => {
  const pkl = (numel: number, size: number): Uint8Array =>
    pickle(op.proto(2), dictPickle([['w', tensorPickle('FloatStorage', '0', numel, 1, [size], [1])]]), op.stop);
  expectError(() => openPickle('short.pt', pkl(4, 3), { 0: bytesOfFloats([1, 2]) }), 'bad_checkpoint', /storage 0 should hold 4 F32 elements \(16 bytes\) but has 8/);
  expectError(() => openPickle('reach.pt', pkl(2, 3), { 0: bytesOfFloats([1, 2]) }), 'bad_checkpoint', /tensor w \[3\] at offset 1 .* reaches past its 2-element storage 0/);
  expectError(() => openPickle('missing.pt', pkl(2, 1), {}), 'bad_checkpoint', /archive\/data\/0 is missing/);
});

test('a file that is not a state dict, or not a torch archive, is refused', () => {
  expectError(() => openPickle('list.pt', pickle(op.proto(2), op.emptyList, op.stop)), 'bad_checkpoint', /holds a list, not a dict of tensors/);
  const other = buildZip([{ name: 'readme.txt', data: new TextEncoder().encode('hi') }]);
  expectError(() => TorchCheckpoint.open(scratch.write('other.zip', other)), 'bad_checkpoint', /not a torch\.save archive/);
  expectError(() => openPickle('opcode.pt', pickle(op.proto(2), [0x97], op.stop)), 'bad_pickle', /opcode 0x97/);
  const selfRef = pickle(op.proto(2), op.emptyDict, op.binput(0), op.str('me'), op.binget(0), op.setitem, op.stop);
  expectError(() => openPickle('cycle.pt', selfRef), 'bad_checkpoint', /contains itself/);
});

test('an unsupported torch name is refused as unsupported, not as dangerous', () => {
  const pkl = pickle(op.proto(2), op.global('torch._utils', '_rebuild_tensor_v3'), op.emptyTuple, op.reduce, op.stop);
  expectError(() => openPickle('v3.pt', pkl), 'unsafe_pickle', /torch\._utils\._rebuild_tensor_v3, which this reader does not support/);
});

test('hostile shapes of data fail cleanly: deep nesting, long lists, too many objects', () => {
  const deep = pickle(op.proto(2), ...Array.from({ length: 100 }, () => concat(op.emptyDict, op.str('k'))), op.emptyDict,
    ...Array.from({ length: 100 }, () => op.setitem), op.stop);
  expectError(() => openPickle('deep.pt', deep), 'bad_checkpoint', /nested more than 64 dicts deep/);
  const longList = pickle(op.proto(2), op.emptyDict, op.str('steps'), op.emptyList, op.mark,
    new Uint8Array(200_000).fill(op.none[0]!), [0x65], op.setitem, op.stop);
  const file = openPickle('long.pt', longList);
  assert.deepEqual(file.names(), []);
  file.close();
  const many = concat(op.proto(2), op.emptyList, op.mark, new Uint8Array(5_000_001).fill(0x29), [0x65], op.stop);
  expectError(() => openPickle('many.pt', many), 'bad_pickle', /more than 5000000 containers/);
});
