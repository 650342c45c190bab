// Golden kind `lora_kohya`: a kohya-format LoRA (SGM UNet names, lora_te1_/lora_te2_, per-module
// alpha, LoCon convs) applied at the case's adapter weight to the tiny SDXL UNet and both text
// encoders of the cases it references. Checked, in order:
//   modules          the file's modules map to exactly the diffusers/transformers modules the case lists
//   merged_weights   W' read through withLoras() vs an independent merge from the kohya tensors by name
//   unet_output, te1_*, te2_*   the nets run on the merged weights vs diffusers + PEFT
//   unet_output_runtime, te1_/te2_*_runtime   the same with the Linear deltas as run-time branches
//                    (lora/runtime.ts; LoCon convs stay fused), against the same references
import { join } from 'node:path';
import { loadCase, type GoldenCase } from '../case.js';
import { compareClose, maxAbs, type Check } from '../compare.js';
import { caseFile, goldenCacheDir, ioF32 } from '../net-io.js';
import { readLora, describeDeltas, type LoraFile } from '../../formats/lora.js';
import { loraTargetsFromWeights } from '../../formats/lora-keymap.js';
import { SafetensorsFile } from '../../formats/safetensors.js';
import { openWeights, type WeightsFile } from '../../formats/weights.js';
import { loraCacheKey, lorasFor, withLoras } from '../../lora/apply.js';
import { loadClipTextEncoder, type ClipTextOutputs } from '../../nets/clip-text.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { mergeSources } from '../../nets/sdxl-weights.js';
import { createUnetRunner } from '../../nets/unet-runner.js';

interface Base {
  config: Record<string, unknown>;
  dir: string;
  weightsPath: string;
  weights: WeightsFile;
}

function openBase(c: GoldenCase, role: 'unet' | 'text_encoder' | 'text_encoder_2'): Base {
  const models = (c.config.base_models ?? {}) as Record<string, unknown>;
  const rel = models[role];
  if (typeof rel !== 'string') throw new Error(`${c.name}: config.base_models has no ${role}`);
  const base = loadCase(c.file(rel));
  base.close();
  const files = (base.json.files ?? {}) as Record<string, unknown>;
  const weightsPath = base.file(typeof files.weights === 'string' ? files.weights : 'weights.safetensors');
  return { config: base.config, dir: base.dir, weightsPath, weights: openWeights(weightsPath) };
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const scale = typeof c.config.scale === 'number' ? c.config.scale : 1;
  const unet = openBase(c, 'unet');
  const te1 = openBase(c, 'text_encoder');
  const te2 = openBase(c, 'text_encoder_2');
  const lora = readLora(caseFile(c, 'lora'), loraTargetsFromWeights({
    unet: { config: unet.config, weights: unet.weights },
    textEncoder: te1.weights,
    textEncoder2: te2.weights,
  }));
  try {
    const applied = [{ lora, scale }];
    const checks = [checkModules(c, lora), checkMerge(c, lora, scale, { unet, te1, te2 })];

    // UNet, on the inputs of the case it patches
    const runner = await createUnetRunner({
      config: unet.config,
      weights: withLoras(mergeSources([unet.weights]), lorasFor('unet', applied)),
      weightsHash: loraCacheKey(await weightsHashOf([unet.weightsPath]), [{ id: lora.id, scale }]),
    }, { cacheDir: goldenCacheDir(), session: { intraOpThreads: 1 } });
    // the run-time form: Linear deltas as branches, the rest (LoCon convs) fused
    const unetDeltas = lora.deltas.unet;
    const branched = unetDeltas.filter((d) => !d.dora && d.targetShape.length === 2);
    const fusedRest = unetDeltas.filter((d) => !branched.includes(d));
    const slotted = await createUnetRunner({
      config: unet.config,
      weights: withLoras(mergeSources([unet.weights]), [{ deltas: fusedRest, scale }]),
      weightsHash: loraCacheKey(await weightsHashOf([unet.weightsPath]), [{ id: `${lora.id}:not-branched`, scale }]),
    }, { cacheDir: goldenCacheDir(), loraSlots: true, session: { intraOpThreads: 1 } });
    slotted.setLoras([{ deltas: branched, scale }]);
    try {
      const unetCase = loadCase(unet.dir);
      try {
        const inputs = {
          sample: ioF32(unetCase, 'sample'),
          timestep: ioF32(unetCase, 'timestep'),
          encoderHiddenStates: ioF32(unetCase, 'encoder_hidden_states'),
          textEmbeds: ioF32(unetCase, 'text_embeds'),
          timeIds: ioF32(unetCase, 'time_ids'),
        };
        const expected = c.io().readFloat32('unet_output');
        checks.push(compareClose('unet_output', (await runner.run(inputs)).data, expected, c.tolerance));
        checks.push(compareClose('unet_output_runtime', (await slotted.run(inputs)).data, expected, c.tolerance));
      } finally {
        unetCase.close();
      }
    } finally {
      await runner.dispose();
      await slotted.dispose();
    }

    // Text encoders, on this case's input_ids
    const ids = c.io().read('input_ids') as BigInt64Array;
    const [batch, seqLen] = c.io().info('input_ids').shape as [number, number];
    const encode = async (base: Base, withProjection: boolean, component: 'text_encoder' | 'text_encoder_2', runtime = false): Promise<ClipTextOutputs> => {
      const encoder = await loadClipTextEncoder(runtime ? base.weights : withLoras(base.weights, lorasFor(component, applied)), base.config, {
        withProjection, intraOpThreads: 1, interOpThreads: 1,
        outputs: withProjection ? ['penultimate', 'text_embeds'] : ['penultimate', 'last_hidden_state', 'pooled'],
        ...(runtime ? { loraSlots: true } : {}),
      });
      try {
        if (runtime) encoder.setLoras(lorasFor(component, applied));
        return await encoder.encode(ids, batch, seqLen);
      } finally {
        await encoder.dispose();
      }
    };
    const expect = (name: string, actual: Float32Array | undefined): Check =>
      actual ? compareClose(name, actual, c.io().readFloat32(name), c.tolerance)
        : { name, maxAbsError: Infinity, allowed: 0, pass: false, note: 'the encoder did not produce it' };
    const o1 = await encode(te1, false, 'text_encoder');
    checks.push(expect('te1_hidden_states_penultimate', o1.penultimate), expect('te1_last_hidden_state', o1.lastHidden), expect('te1_pooler_output', o1.pooled));
    const o2 = await encode(te2, true, 'text_encoder_2');
    checks.push(expect('te2_hidden_states_penultimate', o2.penultimate), expect('te2_text_embeds', o2.textEmbeds));
    const rename = (check: Check): Check => ({ ...check, name: `${check.name}_runtime` });
    const r1 = await encode(te1, false, 'text_encoder', true);
    checks.push(rename(expect('te1_hidden_states_penultimate', r1.penultimate)), rename(expect('te1_pooler_output', r1.pooled)));
    const r2 = await encode(te2, true, 'text_encoder_2', true);
    checks.push(rename(expect('te2_hidden_states_penultimate', r2.penultimate)), rename(expect('te2_text_embeds', r2.textEmbeds)));
    return checks;
  } finally {
    lora.close();
    for (const b of [unet, te1, te2]) b.weights.close();
  }
}

/** The case's kohya → diffusers module list, against what the reader matched (as a set). */
function checkModules(c: GoldenCase, lora: LoraFile): Check {
  const expected = new Set(Object.values((c.json.kohya_to_diffusers_modules ?? {}) as Record<string, string>));
  const got = new Set(describeDeltas(lora));
  const missing = [...expected].filter((m) => !got.has(m));
  const extra = [...got].filter((m) => !expected.has(m));
  const wrong = missing.length + extra.length + lora.report.unmatched.length;
  const note = wrong ? `missing ${missing.slice(0, 3).join(', ')}; extra ${extra.slice(0, 3).join(', ')}; unmatched ${lora.report.unmatched.slice(0, 3).join(', ')}` : undefined;
  return { name: 'modules', maxAbsError: wrong, allowed: 0, pass: wrong === 0 && expected.size > 0, ...(note ? { note } : {}) };
}

/**
 * W' through withLoras() vs W + scale · alpha / rank · up[:, :, 0, 0] @ down.flatten(1), computed
 * here from the kohya tensors looked up by the case's own mapping (not through the reader).
 */
function checkMerge(c: GoldenCase, lora: LoraFile, scale: number, bases: Record<'unet' | 'te1' | 'te2', Base>): Check {
  const mapping = (c.json.kohya_to_diffusers_modules ?? {}) as Record<string, string>;
  const file = SafetensorsFile.open(join(c.dir, String((c.json.files as Record<string, unknown>).lora)));
  const components = { unet: 'unet', te1: 'text_encoder', te2: 'text_encoder_2' } as const;
  try {
    let err = 0;
    let largest = 0;
    for (const [kohya, where] of Object.entries(mapping)) {
      const [short, module] = where.split(':') as ['unet' | 'te1' | 'te2', string];
      const target = `${module}.weight`;
      const base = bases[short].weights;
      const patched = withLoras(base, lorasFor(components[short], [{ lora, scale }]));
      const down = file.readFloat32(`${kohya}.lora_down.weight`);
      const up = file.readFloat32(`${kohya}.lora_up.weight`);
      const alpha = file.readFloat32(`${kohya}.alpha`)[0]!;
      const rank = file.info(`${kohya}.lora_down.weight`).shape[0]!;
      const w = base.readFloat32(target);
      const rows = up.length / rank;
      const cols = w.length / rows;
      const mine = patched.readFloat32(target);
      for (let o = 0; o < rows; o++) {
        for (let k = 0; k < cols; k++) {
          let d = 0;
          for (let j = 0; j < rank; j++) d += up[o * rank + j]! * down[j * cols + k]!;
          const ref = Math.fround(w[o * cols + k]! + scale * (alpha / rank) * d);
          err = Math.max(err, Math.abs(ref - mine[o * cols + k]!));
        }
      }
      largest = Math.max(largest, maxAbs(w));
    }
    const allowed = 1e-6 * Math.max(1, largest);
    return { name: 'merged_weights', maxAbsError: err, allowed, pass: err <= allowed };
  } finally {
    file.close();
  }
}
