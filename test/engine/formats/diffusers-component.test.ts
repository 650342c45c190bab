// Finding one component's config and weight files (what whole SDXL folders and single UNet /
// ControlNet folders share): the model root or the component folder, the file-name preference order,
// both spellings of an fp16 shard index, and errors that say what was looked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../../src/engine/errors.js';
import { findComponent, weightFileNames } from '../../../src/engine/formats/diffusers-component.js';

/** A temp model root with `controlnet/config.json` and the given (empty) files in controlnet/. */
function withComponent(files: Record<string, string>, run: (root: string, dir: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'likeness-component-'));
  try {
    const dir = join(root, 'controlnet');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), '{"_class_name": "ControlNetModel"}');
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    run(root, dir);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const index = (map: Record<string, string>): string => JSON.stringify({ metadata: {}, weight_map: map });

test('the root or the component folder itself; full precision first unless fp16 is asked for', () => {
  withComponent({ 'diffusion_pytorch_model.safetensors': '', 'diffusion_pytorch_model.fp16.safetensors': '' }, (root, dir) => {
    for (const path of [root, dir]) {
      const found = findComponent(path, 'controlnet');
      assert.equal(found.dir, dir);
      assert.deepEqual(found.config, { _class_name: 'ControlNetModel' });
      assert.deepEqual(found.weights, [join(dir, 'diffusion_pytorch_model.safetensors')]);
      assert.equal(found.index, undefined);
    }
    assert.deepEqual(findComponent(root, 'controlnet', { variant: 'fp16' }).weights, [join(dir, 'diffusion_pytorch_model.fp16.safetensors')]);
  });
});

test('safetensors before .bin, diffusers names before transformers names', () => {
  const names = weightFileNames(undefined);
  assert.equal(names[0], 'diffusion_pytorch_model.safetensors');
  assert.ok(names.indexOf('model.safetensors') < names.indexOf('diffusion_pytorch_model.fp16.safetensors'));
  assert.ok(names.indexOf('diffusion_pytorch_model.fp16.safetensors') < names.indexOf('diffusion_pytorch_model.bin'));
  assert.equal(weightFileNames('fp16')[0], 'diffusion_pytorch_model.fp16.safetensors');
  withComponent({ 'diffusion_pytorch_model.bin': '', 'model.safetensors': '' }, (root, dir) => {
    assert.deepEqual(findComponent(root, 'controlnet').weights, [join(dir, 'model.safetensors')]);
  });
});

test('an fp16 shard index is found under either spelling and gives its shards once each, in order', () => {
  const shards = { a: 'part-1.safetensors', b: 'part-2.safetensors', c: 'part-1.safetensors' };
  for (const name of ['diffusion_pytorch_model.safetensors.index.fp16.json', 'diffusion_pytorch_model.fp16.safetensors.index.json']) {
    withComponent({ [name]: index(shards), 'part-1.safetensors': '', 'part-2.safetensors': '' }, (root, dir) => {
      const found = findComponent(root, 'controlnet', { variant: 'fp16' });
      assert.equal(found.index, name);
      assert.deepEqual(found.weights, [join(dir, 'part-1.safetensors'), join(dir, 'part-2.safetensors')]);
    });
  }
});

test('errors: not a folder, no config.json, no weights, a shard that is missing', () => {
  const is = (code: string, pattern: RegExp) => (e: unknown): boolean => {
    assert.ok(e instanceof EngineError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  };
  withComponent({}, (root, dir) => {
    assert.throws(() => findComponent(join(root, 'nothing'), 'controlnet'), is('model_not_found', /is not a folder/));
    assert.throws(() => findComponent(root, 'unet'), is('model_not_found', /no config\.json \(nor unet\/config\.json\)/));
    assert.throws(() => findComponent(dir, 'controlnet'), is('model_not_found', /no weights \(looked for diffusion_pytorch_model/));
    writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), index({ a: 'gone.safetensors' }));
    assert.throws(() => findComponent(dir, 'controlnet'), is('missing_file', /lists shard gone\.safetensors/));
  });
});
