// The tool's definition is the seed's tool: every input, option, trigger word and generate setting
// as Wiro publishes them, with the documented departures and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { instantIdControlnetLora as tool, SCHEDULERS } from '../../src/tools/instant-id-controlnet-lora.js';
import type { InputSpec, OptionSpec } from '../../src/tools/types.js';
import { readSeed, seedPath } from './seed.js';
import { findTool, TOOLS } from '../../src/tools/registry.js';

const seed = readSeed();
const skip = seed ? false : `seed not found at ${seedPath}`;

/** The seed's inputImageUrl is the URL half of our inputImage file input. */
const ourId = (seedName: string): string => (seedName === 'inputImageUrl' ? 'inputImage' : seedName);
const input = (id: string): InputSpec => tool.inputs.find((i) => i.id === id) ?? assert.fail(`no input ${id}`);
const optionsOf = (i: InputSpec): readonly OptionSpec[] => (i.type === 'select' || i.type === 'multiselect' ? i.options : []);

test('identity, categories, cover and price are the seed’s', () => {
  assert.equal(`${tool.owner}/${tool.slug}`, 'wiro/instant-id-controlnet-lora');
  assert.equal(
    tool.description,
    'InstantID is a method to achieve ID-preserving generation with only single image. Alternatively, it can take an image to control the pose of the output.',
  );
  assert.deepEqual(tool.categories, ['tool', 'image-to-image', 'persistent']);
  assert.equal(tool.cover, 'https://cdn.wiro.ai/uploads/models/wiro-instant-id-pose-cover.png');
  assert.equal(tool.cps, '0.000585000000');
});

test('every seed input is declared, in the seed’s order, before our extensions', { skip }, () => {
  const seedIds = seed!.inputs.map((i) => ourId(i.name));
  assert.deepEqual(
    tool.inputs.filter((i) => !i.extension).map((i) => i.id),
    seedIds,
  );
  assert.deepEqual(
    tool.inputs.filter((i) => i.extension).map((i) => i.id),
    ['inputPoseImage', 'width', 'height', 'identitynet_scale'],
  );
});

test('labels, help texts and types are the seed’s (inputImageUrl becomes a fileinput)', { skip }, () => {
  for (const s of seed!.inputs) {
    const ours = input(ourId(s.name));
    assert.equal(ours.label, s.label, s.name);
    assert.equal(ours.help, s.help, s.name);
    assert.equal(ours.type, s.name === 'inputImageUrl' ? 'fileinput' : s.type, s.name);
  }
});

test('every option of the seed is present with its label, description, trigger words and generate settings', { skip }, () => {
  for (const s of seed!.inputs) {
    const ours = optionsOf(input(ourId(s.name)));
    const seen = new Set<string>();
    const unique = s.options.filter((o) => !seen.has(o.value) && seen.add(o.value));
    assert.equal(ours.length, unique.length, `${s.name}: option count`);
    for (const o of unique) {
      const mine = ours.find((x) => x.value === o.value) ?? assert.fail(`${s.name}: option ${o.value} missing`);
      assert.equal(mine.label, o.label, `${s.name} ${o.value}`);
      assert.equal(mine.description, o.description, `${s.name} ${o.value}`);
      assert.deepEqual(mine.triggerwords, o.triggerwords, `${s.name} ${o.value}`);
      assert.deepEqual(mine.generatesettings, o.generatesettings, `${s.name} ${o.value}`);
    }
  }
});

test('defaults are the seed’s, except model defaults that point outside the option lists', { skip }, () => {
  for (const s of seed!.inputs) {
    const ours = input(ourId(s.name));
    if (ours.type === 'fileinput') continue;
    if (s.name === 'selectedModel' || s.name === 'selectedLoraModel') {
      assert.equal(ours.type === 'select' && ours.default, '', `${s.name}: none`);
      assert.ok(ours.type === 'select' && ours.defaultAliases?.includes(s.default), `${s.name}: "${s.default}" still accepted`);
      continue;
    }
    const expected = ours.type === 'number' || ours.type === 'float' ? Number(s.default) : ours.type === 'multiselect' ? [s.default] : s.default;
    assert.deepEqual(ours.default, expected, s.name);
  }
});

test('the seed lists EulerDiscreteScheduler twice; the definition once', () => {
  assert.equal(SCHEDULERS.filter((s) => s === 'EulerDiscreteScheduler').length, 1);
  assert.equal(new Set(SCHEDULERS).size, SCHEDULERS.length);
  assert.equal(SCHEDULERS.length, 8);
});

test('every generate setting id is unique and names no input', () => {
  const ids = tool.inputs.flatMap((i) => optionsOf(i).flatMap((o) => (o.generatesettings ?? []).map((g) => g.id)));
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.equal(tool.inputs.some((i) => i.id === id || `${i.id}Url` === id), false, id);
});

test('the registry offers this tool and finds it case-insensitively, nothing else', () => {
  assert.deepEqual(TOOLS, [tool]);
  assert.equal(findTool('wiro', 'instant-id-controlnet-lora'), tool);
  assert.equal(findTool('Wiro', 'Instant-ID-ControlNet-LoRA'), tool);
  assert.equal(findTool('wiro', 'instant-id'), undefined);
  assert.equal(findTool('someone', 'instant-id-controlnet-lora'), undefined);
});
