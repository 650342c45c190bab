// The tool's warm pipelines and LoRAs: a branchable LoRA set or scale change reuses the warm pipeline
// (run-time branches: nothing loaded, nothing compiled); LoCon / DoRA sets get a fused pipeline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSdxlModel } from '../../src/engine/formats/diffusers-folder.js';
import { readLora, type LoraFile } from '../../src/engine/formats/lora.js';
import { loraTargetsOfModel } from '../../src/engine/formats/lora-keymap.js';
import { writeSmokeLora } from '../../src/engine/lora/smoke.js';
import { SMOKE_CONFIG } from '../../src/engine/smoke.js';
import { SMOKE_CANNY_DIR, SMOKE_LORA_FILE, writeSmokeInstantIdSet } from '../../src/engine/smoke-instantid.js';
import { PipelineCache, branchable, type PipelineSpec } from '../../src/tools/instantid/pipelines.js';

const home = mkdtempSync(join(tmpdir(), 'likeness-pipelines-'));
const cacheDir = join(home, 'cache', 'onnx');
let files: PipelineSpec['files'];
let linearA: LoraFile;
let linearB: LoraFile;
let locon: LoraFile;

before(async () => {
  const set = await writeSmokeInstantIdSet(home);
  files = { model: set.model, identityNet: set.identityNet, ipAdapter: set.ipAdapter, controlNets: [join(home, SMOKE_CANNY_DIR)] };
  const model = openSdxlModel(set.model);
  const targets = loraTargetsOfModel(model);
  model.close();
  const te = { ...SMOKE_CONFIG.text_encoder, vocab_size: 1000 };
  const write = async (name: string, seed: number): Promise<string> => {
    const path = join(home, name);
    await writeSmokeLora(path, { unet: SMOKE_CONFIG.unet, textEncoder: te, textEncoder2: { ...SMOKE_CONFIG.text_encoder_2, vocab_size: 1000 } }, { seed, convs: false });
    return path;
  };
  linearA = readLora(await write('a.safetensors', 3), targets, { id: 'a' });
  linearB = readLora(await write('b.safetensors', 4), targets, { id: 'b' });
  locon = readLora(join(home, SMOKE_LORA_FILE), targets, { id: 'locon' });
});

after(() => {
  for (const l of [linearA, linearB, locon]) l?.close();
  rmSync(home, { recursive: true, force: true });
});

test('LoRA set and scale changes reuse the warm slotted pipeline and compile nothing; a LoCon set is fused', async () => {
  assert.ok(branchable([{ lora: linearA, scale: 1 }]));
  assert.ok(!branchable([{ lora: locon, scale: 1 }]), 'LoCon convs need the fused form');
  const cache = new PipelineCache({ cacheDir, threads: 1 });
  try {
    const base = await cache.get({ files, loras: [] });
    assert.equal(base.loaded, true);
    assert.ok(base.pipeline.hasLoraSlots);
    const entries = readdirSync(cacheDir).length;
    for (const loras of [
      [{ lora: linearA, scale: 0.5 }], [{ lora: linearA, scale: 0.5 }], [{ lora: linearA, scale: 0.8 }],
      [{ lora: linearB, scale: 1 }], [{ lora: linearA, scale: 0.5 }, { lora: linearB, scale: 0.3 }], [],
    ]) {
      const got = await cache.get({ files, loras });
      assert.equal(got.loaded, false, `${loras.map((l) => `${l.lora.id}@${l.scale}`).join('+') || 'none'}: the warm pipeline`);
      assert.equal(got.pipeline, base.pipeline);
    }
    assert.equal(readdirSync(cacheDir).length, entries, 'no compile-cache entry for any LoRA set or scale');
    const fused = await cache.get({ files, loras: [{ lora: locon, scale: 0.7 }] });
    assert.equal(fused.loaded, true);
    assert.ok(!fused.pipeline.hasLoraSlots);
    assert.ok(readdirSync(cacheDir).length > entries, 'the fused set compiled its own graphs');
  } finally {
    await cache.dispose();
  }
});
