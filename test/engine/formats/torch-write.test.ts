// The torch.save writer: what it writes reads back through the safe reader bit for bit, and the zip is
// what torch.load expects (stored entries, correct CRC-32s, data aligned to 64 bytes, archive/version).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TorchCheckpoint } from '../../../src/engine/formats/torch-pickle.js';
import { encodeTorchStateDict } from '../../../src/engine/formats/torch-write.js';
import { scratchDir } from './fixtures.js';

/** CRC-32 (IEEE, reflected 0xEDB88320) bit by bit — the reference the writer's table version must match (zlib.crc32 needs Node ≥ 20.15). */
function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const tensors: [string, { shape: number[]; data: Float32Array }][] = [
  ['conv1_1.weight', { shape: [2, 3, 1, 1], data: Float32Array.of(1, -2, 3.5, 1e-20, -0, 7) }],
  ['conv1_1.bias', { shape: [2], data: Float32Array.of(0.25, -0.75) }],
  ['big', { shape: [300], data: Float32Array.from({ length: 300 }, (_, i) => Math.sin(i)) }],
];

test('a written state dict reads back with its names, shapes and values', () => {
  const dir = scratchDir('torch-write');
  const ckpt = TorchCheckpoint.open(dir.write('m.pth', encodeTorchStateDict(tensors)));
  try {
    assert.deepEqual(ckpt.names().sort(), tensors.map(([n]) => n).sort());
    for (const [name, t] of tensors) {
      assert.deepEqual(ckpt.info(name).shape, t.shape);
      assert.deepEqual(Array.from(ckpt.readFloat32(name)), Array.from(t.data), name);
    }
  } finally {
    ckpt.close();
    dir.remove();
  }
});

test('entries are stored with correct CRC-32s and tensor data on 64-byte boundaries', () => {
  const bytes = encodeTorchStateDict(tensors);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const names: string[] = [];
  let at = 0;
  while (view.getUint32(at, true) === 0x04034b50) {
    const method = view.getUint16(at + 8, true);
    const crc = view.getUint32(at + 14, true);
    const size = view.getUint32(at + 18, true);
    const nameLen = view.getUint16(at + 26, true);
    const extraLen = view.getUint16(at + 28, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 30, at + 30 + nameLen));
    const start = at + 30 + nameLen + extraLen;
    assert.equal(method, 0, `${name} stored`);
    assert.equal(start % 64, 0, `${name} aligned`);
    assert.equal(crc, crc32(bytes.subarray(start, start + size)), `${name} crc`);
    names.push(name);
    at = start + size;
  }
  assert.deepEqual(names, ['archive/data.pkl', 'archive/data/0', 'archive/data/1', 'archive/data/2', 'archive/version']);
});

test('a tensor whose values do not fill its shape is refused', () => {
  assert.throws(() => encodeTorchStateDict([['w', { shape: [2, 2], data: new Float32Array(3) }]]), /3 values for shape \[2, 2\]/);
});
