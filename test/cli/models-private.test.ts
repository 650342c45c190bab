// likeness models private add|ls: the operator gives a checkpoint or LoRA to one project. add checks
// the file (a LoRA that fits SDXL, an SDXL checkpoint), copies it into that project's folder under its
// id, never overwrites without --replace and leaves no partial copy; ls lists what each project has.
// Unknown projects, missing files and bad ids are clear errors (exit 2). Also the start-up warning
// about the old shared layout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/models.js';
import { writeSafetensors } from '../../src/engine/formats/safetensors-write.js';
import { smokeLoraTensors } from '../../src/engine/lora/smoke.js';
import { SDXL_BASE_TEXT_ENCODER_CONFIG } from '../../src/engine/smoke-sizes.js';
import { openStore } from '../../src/service/app.js';
import { createAvailability } from '../../src/tools/catalog.js';
import { instantIdControlnetLora } from '../../src/tools/instant-id-controlnet-lora.js';
import { oldLayoutWarning } from '../../src/tools/private-models.js';

const root = mkdtempSync(join(tmpdir(), 'likeness-models-private-'));
const home = join(root, 'home');
const src = join(root, 'src');
let alpha: number;
let beta: number;

const f32 = (n: number) => ({ dtype: 'F32' as const, shape: [n], data: new Float32Array(n) });

before(async () => {
  const store = openStore({ home });
  alpha = (await store.createProject('alpha', 'signature')).id;
  beta = (await store.createProject('beta', 'apikey')).id;
  await store.close();
  mkdirSync(src, { recursive: true });
  // A kohya LoRA on SDXL's first text encoder, rank 1: real layer shapes, a few hundred KB.
  const lora = smokeLoraTensors({ textEncoder: SDXL_BASE_TEXT_ENCODER_CONFIG }, { rank: 1 });
  await writeSafetensors(join(src, 'style.safetensors'), lora);
  await writeSafetensors(join(src, 'style-v2.safetensors'), smokeLoraTensors({ textEncoder: SDXL_BASE_TEXT_ENCODER_CONFIG }, { rank: 1, seed: 9 }));
  // The tensor names of an SGM SDXL checkpoint (enough for the header check).
  await writeSafetensors(join(src, 'portrait-xl.safetensors'), {
    'model.diffusion_model.input_blocks.0.0.weight': f32(4),
    'conditioner.embedders.0.transformer.text_model.embeddings.position_ids': f32(4),
    'conditioner.embedders.1.model.ln_final.weight': f32(4),
  });
  mkdirSync(join(src, 'diffusers-xl', 'unet'), { recursive: true });
  writeFileSync(join(src, 'diffusers-xl', 'model_index.json'), '{"_class_name": "StableDiffusionXLPipeline"}');
  writeFileSync(join(src, 'diffusers-xl', 'unet', 'config.json'), '{}');
  await writeSafetensors(join(src, 'sd15.safetensors'), {
    'lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight': { dtype: 'F32', shape: [1, 768], data: new Float32Array(768) },
    'lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight': { dtype: 'F32', shape: [3072, 1], data: new Float32Array(3072) },
  });
  await writeSafetensors(join(src, 'mystery.safetensors'), { 'foo.weight': f32(4) });
  writeFileSync(join(src, 'notes.safetensors'), 'hello, not weights');
});

after(() => rmSync(root, { recursive: true, force: true }));

/** Runs `likeness models …` in this process; its exit code, stdout and stderr. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    return { code: await run([...args, '--home', home]), out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const loras = (project: number): string => join(home, 'models', 'loras', 'private', String(project));
const checkpoints = (project: number): string => join(home, 'models', 'checkpoints', 'private', String(project));
const available = (input: string, id: string, projectId: number) => createAvailability(home, instantIdControlnetLora)(input, id, { projectId });

test('add copies a LoRA into the project\'s folder under its file name; only that project\'s Runs find it', async () => {
  const r = await cli('private', 'add', '--project', 'alpha', join(src, 'style.safetensors'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^added private LoRA style of project "alpha" \\(id ${alpha}\\): .*style\\.safetensors`, 'm'));
  assert.match(r.out, /"selectedLoraModelPrivate": "style"/);
  assert.deepEqual(readFileSync(join(loras(alpha), 'style.safetensors')), readFileSync(join(src, 'style.safetensors')));
  assert.deepEqual(readdirSync(loras(alpha)), ['style.safetensors'], 'no temporary copy is left behind');
  assert.equal(available('selectedLoraModelPrivate', 'style', alpha), undefined);
  assert.match(available('selectedLoraModelPrivate', 'style', beta)!, /style is not a private LoRA of this project/);
});

test('add refuses to overwrite without --replace; with it, the new file takes the id', async () => {
  const again = await cli('private', 'add', '--project', 'alpha', '--id', 'style', join(src, 'style-v2.safetensors'));
  assert.equal(again.code, 2);
  assert.match(again.err, /this project already has a private LoRA "style" .*pass --replace to overwrite it/);
  assert.deepEqual(readFileSync(join(loras(alpha), 'style.safetensors')), readFileSync(join(src, 'style.safetensors')), 'unchanged');
  const replaced = await cli('private', 'add', '--project', 'alpha', '--id', 'style', '--replace', join(src, 'style-v2.safetensors'));
  assert.equal(replaced.code, 0, replaced.err);
  assert.match(replaced.out, /^replaced private LoRA style/m);
  assert.deepEqual(readFileSync(join(loras(alpha), 'style.safetensors')), readFileSync(join(src, 'style-v2.safetensors')));
  assert.deepEqual(readdirSync(loras(alpha)), ['style.safetensors']);
});

test('add takes the project by id too; a checkpoint is told by its tensors; --json says what was written', async () => {
  const r = await cli('private', 'add', '--project', String(beta), '--id', 'xl', '--json', join(src, 'portrait-xl.safetensors'));
  assert.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out) as Record<string, unknown>;
  assert.deepEqual(json, {
    project: 'beta', projectId: beta, kind: 'checkpoint', id: 'xl', path: join(checkpoints(beta), 'xl.safetensors'),
    bytes: readFileSync(join(src, 'portrait-xl.safetensors')).length, replaced: false,
  });
  assert.equal(available('selectedModelPrivate', 'xl', beta), undefined);
  assert.match(available('selectedModelPrivate', 'xl', alpha)!, /xl is not a private checkpoint of this project/);
});

test('a diffusers folder is a checkpoint; --replace swaps the file form for the folder form', async () => {
  const kept = await cli('private', 'add', '--project', 'beta', '--id', 'xl', join(src, 'diffusers-xl'));
  assert.equal(kept.code, 2);
  assert.match(kept.err, /already has a private checkpoint "xl"/);
  const r = await cli('private', 'add', '--project', 'beta', '--id', 'xl', '--replace', join(src, 'diffusers-xl'));
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(checkpoints(beta)), ['xl'], 'the old file is gone, no temporary copy is left');
  assert.ok(existsSync(join(checkpoints(beta), 'xl', 'unet', 'config.json')));
  assert.equal(available('selectedModelPrivate', 'xl', beta), undefined);
  const named = await cli('private', 'add', '--project', 'beta', join(src, 'diffusers-xl'));
  assert.equal(named.code, 0, named.err);
  assert.match(named.out, /checkpoint diffusers-xl of project "beta"/);
});

test('ls lists each project\'s private models; --project one project; --json rows', async () => {
  const all = await cli('private', 'ls');
  assert.equal(all.code, 0, all.err);
  assert.match(all.out, new RegExp(`^alpha\\t${alpha}\\tlora\\tstyle\\t`, 'm'));
  assert.match(all.out, new RegExp(`^beta\\t${beta}\\tcheckpoint\\txl\\t`, 'm'));
  const one = await cli('private', 'ls', '--project', 'alpha', '--json');
  assert.equal(one.code, 0, one.err);
  const rows = JSON.parse(one.out) as { project: string; kind: string; id: string; path: string; bytes: number }[];
  assert.deepEqual(rows.map((r) => `${r.project}:${r.kind}:${r.id}`), ['alpha:lora:style']);
  assert.equal(rows[0]!.path, join(loras(alpha), 'style.safetensors'));
  assert.ok(rows[0]!.bytes > 0);
});

test('unknown project, missing file, bad id: clear errors, nothing written', async () => {
  const cases: [string[], RegExp][] = [
    [['--project', 'gamma', join(src, 'style.safetensors')], /no project named or numbered "gamma"/],
    [['--project', '999', join(src, 'style.safetensors')], /no project named or numbered "999"/],
    [[join(src, 'style.safetensors')], /needs --project/],
    [['--project', 'beta', join(src, 'nothing-here.safetensors')], /nothing-here\.safetensors does not exist/],
    [['--project', 'beta', '--id', '../x', join(src, 'style.safetensors')], /"\.\.\/x" cannot be a model id/],
    [['--project', 'beta', '--id', '.hidden', join(src, 'style.safetensors')], /"\.hidden" cannot be a model id/],
    [['--project', 'beta', '--kind', 'embedding', join(src, 'style.safetensors')], /--kind embedding: use lora or checkpoint/],
  ];
  for (const [args, message] of cases) {
    const r = await cli('private', 'add', ...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, message, args.join(' '));
  }
  assert.ok(!existsSync(loras(beta)), 'nothing was written for beta');
});

test('a file that is not what it should be is refused at once, saying what it is', async () => {
  const cases: [string[], RegExp][] = [
    [[join(src, 'notes.safetensors')], /notes\.safetensors is not a \.safetensors file/],
    [[join(src, 'mystery.safetensors')], /cannot tell .* whether .*mystery\.safetensors is a LoRA or a checkpoint: pass --kind/],
    [['--kind', 'lora', join(src, 'portrait-xl.safetensors')], /is a model checkpoint .*not a LoRA: use --kind checkpoint/],
    [['--kind', 'checkpoint', join(src, 'style.safetensors')], /is a LoRA, not a model checkpoint/],
    [['--kind', 'lora', join(src, 'diffusers-xl')], /is a folder: a LoRA is one \.safetensors file/],
    [[join(src, 'sd15.safetensors')], /is not an SDXL LoRA .*SD 1\.x.*checked against SDXL base's layers/],
  ];
  for (const [args, message] of cases) {
    const r = await cli('private', 'add', '--project', 'beta', ...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, message, args.join(' '));
  }
  assert.ok(!existsSync(loras(beta)), 'nothing was written');
});

test('the old shared layout: a start-up warning naming the files and the command; ls says they are not used', async () => {
  assert.equal(oldLayoutWarning(home), undefined, 'per-project folders are not the old layout');
  writeFileSync(join(home, 'models', 'loras', 'private', 'old-style.safetensors'), 'weights');
  const warning = oldLayoutWarning(home)!;
  assert.match(warning, /^1 private model in the old shared folders is no longer used/);
  assert.match(warning, /models\/loras\/private\/old-style\.safetensors/);
  assert.match(warning, /`likeness models private add --project NAME FILE`/);
  assert.match((await cli('private', 'ls')).out, /^not used .*models\/loras\/private\/old-style\.safetensors/m);
  assert.ok(existsSync(join(home, 'models', 'loras', 'private', 'old-style.safetensors')), 'never moved by itself');
});
