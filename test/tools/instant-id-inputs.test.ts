// The pipeline's reading of a validated Run: checkpoint, LoRAs and ControlNets with their scales,
// images and numbers, typed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_NEGATIVE_PROMPT, instantIdControlnetLora as tool } from '../../src/tools/instant-id-controlnet-lora.js';
import { instantIdInputs } from '../../src/tools/instant-id-inputs.js';
import { validateRun } from '../../src/tools/validate.js';
import type { RunParams } from '../../src/tools/types.js';

const MINIMAL = { prompt: 'a portrait', inputImageUrl: 'https://example.com/face.jpg' };

function params(body: Record<string, unknown>): RunParams {
  const r = validateRun(tool, body, {});
  if (!r.ok) assert.fail(JSON.stringify(r.errors));
  return r.params;
}

test('a minimal Run reads as the default checkpoint, canny at 1.0, no LoRA and the seed’s numbers', () => {
  assert.deepEqual(instantIdInputs(tool, params(MINIMAL)), {
    checkpoint: null,
    loras: [],
    controlnets: [{ id: '454', label: 'diffusers/controlnet-canny-sdxl-1.0', scale: 1, preprocessor: 'canny' }],
    faceImage: { source: 'url', url: 'https://example.com/face.jpg' },
    poseImage: null,
    prompt: 'a portrait',
    negativePrompt: DEFAULT_NEGATIVE_PROMPT,
    steps: 20,
    guidanceScale: 5,
    ipAdapterScale: 0.8,
    identitynetScale: 0.8,
    samples: 1,
    seed: 3572004920n,
    scheduler: 'DDIMScheduler',
    width: null,
    height: null,
  });
});

test('LoRAs from the catalog, the project and a URL are applied together, each with its scale', () => {
  const inputs = instantIdInputs(
    tool,
    params({
      ...MINIMAL,
      selectedLoraModel: '622,1146',
      'Vintage-Creepy-Creatures': '0.7',
      selectedLoraModelPrivate: 'my-style',
      selectedLoraModelPrivateUrl: ' https://example.com/style.safetensors ',
    }),
  );
  assert.deepEqual(inputs.loras, [
    {
      source: 'catalog', id: '622', label: 'WizardWhitebeard/Vintage-Creepy-Creatures', scale: 0.7,
      triggerwords: ['creepy creature', 'creepy creature drawing', 'monster'],
    },
    { source: 'catalog', id: '1146', label: 'bblink787/Graphic-Novel-Illustration', scale: 1, triggerwords: ['graphic novel illustration'] },
    { source: 'private', id: 'my-style', scale: 1 },
    { source: 'url', url: 'https://example.com/style.safetensors', scale: 1 },
  ]);
});

test('a private checkpoint wins over a catalog one', () => {
  assert.deepEqual(instantIdInputs(tool, params({ ...MINIMAL, selectedModel: '554' })).checkpoint, { source: 'catalog', id: '554' });
  assert.deepEqual(
    instantIdInputs(tool, params({ ...MINIMAL, selectedModel: '554', selectedModelPrivate: '77' })).checkpoint,
    { source: 'private', id: '77' },
  );
});

test('ControlNets keep the order sent, each with its own scale and the preprocessor its option names', () => {
  const inputs = instantIdInputs(tool, params({ ...MINIMAL, selectedControlnetModel: ['455', '458'], 'controlnet-openpose-sdxl-1.0': 0.4 }));
  assert.deepEqual(inputs.controlnets, [
    { id: '455', label: 'diffusers/controlnet-depth-sdxl-1.0', scale: 1, preprocessor: 'depth' },
    { id: '458', label: 'thibaud/controlnet-openpose-sdxl-1.0', scale: 0.4, preprocessor: 'openpose' },
  ]);
});

test('the largest seed stays exact', () => {
  assert.equal(instantIdInputs(tool, params({ ...MINIMAL, seed: '18446744073709551615' })).seed, 2n ** 64n - 1n);
});

test('parameters that did not come from validateRun are a programming error', () => {
  assert.throws(() => instantIdInputs(tool, { values: {}, settings: {}, callbackUrl: null }), /validateRun/);
});
