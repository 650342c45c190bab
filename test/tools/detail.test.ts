// Tool/Detail and Tool/List entries: Wiro's documented shapes, built from the definition that also
// validates Runs, so what a client reads is what the server enforces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { instantIdControlnetLora as tool } from '../../src/tools/instant-id-controlnet-lora.js';
import { toolDetail, toolListItem, type ToolParameterItem } from '../../src/tools/detail.js';
import { validateRun } from '../../src/tools/validate.js';
import { readSeed, seedPath } from './seed.js';

const detail = toolDetail(tool);
const items = detail.parameters.flatMap((g) => g.items);
const item = (id: string): ToolParameterItem => items.find((i) => i.id === id) ?? assert.fail(`no item ${id}`);
const MINIMAL = { prompt: 'a portrait', inputImageUrl: 'https://example.com/face.jpg' };

test('Tool/Detail names the tool as Wiro does, ids and price as strings', () => {
  assert.equal(detail.id, '598');
  assert.equal(detail.slugowner, 'wiro');
  assert.equal(detail.slugproject, 'instant-id-controlnet-lora');
  assert.equal(detail.cleanslugowner, 'wiro');
  assert.equal(detail.cleanslugproject, 'instant-id-controlnet-lora');
  assert.equal(detail.description, tool.description);
  assert.equal(detail.image, 'https://cdn.wiro.ai/uploads/models/wiro-instant-id-pose-cover.png');
  assert.equal(detail.cover, detail.image);
  assert.deepEqual(detail.categories, ['tool', 'image-to-image', 'persistent']);
  assert.equal(detail.cps, '0.000585000000');
  assert.deepEqual(detail.dynamicprice, []);
  assert.deepEqual(detail.taskstat, { runcount: '0', successcount: '0', errorcount: '0', lastruntime: '0' });
});

test('Tool/Detail survives JSON unchanged (no undefined, no bigint)', () => {
  assert.deepEqual(JSON.parse(JSON.stringify(detail)), detail);
});

test('Wiro’s inputs form the first parameter group; ours a second, each marked as an extension', () => {
  assert.equal(detail.parameters.length, 2);
  const [wiro, ours] = detail.parameters;
  assert.equal(wiro!.items.some((i) => 'extension' in i), false);
  assert.deepEqual(ours!.items.map((i) => [i.id, i.extension]), [
    ['inputPoseImage', true], ['width', true], ['height', true], ['identitynet_scale', true],
  ]);
});

test('every item has the documented fields; defaults are strings as the seed writes them', () => {
  for (const i of items) {
    assert.equal(typeof i.id, 'string');
    assert.equal(typeof i.type, 'string');
    assert.equal(typeof i.label, 'string');
    assert.equal(typeof i.description, 'string');
    assert.equal(typeof i.default, 'string', i.id);
    assert.equal(typeof i.required, 'boolean');
    assert.equal(typeof i.advanced, 'boolean');
  }
  const defaults = Object.fromEntries(items.map((i) => [i.id, i.default]));
  assert.deepEqual(
    {
      steps: defaults.steps, scale: defaults.scale, ip_adapter_scale: defaults.ip_adapter_scale, samples: defaults.samples,
      seed: defaults.seed, scheduler: defaults.scheduler, selectedControlnetModel: defaults.selectedControlnetModel,
      selectedModel: defaults.selectedModel, selectedLoraModel: defaults.selectedLoraModel, width: defaults.width,
    },
    {
      steps: '20', scale: '5.0', ip_adapter_scale: '0.8', samples: '1', seed: '3572004920', scheduler: 'DDIMScheduler',
      selectedControlnetModel: '454', selectedModel: '', selectedLoraModel: '', width: '',
    },
  );
});

test('the face photo is a required fileinput named inputImage (its URL goes in inputImageUrl)', () => {
  const i = item('inputImage');
  assert.equal(i.type, 'fileinput');
  assert.equal(i.required, true);
  assert.match(i.note ?? '', /inputImageUrl/);
});

test('numeric items carry min, max and step as numbers', () => {
  assert.deepEqual(
    ['steps', 'scale', 'ip_adapter_scale', 'samples'].map((id) => [id, item(id).min, item(id).max, item(id).step]),
    [['steps', 1, 100, 1], ['scale', 0, 30, 0.1], ['ip_adapter_scale', 0, 1.5, 0.05], ['samples', 1, 8, 1]],
  );
});

test('every option of the seed is in Tool/Detail with its trigger words and generate settings', { skip: readSeed() ? false : `seed not found at ${seedPath}` }, () => {
  for (const s of readSeed()!.inputs) {
    if (s.options.length === 0) continue;
    const options = item(s.name).options ?? assert.fail(`${s.name} has no options`);
    for (const o of s.options) {
      const mine = options.find((x) => x.value === o.value) ?? assert.fail(`${s.name}: ${o.value} missing`);
      assert.equal(mine.label, o.label);
      assert.equal(mine.description, o.description ?? '');
      assert.deepEqual(mine.triggerwords, o.triggerwords ?? []);
      assert.deepEqual(mine.generatesettings, o.generatesettings ?? []);
    }
  }
});

test('every option Tool/Detail lists is accepted by Run', () => {
  for (const i of items) {
    for (const o of i.options ?? []) {
      const r = validateRun(tool, { ...MINIMAL, [i.id]: o.value });
      assert.equal(r.ok, true, `${i.id}=${o.value}: ${JSON.stringify(!r.ok && r.errors)}`);
    }
  }
});

test('every numeric range Tool/Detail shows is the one Run enforces', () => {
  for (const i of items.filter((x) => x.min !== undefined && x.max !== undefined)) {
    for (const inside of [i.min!, i.max!]) assert.equal(validateRun(tool, { ...MINIMAL, [i.id]: inside }).ok, true, `${i.id}=${inside}`);
    // Where 0 is read as the default (its description says so), the first value below is the next one down.
    const zeroIsDefault = i.min! > 0 && /0 or empty means the default/.test(i.description);
    if (zeroIsDefault) assert.equal(validateRun(tool, { ...MINIMAL, [i.id]: 0 }).ok, true, `${i.id}=0`);
    const below = zeroIsDefault && i.min! - i.step! === 0 ? -i.step! : i.min! - i.step!;
    for (const outside of [below, i.max! + i.step!]) {
      assert.deepEqual(validateRun(tool, { ...MINIMAL, [i.id]: outside }), {
        ok: false,
        errors: [{ code: 0, message: `Request parameter [${i.id}] must be between ${i.min} and ${i.max}` }],
      });
    }
  }
});

test('every generate setting range Tool/Detail shows is the one Run enforces', () => {
  for (const i of items) {
    for (const o of i.options ?? []) {
      for (const g of o.generatesettings) {
        const body = { ...MINIMAL, [i.id]: o.value };
        assert.equal(validateRun(tool, { ...body, [g.id]: g.maxvalue }).ok, true, g.id);
        assert.equal(validateRun(tool, { ...body, [g.id]: Number(g.maxvalue) + 0.01 }).ok, false, g.id);
      }
    }
  }
});

test('a Tool/List entry is the summary Wiro’s list example shows: no parameters, price as a JSON string', () => {
  const entry = toolListItem(tool, { runcount: 3, successcount: 2, errorcount: 1, lastruntime: 1734513807 });
  assert.equal('parameters' in entry, false);
  assert.equal(entry.dynamicprice, '[]');
  assert.deepEqual(entry.taskstat, { runcount: 3, successcount: '2', errorcount: '1', lastruntime: '1734513807' });
  assert.equal(entry.cleanslugproject, 'instant-id-controlnet-lora');
  assert.equal(entry.cps, '0.000585000000');
});
