// openWeights: one read-only view over .safetensors and torch .bin, chosen by content.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { openWeights } from '../../../src/engine/formats/weights.js';
import { golden } from '../../helpers/paths.js';
import { op, pickle, scratchDir } from './fixtures.js';

const scratch = scratchDir('weights');
after(() => scratch.remove());

test('a torch .bin and a .safetensors holding the same tensors read the same through openWeights', () => {
  const bin = openWeights(join(golden('instantid-ipadapter-unet'), 'ip-adapter.bin'));
  const st = openWeights(join(golden('instantid-ipadapter-unet'), 'weights.safetensors'));
  try {
    assert.equal(bin.format, 'torch-zip');
    assert.equal(st.format, 'safetensors');
    for (const name of st.names()) {
      assert.ok(bin.has(name), name);
      assert.deepEqual(bin.info(name), st.info(name), name);
      assert.deepEqual(bin.readFloat32(name), st.readFloat32(name), name);
    }
  } finally {
    bin.close();
    st.close();
  }
});

test('the format is told by content, not by file extension', () => {
  const renamed = scratch.path('really-a-zip.safetensors');
  copyFileSync(join(golden('instantid-ipadapter-unet'), 'ip-adapter.bin'), renamed);
  const file = openWeights(renamed);
  assert.equal(file.format, 'torch-zip');
  file.close();
});

test('a legacy (pre-1.6) torch pickle stream is refused with advice', () => {
  const legacy = scratch.write('old.ckpt', pickle(op.proto(2), op.long1(0x1950a86a20f9), op.stop));
  assert.throws(() => openWeights(legacy), { code: 'unsupported_weights', message: /old\.ckpt is in torch's legacy .* convert it to safetensors/ });
});

test('a file that is neither format is refused', () => {
  const text = scratch.write('notes.bin', new TextEncoder().encode('hello, this is not a weight file'));
  assert.throws(() => openWeights(text), { code: 'unsupported_weights', message: /notes\.bin is neither a safetensors file nor a torch checkpoint/ });
});
