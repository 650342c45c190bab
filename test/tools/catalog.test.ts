// The catalog on disk: catalog ids → files under $LIKENESS_HOME/models, the availability hook, trigger words.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  catalogModel, catalogModels, createAvailability, locateModel, modelName, projectFolder, promptWithTriggerWords,
} from '../../src/tools/catalog.js';
import { instantIdControlnetLora as tool, LORA_OPTIONS } from '../../src/tools/instant-id-controlnet-lora.js';
import type { LoraChoice } from '../../src/tools/instant-id-inputs.js';
import { validateRun } from '../../src/tools/validate.js';

const home = mkdtempSync(join(tmpdir(), 'likeness-catalog-'));
after(() => rmSync(home, { recursive: true, force: true }));

function install(relative: string, folderFile?: string): void {
  const path = join(home, 'models', relative);
  if (folderFile) {
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, folderFile), '{}');
  } else {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, 'weights');
  }
}

test('each seed LoRA, ControlNet and checkpoint has a documented file name', () => {
  const names = Object.fromEntries(catalogModels('/h', tool).map((m) => [`${m.kind}:${m.id}`, m.candidates[0]]));
  assert.deepEqual(names, {
    'checkpoint:554': '/h/models/checkpoints/Moxie-Diffusion-XL-v1.91.safetensors',
    'checkpoint:1088': '/h/models/checkpoints/Samaritan-CGI.safetensors',
    'checkpoint:422': '/h/models/checkpoints/BriXL-v5.0.safetensors',
    'checkpoint:995': '/h/models/checkpoints/Suzannes-XL-Mix.safetensors',
    'checkpoint:1094': '/h/models/checkpoints/Tornado.safetensors',
    'lora:622': '/h/models/loras/Vintage-Creepy-Creatures.safetensors',
    'lora:480': '/h/models/loras/Minimalist-Flat-Icons-v1.0.safetensors',
    'lora:938': '/h/models/loras/Roman-Everything-SDXL.safetensors',
    'lora:1146': '/h/models/loras/Graphic-Novel-Illustration.safetensors',
    'lora:1229': '/h/models/loras/Vintage-Golden-Age-Illustration-SDXL.safetensors',
    'controlnet:458': '/h/models/controlnet/controlnet-openpose-sdxl-1.0',
    'controlnet:455': '/h/models/controlnet/controlnet-depth-sdxl-1.0',
    'controlnet:454': '/h/models/controlnet/controlnet-canny-sdxl-1.0',
  });
});

test('a model is found under its name or its catalog id; a checkpoint may be a file or a diffusers folder', () => {
  assert.equal(locateModel(catalogModel(home, tool, 'selectedLoraModel', '938')!), undefined);
  install('loras/938.safetensors');
  assert.equal(locateModel(catalogModel(home, tool, 'selectedLoraModel', '938')!), join(home, 'models/loras/938.safetensors'));
  install('checkpoints/Tornado', 'model_index.json');
  assert.equal(locateModel(catalogModel(home, tool, 'selectedModel', '1094')!), join(home, 'models/checkpoints/Tornado'));
});

test('a ControlNet folder without its config.json does not count as installed', () => {
  mkdirSync(join(home, 'models/controlnet/controlnet-depth-sdxl-1.0'), { recursive: true });
  assert.equal(locateModel(catalogModel(home, tool, 'selectedControlnetModel', '455')!), undefined);
  writeFileSync(join(home, 'models/controlnet/controlnet-depth-sdxl-1.0/config.json'), '{}');
  assert.ok(locateModel(catalogModel(home, tool, 'selectedControlnetModel', '455')!));
});

test('validation fails for a selected LoRA that is not installed, saying where under the home the operator puts it', () => {
  install('controlnet/controlnet-canny-sdxl-1.0', 'config.json');
  const availability = createAvailability(home, tool);
  const body = { prompt: 'a portrait', inputImageUrl: 'https://example.com/face.jpg', selectedLoraModel: ['622', '938'] };
  const r = validateRun(tool, body, {}, { availability });
  assert.equal(r.ok, false);
  assert.deepEqual(!r.ok && r.errors.map((e) => e.message), [
    `Request parameter [selectedLoraModel] 622 (WizardWhitebeard/Vintage-Creepy-Creatures) is not installed on this server: ` +
      'the operator installs it by saving its .safetensors file as $LIKENESS_HOME/models/loras/Vintage-Creepy-Creatures.safetensors',
  ]);
  assert.ok(!JSON.stringify(r).includes(home), 'no absolute server path');
  install('loras/Vintage-Creepy-Creatures.safetensors');
  assert.equal(validateRun(tool, body, {}, { availability }).ok, true);
});

const notPrivate = (input: string, kind: string, id: string): string =>
  `Request parameter [${input}] ${id} is not a private ${kind} of this project: ` +
  "the server's operator adds it with `likeness models private add --project <your project> FILE`";

test('a private LoRA id resolves under loras/private/<projectId>/ of the Run\'s project only', () => {
  const availability = createAvailability(home, tool);
  assert.equal(availability('selectedLoraModelPrivate', 'my-style', { projectId: 7 }), notPrivate('selectedLoraModelPrivate', 'LoRA', 'my-style'));
  install('loras/private/7/my-style.safetensors');
  assert.equal(availability('selectedLoraModelPrivate', 'my-style', { projectId: 7 }), undefined);
  assert.equal(locateModel(catalogModel(home, tool, 'selectedLoraModelPrivate', 'my-style', 7)!), join(home, 'models/loras/private/7/my-style.safetensors'));
  // Another project, no project at all: the same message as an id nobody ever added.
  assert.equal(availability('selectedLoraModelPrivate', 'my-style', { projectId: 8 }), notPrivate('selectedLoraModelPrivate', 'LoRA', 'my-style'));
  assert.equal(availability('selectedLoraModelPrivate', 'my-style'), notPrivate('selectedLoraModelPrivate', 'LoRA', 'my-style'));
  assert.deepEqual(catalogModel(home, tool, 'selectedLoraModelPrivate', 'my-style')!.candidates, []);
  assert.equal(availability('prompt', 'anything'), undefined);
});

test('a private checkpoint is a file or a diffusers folder in checkpoints/private/<projectId>/', () => {
  const availability = createAvailability(home, tool);
  install('checkpoints/private/7/mine', 'model_index.json');
  assert.equal(availability('selectedModelPrivate', 'mine', { projectId: 7 }), undefined);
  assert.equal(availability('selectedModelPrivate', 'mine', { projectId: 3 }), notPrivate('selectedModelPrivate', 'checkpoint', 'mine'));
});

test('the old shared layout (loras/private/<id>.safetensors) is no longer read', () => {
  install('loras/private/shared-style.safetensors');
  assert.equal(createAvailability(home, tool)('selectedLoraModelPrivate', 'shared-style', { projectId: 7 }),
    notPrivate('selectedLoraModelPrivate', 'LoRA', 'shared-style'));
});

test('ids and project ids cannot climb out: the same message, and nothing outside the project\'s folder is looked at', () => {
  const availability = createAvailability(home, tool);
  install('loras/private/7/x.safetensors');
  for (const id of ['..', '.x', '../7/x', '7/x', '', 'a'.repeat(129)]) {
    assert.equal(availability('selectedLoraModelPrivate', id, { projectId: 8 }), notPrivate('selectedLoraModelPrivate', 'LoRA', id.length > 128 ? `${id.slice(0, 128)}…` : id), id);
  }
  for (const projectId of [-1, 1.5, NaN, Infinity, '7' as unknown as number, '../7' as unknown as number]) {
    assert.equal(projectFolder(projectId), undefined, String(projectId));
    assert.equal(availability('selectedLoraModelPrivate', 'x', { projectId }), notPrivate('selectedLoraModelPrivate', 'LoRA', 'x'), String(projectId));
  }
  assert.equal(projectFolder(7), '7');
});

test('the install name comes from the generate-setting id, else the label', () => {
  assert.equal(modelName(LORA_OPTIONS[1]!), 'Minimalist-Flat-Icons-v1.0');
  assert.equal(modelName({ value: '7', label: 'someone/My Model v2 (final)' }), 'My-Model-v2-final');
  assert.equal(modelName({ value: '7', label: '///' }), '7');
});

const catalogLora = (id: string): LoraChoice => {
  const o = LORA_OPTIONS.find((x) => x.value === id)!;
  return { source: 'catalog', id, label: o.label, scale: 1, triggerwords: o.triggerwords ?? [] };
};

test('trigger words: the first phrase of each catalog LoRA goes before the prompt', () => {
  assert.equal(promptWithTriggerWords('a knight', [catalogLora('622'), catalogLora('480')]), 'creepy creature, MINIMALIST ICON, FLATXL, a knight');
});

test('trigger words: none added when the prompt already holds one of the LoRA\'s phrases, whatever the case', () => {
  assert.equal(promptWithTriggerWords('a MONSTER at night', [catalogLora('622')]), 'a MONSTER at night');
});

test('trigger words: "all" adds every phrase (trailing commas trimmed), "none" leaves the prompt alone, URL LoRAs add nothing', () => {
  assert.equal(promptWithTriggerWords('x', [catalogLora('480')], 'all'),
    'MINIMALIST ICON, FLATXL, minimalistic, vector art, lean lines, illustration, graphic design, vector graphics, x');
  assert.equal(promptWithTriggerWords('x', [catalogLora('622')], 'none'), 'x');
  assert.equal(promptWithTriggerWords('x', [{ source: 'url', url: 'https://e.com/a.safetensors', scale: 1 }]), 'x');
  assert.equal(promptWithTriggerWords('', [catalogLora('938')]), 'zavy-rmn');
});
