// safetensors: writing, reading back, the goldens, hostile headers, and the float conversions.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import {
  SafetensorsFile, halfToFloat, bf16ToFloat, floatToHalf, toFloat32, toFloat16, MAX_HEADER_BYTES,
} from '../../../src/engine/formats/safetensors.js';
import type { Dtype } from '../../../src/engine/formats/safetensors.js';
import { encodeSafetensors, writeSafetensors } from '../../../src/engine/formats/safetensors-write.js';
import type { TensorToWrite } from '../../../src/engine/formats/safetensors-write.js';
import { parsePythonJson } from '../../../src/engine/formats/pyjson.js';
import { allGoldenCases, golden } from '../../helpers/paths.js';
import { concat, scratchDir } from './fixtures.js';

const scratch = scratchDir('safetensors');
after(() => scratch.remove());

const everyDtype: Record<string, TensorToWrite> = {
  f64: { dtype: 'F64', shape: [2, 2], data: new Float64Array([1.5, -2, Math.PI, 1e300]) },
  f32: { dtype: 'F32', shape: [3], data: new Float32Array([0.1, -0, 3e38]) },
  f16: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xfbff]) },
  bf16: { dtype: 'BF16', shape: [1, 2], data: new Uint16Array([0x3f80, 0xff80]) },
  i64: { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 62n), 49407n]) },
  i32: { dtype: 'I32', shape: [2], data: new Int32Array([-5, 2 ** 31 - 1]) },
  i16: { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 7]) },
  i8: { dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
  u8: { dtype: 'U8', shape: [1, 1, 3], data: new Uint8Array([0, 128, 255]) },
  bool: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
  scalar: { dtype: 'F32', shape: [], data: new Float32Array([42]) },
  empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
};

function expectBad(path: string, fault: RegExp): void {
  assert.throws(() => SafetensorsFile.open(path), (err: unknown) => {
    assert.ok(err instanceof EngineError, `expected an EngineError, got ${String(err)}`);
    assert.equal(err.code, 'bad_safetensors');
    assert.ok(err.message.includes(path), `message names the file: ${err.message}`);
    assert.match(err.message, fault);
    return true;
  });
}

/** A file with the given header text (padded) and `dataBytes` zero bytes of data. */
function withHeader(name: string, header: string, dataBytes = 0): string {
  const json = new TextEncoder().encode(header);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(json.length), true);
  return scratch.write(name, concat(length, json, new Uint8Array(dataBytes)));
}

test('every dtype round-trips bit-exactly through encodeSafetensors', () => {
  const path = scratch.write('all.safetensors', encodeSafetensors(everyDtype, { format: 'pt', note: 'ünïcode' }));
  const file = SafetensorsFile.open(path);
  try {
    assert.deepEqual(file.names(), Object.keys(everyDtype));
    assert.deepEqual(file.metadata, { format: 'pt', note: 'ünïcode' });
    for (const [name, t] of Object.entries(everyDtype)) {
      assert.equal(file.info(name).dtype, t.dtype);
      assert.deepEqual(file.info(name).shape, t.shape);
      assert.deepEqual(file.read(name), t.data, name);
    }
  } finally {
    file.close();
  }
});

test('the header is padded with spaces so the data starts on an 8-byte boundary', () => {
  const bytes = encodeSafetensors({ x: everyDtype.i8! });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLength) % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
  assert.match(header, /^\{.*\} *$/);
  assert.deepEqual(JSON.parse(header), { x: { dtype: 'I8', shape: [3], data_offsets: [0, 3] } });
});

test('writeSafetensors streams lazily given tensors one at a time, in order', async () => {
  const produced: string[] = [];
  function* tensors(): Generator<[string, TensorToWrite]> {
    for (let i = 0; i < 5; i++) {
      const name = `layer.${i}.weight`;
      yield [name, { dtype: 'F32', shape: [4, 8], data: async () => { produced.push(name); return new Float32Array(32).fill(i); } }];
    }
  }
  const path = scratch.path('streamed.safetensors');
  await writeSafetensors(path, tensors(), { source: 'test' });
  assert.deepEqual(produced, ['layer.0.weight', 'layer.1.weight', 'layer.2.weight', 'layer.3.weight', 'layer.4.weight']);
  const file = SafetensorsFile.open(path);
  try {
    assert.deepEqual(file.readFloat32('layer.3.weight'), new Float32Array(32).fill(3));
    assert.equal(file.metadata.source, 'test');
  } finally {
    file.close();
  }
  assert.deepEqual(readFileSync(path), Buffer.from(encodeSafetensors(
    Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`layer.${i}.weight`, { dtype: 'F32' as Dtype, shape: [4, 8], data: new Float32Array(32).fill(i) }])),
    { source: 'test' },
  )));
});

test('the writer refuses data whose length or kind does not match dtype and shape', async () => {
  assert.throws(() => encodeSafetensors({ x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }), { code: 'bad_tensor' });
  assert.throws(() => encodeSafetensors({ x: { dtype: 'F16', shape: [2], data: new Float32Array(2) } }), { code: 'bad_tensor' });
  assert.throws(() => encodeSafetensors({ __metadata__: everyDtype.u8! }), { code: 'bad_tensor' });
  const path = scratch.path('never.safetensors');
  await assert.rejects(writeSafetensors(path, { x: { dtype: 'I32', shape: [4], data: () => new Int32Array(3) } }), { code: 'bad_tensor' });
  assert.throws(() => readFileSync(path), { code: 'ENOENT' });
});

test('raw little-endian bytes are accepted for any dtype', () => {
  const bytes = new Uint8Array(new Float32Array([1, 2]).buffer);
  const file = SafetensorsFile.open(scratch.write('raw.safetensors', encodeSafetensors({ x: { dtype: 'F32', shape: [2], data: bytes } })));
  assert.deepEqual(file.readFloat32('x'), new Float32Array([1, 2]));
  file.close();
});

test('every safetensors file in the goldens opens and every tensor reads at its declared size', () => {
  for (const dir of allGoldenCases()) {
    for (const name of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
      const file = SafetensorsFile.open(join(dir, name));
      try {
        for (const tensor of file.names()) {
          const { shape } = file.info(tensor);
          assert.equal(file.readFloat32(tensor).length, shape.reduce((a, b) => a * b, 1), `${name} ${tensor}`);
        }
      } finally {
        file.close();
      }
    }
  }
});

test('io.safetensors of the ip-adapter case has the dtypes and shapes case.json lists', () => {
  const dir = golden('instantid-ipadapter-unet');
  const spec = parsePythonJson(readFileSync(join(dir, 'case.json'), 'utf8')) as { io_tensors: Record<string, { dtype: string; shape: number[] }> };
  const file = SafetensorsFile.open(join(dir, 'io.safetensors'));
  try {
    const torchName: Record<string, string> = { F32: 'float32', I64: 'int64', U8: 'uint8', F16: 'float16' };
    for (const [name, { dtype, shape }] of Object.entries(spec.io_tensors)) {
      assert.equal(torchName[file.info(name).dtype], dtype, name);
      assert.deepEqual(file.info(name).shape, shape, name);
    }
  } finally {
    file.close();
  }
});

test('hostile files: each fault is a bad_safetensors error naming the file and the fault', () => {
  expectBad(scratch.write('tiny.safetensors', new Uint8Array([1, 2, 3])), /only 3 bytes/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
  expectBad(scratch.write('long-header.safetensors', huge), /header length 9223372036854775808 runs past the end/);
  expectBad(withHeader('bad-json.safetensors', '{"x": {'), /not valid UTF-8 JSON/);
  expectBad(scratch.write('bad-utf8.safetensors', concat([4, 0, 0, 0, 0, 0, 0, 0], [0x22, 0xff, 0xfe, 0x22])), /not valid UTF-8 JSON/);
  expectBad(withHeader('array.safetensors', '[1, 2]'), /not a JSON object/);
  expectBad(withHeader('string.safetensors', '"hello"'), /not a JSON object/);
  expectBad(withHeader('entry.safetensors', '{"x": 5}'), /entry x is not an object/);
  expectBad(withHeader('meta.safetensors', '{"__metadata__": []}'), /__metadata__ is not an object/);
  expectBad(withHeader('dtype.safetensors', '{"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}', 1), /unsupported dtype "F8_E4M3"/);
  expectBad(withHeader('shape.safetensors', '{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', 4), /bad shape \[-1\]/);
  expectBad(withHeader('offsets.safetensors', '{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', 4), /bad data_offsets/);
  expectBad(withHeader('outside.safetensors', '{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', 8), /lies outside the file/);
  expectBad(withHeader('reversed.safetensors', '{"x": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}', 8), /lies outside the file/);
  expectBad(withHeader('size.safetensors', '{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', 8), /F32 \[3\] needs 12 bytes, offsets give 8/);
  expectBad(withHeader('numel.safetensors', '{"x": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}', 8), /needs too many bytes/);
  expectBad(
    withHeader('overlap.safetensors', '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}', 8),
    /tensors a and b overlap/,
  );
});

test('a header longer than the limit is refused before it is read', () => {
  const path = scratch.path('sparse.safetensors');
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
  writeFileSync(path, length);
  truncateSync(path, MAX_HEADER_BYTES + 64); // sparse: no disk or memory is spent
  expectBad(path, /exceeds the 104857600-byte limit/);
});

test('a truncated file is refused with the tensor that runs past its end', () => {
  const whole = encodeSafetensors({ a: everyDtype.f64!, b: everyDtype.f32! });
  expectBad(scratch.write('cut.safetensors', whole.subarray(0, whole.length - 5)), /tensor b lies outside the file .*truncated/);
  expectBad(scratch.write('cut-header.safetensors', whole.subarray(0, 20)), /runs past the end/);
});

test('reading after close fails clearly', () => {
  const file = SafetensorsFile.open(scratch.write('closed.safetensors', encodeSafetensors({ x: everyDtype.f32! })));
  file.close();
  assert.throws(() => file.read('x'), { code: 'closed' });
  assert.throws(() => file.read('nope'), { code: 'missing_tensor' });
});

test('F16 → F32 is exact for all 65536 half values', () => {
  const halves = new Uint16Array(65536).map((_, i) => i);
  const floats = toFloat32('F16', halves);
  const expected = (h: number): number => {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
    return sign * (exp === 0 ? frac / 1024 * 2 ** -14 : (1 + frac / 1024) * 2 ** (exp - 15));
  };
  for (let h = 0; h < 65536; h++) {
    assert.ok(Object.is(floats[h], expected(h)) && Object.is(halfToFloat(h), expected(h)), `half 0x${h.toString(16)}`);
  }
  assert.equal(halfToFloat(0x7bff), 65504);
  assert.equal(halfToFloat(0x0001), 2 ** -24);
  assert.ok(Object.is(halfToFloat(0x8000), -0));
});

test('BF16 → F32 is exact for all 65536 values (the high half of the float32 bits)', () => {
  const values = new Uint16Array(65536).map((_, i) => i);
  const bits = new Uint32Array(toFloat32('BF16', values).buffer);
  for (let b = 0; b < 65536; b++) assert.equal(bits[b], b << 16 >>> 0);
  assert.equal(bf16ToFloat(0x3f80), 1);
  assert.equal(bf16ToFloat(0xc0490fdb >>> 16), -3.140625);
});

test('float32 → float16 rounds to nearest even, including subnormals and overflow', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -20, 0x3c01],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [2 ** -25 + 2 ** -40, 0x0001], [1.5 * 2 ** -24, 0x0002], [2.5 * 2 ** -24, 0x0002],
    [2 ** -14 - 2 ** -25, 0x0400], [2 ** -14, 0x0400], [-(2 ** -26), 0x8000], [-0, 0x8000], [1e-45, 0x0000],
  ];
  for (const [value, half] of cases) assert.equal(floatToHalf(value), half, `${value}`);
  assert.equal(floatToHalf(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(floatToHalf(NaN) & 0x3ff, 0);
});

test('float32 → float16 is exact on the half grid and ties to even at every midpoint', () => {
  const f = new Float32Array(3);
  for (let h = 0; h < 0x7bff; h++) {
    const lo = halfToFloat(h);
    const hi = halfToFloat(h + 1);
    f[0] = (lo + hi) / 2; // exact in float32: one more bit than a half has
    f[1] = f[0]! + (hi - lo) / 4096;
    f[2] = f[0]! - (hi - lo) / 4096;
    const even = h % 2 === 0 ? h : h + 1;
    assert.deepEqual([floatToHalf(lo), floatToHalf(f[0]!), floatToHalf(f[1]!), floatToHalf(f[2]!)], [h, even, h + 1, h], `half 0x${h.toString(16)}`);
  }
  assert.deepEqual(toFloat16(new Float32Array([1, 65520, -0])), new Uint16Array([0x3c00, 0x7c00, 0x8000]));
});
