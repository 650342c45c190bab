// LoRAs at run time: a UNet / text encoder built with LoRA slots computes the same as one with the
// LoRAs fused into its weights, for any set and scale, without a rebuild or a new compile-cache entry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoraDelta, LoraFactors } from '../../../src/engine/formats/lora.js';
import { openWeights, type WeightsFile } from '../../../src/engine/formats/weights.js';
import { loadCase, type GoldenCase } from '../../../src/engine/golden/case.js';
import { ioF32 } from '../../../src/engine/golden/net-io.js';
import { withLoras, type ScaledLora } from '../../../src/engine/lora/apply.js';
import { runtimeLoraFeeds, runtimeLoraSupport } from '../../../src/engine/lora/runtime.js';
import { loadClipTextEncoder } from '../../../src/engine/nets/clip-text.js';
import { createUnetRunner, type UnetRunner, type UnetStepInputs } from '../../../src/engine/nets/unet-runner.js';
import type { TensorSource } from '../../../src/engine/nets/sdxl-weights.js';
import { golden } from '../../helpers/paths.js';
import { ramp } from './helpers.js';

let cacheDir: string;
let unetCase: GoldenCase;
let weights: WeightsFile;
let inputs: UnetStepInputs;

before(() => {
  cacheDir = mkdtempSync(join(tmpdir(), 'likeness-lora-runtime-'));
  unetCase = loadCase(golden('unet-sdxl'));
  weights = openWeights(unetCase.file('weights.safetensors'));
  inputs = {
    sample: ioF32(unetCase, 'sample'),
    timestep: ioF32(unetCase, 'timestep'),
    encoderHiddenStates: ioF32(unetCase, 'encoder_hidden_states'),
    textEmbeds: ioF32(unetCase, 'text_embeds'),
    timeIds: ioF32(unetCase, 'time_ids'),
  };
});

after(() => {
  weights.close();
  unetCase.close();
  rmSync(cacheDir, { recursive: true, force: true });
});

/** A LoRA of the given rank on every weight `pick` chooses, deterministic factors (seeded by `seed`). */
function loraOn(source: { names(): string[]; info(n: string): { shape: number[] } }, pick: (name: string) => boolean, rank: number, alpha: number, seed: number): LoraDelta[] {
  return source.names().filter(pick).map((target, i) => {
    const shape = source.info(target).shape;
    const [out, inp] = shape as [number, number];
    const f: LoraFactors = { down: ramp(rank * inp, 0.2, seed + i), up: ramp(out * rank, 0.2, seed + 2 * i + 1) };
    return { target, source: `lora_${target}`, targetShape: shape, rank, alpha, downShape: [rank, inp], upShape: [out, rank], load: () => f };
  });
}

const attnLinear = (n: string): boolean => /transformer_blocks\.\d+\.(attn[12]\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2))\.weight$/.test(n);
const projLinear = (n: string): boolean => /attentions\.\d+\.proj_(in|out)\.weight$/.test(n);

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function fused(loras: readonly ScaledLora[], hash: string): Promise<Float32Array> {
  const runner = await createUnetRunner({ config: unetCase.config, weights: withLoras(weights as TensorSource, loras), weightsHash: hash }, { cacheDir, session: { intraOpThreads: 1 } });
  try {
    return (await runner.run(inputs)).data;
  } finally {
    await runner.dispose();
  }
}

test('a UNet with LoRA slots: no LoRA = the base; LoRA sets and scales = the fused weights, with no rebuild and no new cache entry', async () => {
  const a = loraOn(weights, attnLinear, 4, 2, 1);
  const b = loraOn(weights, (n) => attnLinear(n) || projLinear(n), 2, 2, 7);
  assert.ok(a.length >= 20, `the tiny UNet has ${a.length} attention linears`);

  const base = await fused([], 'base');
  const runner: UnetRunner = await createUnetRunner({ config: unetCase.config, weights, weightsHash: 'base' }, { cacheDir, loraSlots: true, session: { intraOpThreads: 1 } });
  try {
    assert.ok(runner.loraSlots.size > a.length, 'every UNet Linear has a slot');
    const entries = readdirSync(cacheDir).sort();
    const tol = 1e-4;
    assert.ok(maxDiff((await runner.run(inputs)).data, base) <= 1e-5, 'all slots at rank 0 compute the base UNet');

    const cases: { name: string; loras: ScaledLora[] }[] = [
      { name: 'one LoRA at 0.8', loras: [{ deltas: a, scale: 0.8 }] },
      { name: 'the same LoRA at -0.5', loras: [{ deltas: a, scale: -0.5 }] },
      { name: 'two LoRAs stacked on shared layers', loras: [{ deltas: a, scale: 0.6 }, { deltas: b, scale: 1.3 }] },
      { name: 'the second alone (another set)', loras: [{ deltas: b, scale: 1 }] },
    ];
    for (const [i, c] of cases.entries()) {
      runner.setLoras(c.loras);
      const got = (await runner.run(inputs)).data;
      const want = await fused(c.loras, `fused-${i}`);
      assert.ok(maxDiff(want, base) > 100 * tol, `${c.name}: the LoRA changes the output`);
      assert.ok(maxDiff(got, want) <= tol, `${c.name}: branches vs fused differ by ${maxDiff(got, want)}`);
    }
    assert.equal(entries.length, 2, 'the base reference and the slotted UNet');
    assert.equal(readdirSync(cacheDir).length, entries.length + cases.length, 'only the fused references added entries: setLoras wrote nothing');
    runner.setLoras([]);
    assert.ok(maxDiff((await runner.run(inputs)).data, base) <= 1e-5, 'setLoras([]) returns to the base');
  } finally {
    await runner.dispose();
  }
});

test('a text encoder with LoRA slots matches the fused encoder', async () => {
  const c = loadCase(golden('clip-text-l'));
  const w = openWeights(c.file('weights.safetensors'));
  try {
    const ids = c.io().read('input_ids') as BigInt64Array;
    const [batch, seqLen] = c.io().info('input_ids').shape as [number, number];
    const loras = [{ deltas: loraOn(w, (n) => /layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])\.weight$/.test(n), 3, 3, 5), scale: 0.9 }];
    const fusedEnc = await loadClipTextEncoder(withLoras(w, loras), c.config, { intraOpThreads: 1, outputs: ['last_hidden_state'] });
    const slotted = await loadClipTextEncoder(w, c.config, { intraOpThreads: 1, outputs: ['last_hidden_state'], loraSlots: true });
    try {
      const want = (await fusedEnc.encode(ids, batch, seqLen)).lastHidden!;
      const base = (await slotted.encode(ids, batch, seqLen)).lastHidden!;
      slotted.setLoras(loras);
      const got = (await slotted.encode(ids, batch, seqLen)).lastHidden!;
      assert.ok(maxDiff(want, base) > 1e-2, 'the LoRA changes the hidden states');
      assert.ok(maxDiff(got, want) <= 1e-4, `branches vs fused differ by ${maxDiff(got, want)}`);
    } finally {
      await fusedEnc.dispose();
      await slotted.dispose();
    }
  } finally {
    w.close();
    c.close();
  }
});

test('DoRA and convolutions are not run-time LoRAs (support says why, feeds refuse); a weight the graph never reads is left out', () => {
  const slots = new Map([['a.weight', { weight: 'a.weight', inFeatures: 4, outFeatures: 3 }]]);
  const f: LoraFactors = { down: ramp(8, 0.1), up: ramp(6, 0.1) };
  const linear: LoraDelta = { target: 'a.weight', source: 'lora_a', targetShape: [3, 4], rank: 2, alpha: 2, downShape: [2, 4], upShape: [3, 2], load: () => f };
  assert.deepEqual(runtimeLoraSupport([{ deltas: [linear], scale: 1 }]), { ok: true });
  const dora = { ...linear, dora: 'out' as const };
  const conv = { ...linear, target: 'c.weight', targetShape: [3, 4, 3, 3] };
  const unread = { ...linear, target: 'b.weight' };
  assert.deepEqual(runtimeLoraSupport([{ deltas: [unread], scale: 1 }]), { ok: true });
  assert.deepEqual(runtimeLoraFeeds(slots, [{ deltas: [unread], scale: 1 }])['a.weight#lora_down']!.dims, [0, 4], 'left out: the slot stays at rank 0');
  for (const [d, why] of [[dora, /DoRA/], [conv, /convolution/]] as const) {
    const r = runtimeLoraSupport([{ deltas: [d], scale: 1 }]);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, why);
    assert.throws(() => runtimeLoraFeeds(slots, [{ deltas: [d], scale: 1 }]), { code: 'lora_not_runtime' });
  }
  assert.deepEqual(runtimeLoraSupport([{ deltas: [dora], scale: 0 }]), { ok: true }, 'a LoRA at scale 0 is left out');
  const feeds = runtimeLoraFeeds(slots, [{ deltas: [linear], scale: 0.5 }, { deltas: [linear], scale: 1 }]);
  assert.deepEqual(feeds['a.weight#lora_down']!.dims, [4, 4], 'two LoRAs stack along the rank');
  assert.deepEqual(feeds['a.weight#lora_up']!.dims, [3, 4]);
  assert.deepEqual([...feeds['a.weight#lora_up']!.data.subarray(4, 8)], [f.up[2], f.up[3], f.up[2], f.up[3]], 'up rows side by side');
  assert.deepEqual([...feeds['a.weight#lora_scale']!.data], [0.5, 0.5, 1, 1], 'scale · alpha / rank per rank column');
  assert.equal(runtimeLoraFeeds(slots, [{ deltas: [linear], scale: 1 }])['a.weight#lora_down']!.data, f.down, 'one LoRA feeds its own arrays');
  assert.throws(() => runtimeLoraFeeds(slots, [{ deltas: [{ ...linear, targetShape: [4, 4] }], scale: 1 }]), { code: 'lora_incompatible' });
  const second = { ...linear };
  const memo = new Map();
  const first = runtimeLoraFeeds(slots, [{ deltas: [linear], scale: 0.5 }, { deltas: [second], scale: 1 }], memo);
  const rescaled = runtimeLoraFeeds(slots, [{ deltas: [linear], scale: 0.25 }, { deltas: [second], scale: 1 }], memo);
  assert.equal(rescaled['a.weight#lora_up']!.data, first['a.weight#lora_up']!.data, 'a scale change reuses the stacked factors');
  assert.deepEqual([...rescaled['a.weight#lora_scale']!.data], [0.25, 0.25, 1, 1]);
  const swapped = runtimeLoraFeeds(slots, [{ deltas: [second], scale: 1 }, { deltas: [linear], scale: 0.5 }], memo);
  assert.notEqual(swapped['a.weight#lora_up']!.data, first['a.weight#lora_up']!.data, 'another order is another stack');
});
