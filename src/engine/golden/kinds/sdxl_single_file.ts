// Golden kind `sdxl_single_file`: one SGM checkpoint holding the UNet, VAE and both text encoders of
// other cases (`expected_outputs_from`). Per component:
//   <c>.weights  every tensor of the referenced case's weights file is produced under its diffusers /
//                transformers name, none missing, none extra, bit-identical after the upcast to float32;
//   <c>.config   the config inferred from the shapes equals the referenced config on every key the
//                shapes determine (the keys filled in by convention are listed in the note, and the
//                referenced case's values for them are used to run the nets);
//   <c>.<output> the net (UNet, VAE, CLIP) run on the mapped weights reproduces every output of the
//                referenced case within that case's tolerance.
import { resolve } from 'node:path';
import { loadCase, type GoldenCase } from '../case.js';
import { compareClose, type Check } from '../compare.js';
import { canonicalJson } from '../../onnx/cache.js';
import { openSingleFile } from '../../formats/single-file.js';
import { openWeights } from '../../formats/weights.js';
import { SDXL_COMPONENTS, type ComponentName, type ModelComponent, type ModelConfig } from '../../formats/keymaps/source.js';
import { loadClipTextEncoder, type ClipTextOutput, type ClipTextOutputs } from '../../nets/clip-text.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { createUnetRunner, type UnetStepInputs } from '../../nets/unet-runner.js';
import { caseNames, goldenCacheDir, ioF32 } from '../net-io.js';
import { checkVaeOutputs } from './autoencoder_kl.js';

/** Keys that describe rather than shape the model (class names), not compared. */
const DESCRIPTIVE = new Set(['_class_name', 'architectures', '_name_or_path', '_diffusers_version', '_use_default_values']);

/** Bit-identity of every tensor of `reference` (a weights file) in `mapped`, and nothing more. */
function weightsCheck(name: string, mapped: ModelComponent, referencePath: string): Check {
  const ref = openWeights(referencePath);
  try {
    const want = new Set(ref.names());
    const have = new Set(mapped.weights.names());
    const missing = [...want].filter((n) => !have.has(n));
    const extra = [...have].filter((n) => !want.has(n));
    let maxAbsError = 0;
    const differing: string[] = [];
    for (const n of want) {
      if (!have.has(n)) continue;
      const shapeA = mapped.weights.info(n).shape;
      const shapeB = ref.info(n).shape;
      const a = mapped.weights.readFloat32(n);
      const b = ref.readFloat32(n);
      let same = canonicalJson(shapeA) === canonicalJson(shapeB) && a.length === b.length;
      const bitsA = new Uint32Array(a.buffer, a.byteOffset, a.length);
      const bitsB = new Uint32Array(b.buffer, b.byteOffset, b.length);
      for (let i = 0; same && i < a.length; i++) {
        if (bitsA[i] !== bitsB[i]) {
          same = false;
          maxAbsError = Math.max(maxAbsError, Math.abs(a[i]! - b[i]!) || Infinity);
        }
      }
      if (!same) differing.push(n);
    }
    const problems = [
      missing.length ? `${missing.length} missing (${missing.slice(0, 3).join(', ')})` : '',
      extra.length ? `${extra.length} extra (${extra.slice(0, 3).join(', ')})` : '',
      differing.length ? `${differing.length} differ (${differing.slice(0, 3).join(', ')})` : '',
    ].filter(Boolean);
    const pass = problems.length === 0;
    return {
      name: `${name}.weights`,
      maxAbsError: pass ? 0 : Math.max(maxAbsError, missing.length + extra.length > 0 ? Infinity : 0),
      allowed: 0,
      pass,
      note: pass ? `${want.size} tensors bit-identical` : problems.join('; '),
    };
  } finally {
    ref.close();
  }
}

/** Inferred keys against the reference config; returns the check and the config to run nets with. */
function configCheck(name: string, mapped: ModelComponent, reference: ModelConfig): { check: Check; runConfig: ModelConfig } {
  const assumed = new Set(mapped.assumed);
  const mismatched: string[] = [];
  let compared = 0;
  for (const [key, value] of Object.entries(mapped.config)) {
    if (assumed.has(key) || DESCRIPTIVE.has(key) || !(key in reference)) continue;
    compared++;
    if (canonicalJson(value) !== canonicalJson(reference[key])) mismatched.push(`${key}: inferred ${canonicalJson(value)}, case ${canonicalJson(reference[key])}`);
  }
  const conventions = mapped.assumed.filter((k) => k in reference);
  const differing = conventions.filter((k) => canonicalJson(mapped.config[k]) !== canonicalJson(reference[k]));
  const runConfig: ModelConfig = { ...mapped.config };
  for (const k of conventions) runConfig[k] = reference[k];
  const noteParts = [
    mismatched.length ? mismatched.join('; ') : `${compared} keys inferred from shapes match`,
    differing.length ? `not in the weights, SDXL convention differs from this tiny case, case value used: ${differing.map((k) => `${k} (${canonicalJson(mapped.config[k])} vs ${canonicalJson(reference[k])})`).join(', ')}` : '',
  ].filter(Boolean);
  return {
    check: { name: `${name}.config`, maxAbsError: mismatched.length ? Infinity : 0, allowed: 0, pass: mismatched.length === 0, note: noteParts.join('; ') },
    runConfig,
  };
}

const CLIP_OUTPUTS: readonly { golden: string; graph: ClipTextOutput; field: keyof ClipTextOutputs }[] = [
  { golden: 'last_hidden_state', graph: 'last_hidden_state', field: 'lastHidden' },
  { golden: 'hidden_states_penultimate', graph: 'penultimate', field: 'penultimate' },
  { golden: 'pooler_output', graph: 'pooled', field: 'pooled' },
  { golden: 'text_embeds', graph: 'text_embeds', field: 'textEmbeds' },
];

async function clipOutputs(name: string, mapped: ModelComponent, config: ModelConfig, ref: GoldenCase): Promise<Check[]> {
  const io = ref.io();
  const stored = new Set(io.names());
  const wanted = CLIP_OUTPUTS.filter((o) => stored.has(o.golden));
  const withProjection = mapped.weights.has('text_projection.weight');
  const encoder = await loadClipTextEncoder(mapped.weights, config, { withProjection, outputs: wanted.map((o) => o.graph), intraOpThreads: 1, interOpThreads: 1 });
  try {
    const [batch, seqLen] = io.info('input_ids').shape;
    const out = await encoder.encode(io.read('input_ids') as BigInt64Array, batch!, seqLen!);
    return wanted.map((o) => {
      const actual = out[o.field] as Float32Array | undefined;
      return actual
        ? compareClose(`${name}.${o.golden}`, actual, io.readFloat32(o.golden), ref.tolerance)
        : { name: `${name}.${o.golden}`, maxAbsError: Infinity, allowed: 0, pass: false, note: 'the encoder did not produce it' };
    });
  } finally {
    await encoder.dispose();
  }
}

/** The UNet on the mapped weights, fed the referenced unet case's inputs (with residuals where it has them). */
async function unetOutputs(mapped: ModelComponent, config: ModelConfig, ref: GoldenCase, weightsHash: string): Promise<Check[]> {
  const inputs = new Set(caseNames(ref, 'inputs'));
  const down = [...inputs].filter((n) => /^down_block_additional_residual_\d+$/.test(n)).sort((a, b) => Number(a.split('_').pop()) - Number(b.split('_').pop()));
  const withResiduals = down.length > 0 && inputs.has('mid_block_additional_residual');
  const runner = await createUnetRunner({ config, weights: mapped.weights, weightsHash: `${weightsHash}:unet` },
    { cacheDir: goldenCacheDir(), controlResiduals: withResiduals, session: { intraOpThreads: 1 } });
  try {
    const base: UnetStepInputs = {
      sample: ioF32(ref, 'sample'),
      timestep: ioF32(ref, 'timestep'),
      encoderHiddenStates: ioF32(ref, 'encoder_hidden_states'),
      ...(inputs.has('text_embeds') ? { textEmbeds: ioF32(ref, 'text_embeds') } : {}),
      ...(inputs.has('time_ids') ? { timeIds: ioF32(ref, 'time_ids') } : {}),
    };
    const checks: Check[] = [];
    for (const name of caseNames(ref, 'outputs')) {
      const residual = /residual/.test(name);
      const x: UnetStepInputs = residual && withResiduals
        ? { ...base, controlResiduals: { down: down.map((n) => ioF32(ref, n)), mid: ioF32(ref, 'mid_block_additional_residual') } }
        : base;
      checks.push(compareClose(`unet.${name}`, (await runner.run(x)).data, ref.io().readFloat32(name), ref.tolerance));
    }
    return checks;
  } finally {
    await runner.dispose();
  }
}

function referencedCase(c: GoldenCase, component: ComponentName): GoldenCase {
  const from = (c.json.expected_outputs_from ?? {}) as Record<string, unknown>;
  const text = from[component];
  if (typeof text !== 'string') throw new Error(`case.json expected_outputs_from has no ${component}`);
  return loadCase(resolve(c.dir, text.trim().split(/\s+/)[0]!));
}

function weightsFileOf(ref: GoldenCase): string {
  const files = (ref.json.files ?? {}) as Record<string, unknown>;
  return ref.file(typeof files.weights === 'string' ? files.weights : 'weights.safetensors');
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const files = (c.json.files ?? {}) as Record<string, unknown>;
  const checkpoint = c.file(typeof files.checkpoint === 'string' ? files.checkpoint : 'checkpoint.safetensors');
  const model = openSingleFile(checkpoint);
  const checks: Check[] = [];
  try {
    for (const name of SDXL_COMPONENTS) {
      const ref = referencedCase(c, name);
      try {
        const mapped = model[name];
        const weights = weightsCheck(name, mapped, weightsFileOf(ref));
        const reference = ((c.config[name] ?? ref.config) as ModelConfig);
        const { check, runConfig } = configCheck(name, mapped, reference);
        checks.push(weights, check);
        const outputs = Array.isArray(ref.json.outputs) ? (ref.json.outputs as unknown[]).filter((o): o is string => typeof o === 'string') : [];
        if (name === 'vae') {
          checks.push(...await checkVaeOutputs({ config: runConfig, weights: mapped.weights }, ref.io(), outputs, ref.tolerance, 'vae.'));
        } else if (name === 'text_encoder' || name === 'text_encoder_2') {
          checks.push(...await clipOutputs(name, mapped, runConfig, ref));
        } else {
          checks.push(...await unetOutputs(mapped, runConfig, ref, await weightsHashOf([checkpoint])));
        }
      } finally {
        ref.close();
      }
    }
  } finally {
    model.close();
  }
  return checks;
}
