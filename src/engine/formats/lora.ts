// LoRA files as people share them, read into one normalized form: per model component, a list of
// low-rank deltas keyed by the diffusers / transformers weight they patch.
//
// Spellings understood (engine-prior-art.md §4b):
//   kohya / A1111 / Civitai  lora_unet_* (SGM or diffusers paths), lora_te1_*, lora_te2_*, with
//                            .lora_down.weight, .lora_up.weight, .alpha, LyCORIS .lora_mid.weight
//                            (Tucker; folded into the down kernel) and .dora_scale (DoRA)
//   diffusers / PEFT         unet.* / text_encoder.* / text_encoder_2.* with .lora_A/.lora_B(.default).weight,
//                            .lora_magnitude_vector, optional .alpha; older .lora.down/up,
//                            .lora_linear_layer.down/up and processor.to_q_lora.down/up
// Semantics (kohya's, which diffusers + PEFT reproduce): ΔW = scale · alpha / rank · up @ down, with
// rank = down.shape[0] and alpha = rank when the file stores none. Every module is matched against a
// target table derived from the base model (lora-keymap.ts); a file none of whose modules fit, or most
// of whose modules do not, is refused with EngineError('lora_incompatible') naming some of them.
import { closeSync, openSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { EngineError } from '../errors.js';
import { readFully } from './file-io.js';
import { openWeights, sniffWeightsFormat, type WeightsFile } from './weights.js';
import { LORA_COMPONENTS, flat, type LoraComponent, type LoraTargets } from './lora-keymap.js';

export { type LoraComponent, type LoraTargets } from './lora-keymap.js';

/** The low-rank factors of one delta, float32, row-major. */
export interface LoraFactors {
  /** [r, in] or [r, in, kh, kw] (a LyCORIS mid kernel already folded in). */
  down: Float32Array;
  /** [out, r] (a conv's [out, r, 1, 1] read as a matrix). */
  up: Float32Array;
  /** DoRA magnitude: one entry per output row ('out', PEFT) or per input channel ('in', LyCORIS). */
  doraScale?: Float32Array;
}

export interface LoraDelta {
  /** The patched weight, e.g. 'down_blocks.1.attentions.0.proj_in.weight' or 'text_model.encoder.layers.0.mlp.fc1.weight'. */
  target: string;
  /** The module's name in the file, for messages. */
  source: string;
  downShape: readonly number[];
  upShape: readonly number[];
  /** Shape of the patched weight: [out, in] or [out, in, kh, kw]. */
  targetShape: readonly number[];
  rank: number;
  alpha: number;
  dora?: 'out' | 'in';
  /** Reads the factors from the file (on demand: a large LoRA is never held twice). */
  load(): LoraFactors;
}

export type LoraFormat = 'kohya' | 'diffusers';

export interface LoraReport {
  matched: number;
  /** 'module (why)', in file order; goes to the task's debugoutput. */
  unmatched: string[];
}

export interface LoraFile {
  /** Identifies the content (sha256 when the caller knows it); part of compiled-graph cache keys. */
  readonly id: string;
  readonly path: string;
  readonly format: LoraFormat;
  readonly deltas: Readonly<Record<LoraComponent, readonly LoraDelta[]>>;
  readonly report: LoraReport;
  close(): void;
}

export interface ReadLoraOptions {
  /** torch.save (.bin/.pt) LoRAs are read (through the safe unpickler) only when this is true. */
  allowPickle?: boolean;
  /** Content id, e.g. the LoRA cache's sha256; default: a fingerprint of path, size and mtime. */
  id?: string;
  /** How the file is named in messages (e.g. "selectedLoraModelPrivateUrl"). */
  label?: string;
}

type Role = 'down' | 'up' | 'mid' | 'alpha' | 'dora';

/** A tensor name split into its module and its role; undefined when it is no LoRA tensor we know. */
function splitKey(key: string): { module: string; role: Role } | undefined {
  let g = /^(.+)\.(lora_down|lora_up|lora_mid)\.weight$/.exec(key);
  if (g) return { module: g[1]!, role: g[2] === 'lora_down' ? 'down' : g[2] === 'lora_up' ? 'up' : 'mid' };
  g = /^(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(key);
  if (g) return { module: g[1]!, role: g[2] === 'A' ? 'down' : 'up' };
  g = /^(.+)\.(?:lora|lora_linear_layer)\.(down|up)\.weight$/.exec(key);
  if (g) return { module: g[1]!, role: g[2] as Role };
  // diffusers' attention-processor LoRAs: attn1.processor.to_q_lora → attn1.to_q; self_attn.to_q_lora → self_attn.q_proj
  g = /^(.+?)(\.processor)?\.to_(q|k|v|out)_lora\.(down|up)\.weight$/.exec(key);
  if (g) {
    const textEncoder = /self_attn$/.test(g[1]!);
    const leaf = textEncoder ? `${g[3]}_proj` : g[3] === 'out' ? 'to_out.0' : `to_${g[3]}`;
    return { module: `${g[1]}.${leaf}`, role: g[4] as Role };
  }
  g = /^(.+)\.(?:dora_scale|lora_magnitude_vector(?:\.default)?(?:\.weight)?)$/.exec(key);
  if (g) return { module: g[1]!, role: 'dora' };
  g = /^(.+)\.alpha$/.exec(key);
  if (g) return { module: g[1]!, role: 'alpha' };
  return undefined;
}

/** Why a tensor that is not a LoRA factor is there (other adapter types we do not apply). */
function unknownTensorReason(key: string): string {
  if (/\.hada_/.test(key)) return 'LoHa (hada_*) is not supported';
  if (/\.lokr_/.test(key)) return 'LoKr (lokr_*) is not supported';
  if (/\.(diff|diff_b)$/.test(key) || /\.lora_B\.bias$/.test(key)) return 'full-weight or bias deltas are not supported';
  if (/\.(a1|a2|b1|b2)\.weight$/.test(key)) return 'GLoRA is not supported';
  return 'not a LoRA tensor';
}

/** Component and flat module name from a module's name in the file. */
function locate(module: string): { component: LoraComponent; name: string } | { reason: string } {
  const prefixes: readonly [RegExp, LoraComponent][] = [
    [/^lora_unet_/, 'unet'],
    [/^lora_te1_/, 'text_encoder'],
    [/^lora_te2_/, 'text_encoder_2'],
    [/^unet\./, 'unet'],
    [/^text_encoder\./, 'text_encoder'],
    [/^text_encoder_2\./, 'text_encoder_2'],
    [/^base_model\.model\.(?=(down_blocks|mid_block|up_blocks|conv_in|conv_out|time_embedding|add_embedding)\.)/, 'unet'],
    [/^(?=(down_blocks|mid_block|up_blocks|conv_in|conv_out|time_embedding|add_embedding)\.)/, 'unet'],
  ];
  for (const [re, component] of prefixes) {
    if (re.test(module)) return { component, name: flat(module.replace(re, '')) };
  }
  if (/^lora_te_/.test(module)) return { reason: 'a single text encoder (lora_te_): a LoRA for SD 1.x/2.x' };
  if (/(double_blocks|single_blocks|single_transformer_blocks)/.test(module)) return { reason: 'a Flux transformer block' };
  if (/^(transformer|lora_transformer|diffusion_model)[._]/.test(module)) return { reason: 'a DiT transformer (Flux / SD3), not an SDXL UNet' };
  return { reason: 'no known component prefix (lora_unet_, lora_te1_, lora_te2_, unet., text_encoder., text_encoder_2.)' };
}

const COMPONENT_PREFIX: Record<LoraComponent, string> = { unet: 'unet', text_encoder: 'te1', text_encoder_2: 'te2' };

function fingerprint(path: string): string {
  const st = statSync(path);
  return createHash('sha256').update(`${path}\0${st.size}\0${st.mtimeMs}`).digest('hex');
}

function openLoraWeights(path: string, label: string, allowPickle: boolean): WeightsFile {
  const fd = openSync(path, 'r');
  let head = new Uint8Array(16);
  try {
    head = head.subarray(0, readFully(fd, head, 0));
  } finally {
    closeSync(fd);
  }
  const format = sniffWeightsFormat(head);
  if (format === 'torch-zip' && !allowPickle) {
    throw new EngineError('lora_not_safetensors', `${label} is a torch pickle (.bin/.pt/.ckpt), which this server does not load: convert it to .safetensors`);
  }
  if (format !== 'safetensors' && format !== 'torch-zip') {
    throw new EngineError('lora_not_safetensors', `${label} is not a .safetensors file (its first bytes say otherwise)`);
  }
  return openWeights(path);
}

/** Reads a LoRA file and matches it against the base model's target tables. */
export function readLora(path: string, targets: LoraTargets, opts: ReadLoraOptions = {}): LoraFile {
  const label = opts.label ?? path;
  const file = openLoraWeights(path, label, opts.allowPickle === true);
  try {
    return matchLora(file, targets, label, opts.id ?? fingerprint(path));
  } catch (err) {
    file.close();
    throw err;
  }
}

interface Group {
  module: string;
  keys: Partial<Record<Role, string>>;
}

function matchLora(file: WeightsFile, targets: LoraTargets, label: string, id: string): LoraFile {
  const groups = new Map<string, Group>();
  const unmatched: string[] = [];
  let diffusersStyle = false;
  for (const key of file.names()) {
    const split = splitKey(key);
    if (!split) {
      unmatched.push(`${key} (${unknownTensorReason(key)})`);
      continue;
    }
    if (/\.(lora_[AB]|lora|lora_linear_layer)\b|_lora\./.test(key)) diffusersStyle = true;
    const group = groups.get(split.module) ?? { module: split.module, keys: {} };
    group.keys[split.role] = key;
    groups.set(split.module, group);
  }

  const deltas: Record<LoraComponent, LoraDelta[]> = { unet: [], text_encoder: [], text_encoder_2: [] };
  const seen = new Map<string, string>();
  for (const { module, keys } of groups.values()) {
    const reject = (why: string): void => void unmatched.push(`${module} (${why})`);
    const where = locate(module);
    if ('reason' in where) {
      reject(where.reason);
      continue;
    }
    const table = targets[where.component];
    if (!table) {
      reject(`the base model has no ${where.component} to patch`);
      continue;
    }
    const target = table.aliases.get(where.name);
    if (target === undefined) {
      reject(`no such layer in this ${where.component}`);
      continue;
    }
    if (!keys.down || !keys.up) {
      reject(keys.down ? 'no up factor' : keys.up ? 'no down factor' : 'no low-rank factors');
      continue;
    }
    const targetKey = `${where.component}:${target}`;
    if (seen.has(targetKey)) {
      reject(`patches ${target} again (already by ${seen.get(targetKey)})`);
      continue;
    }
    const shaped = checkShapes(file, keys, table.modules.get(target)!);
    if (typeof shaped === 'string') {
      reject(shaped);
      continue;
    }
    seen.set(targetKey, module);
    deltas[where.component].push(makeDelta(file, module, `${target}.weight`, keys, shaped));
  }

  const matched = LORA_COMPONENTS.reduce((s, c) => s + deltas[c].length, 0);
  if (matched === 0 || unmatched.length > matched) {
    const family = guessFamily(unmatched);
    const shown = unmatched.slice(0, 5).join('; ');
    const more = unmatched.length > 5 ? ` and ${unmatched.length - 5} more` : '';
    const how = matched === 0 ? 'none of its layers fit this model' : `${unmatched.length} of its ${matched + unmatched.length} layers do not fit this model`;
    throw new EngineError('lora_incompatible', `${label} is not an SDXL LoRA this model can use${family ? ` (it looks made for ${family})` : ''}: ${how}: ${shown}${more}`);
  }
  return {
    id,
    path: file.path,
    format: diffusersStyle ? 'diffusers' : 'kohya',
    deltas,
    report: { matched, unmatched },
    close: () => file.close(),
  };
}

interface Shapes {
  rank: number;
  downShape: number[];
  upShape: number[];
  targetShape: number[];
  dora?: 'out' | 'in';
}

/** Checks the factors against the patched weight; returns why they do not fit, or their shapes. */
function checkShapes(file: WeightsFile, keys: Partial<Record<Role, string>>, target: readonly number[]): Shapes | string {
  const down = file.info(keys.down!).shape;
  const up = file.info(keys.up!).shape;
  const show = (s: readonly number[]): string => `[${s.join(', ')}]`;
  const [out, inp, kh = 1, kw = 1] = target as [number, number, number?, number?];
  const rank = down[0];
  if (rank === undefined || rank < 1) return `empty down factor ${show(down)}`;
  const upOk = up.length >= 2 && up[0] === out && up[1] === rank && up.slice(2).every((d) => d === 1);
  let kernel: number[] = down.length === 4 ? [down[2]!, down[3]!] : [1, 1];
  if (keys.mid) {
    const mid = file.info(keys.mid).shape;
    if (mid.length !== 4 || mid[0] !== rank || mid[1] !== rank || down.length !== 4 || down[2] !== 1 || down[3] !== 1) {
      return `LyCORIS mid ${show(mid)} does not fit down ${show(down)}`;
    }
    kernel = [mid[2]!, mid[3]!];
  }
  const downOk = (down.length === 2 || down.length === 4) && down[1] === inp && kernel[0] === kh && kernel[1] === kw;
  if (!upOk || !downOk) return `factors up ${show(up)} · down ${show(down)} do not fit the layer's weight ${show(target)}`;
  const shapes: Shapes = { rank, downShape: target.length === 4 ? [rank, inp, kh, kw] : [rank, inp], upShape: [out, rank], targetShape: [...target] };
  if (keys.dora) {
    const d = file.info(keys.dora).shape;
    const n = d.reduce((a, b) => a * b, 1);
    const perIn = target.length === 4 ? inp * kh * kw : inp;
    if (n === out && (d.length <= 1 || d[0] === out)) shapes.dora = 'out';
    else if (d[0] === 1 && (n === inp || n === perIn)) shapes.dora = 'in';
    else return `DoRA magnitude ${show(d)} fits neither the ${out} outputs nor the ${inp} inputs`;
  }
  return shapes;
}

function makeDelta(file: WeightsFile, module: string, target: string, keys: Partial<Record<Role, string>>, s: Shapes): LoraDelta {
  let alpha = s.rank;
  if (keys.alpha) {
    const a = file.readFloat32(keys.alpha);
    if (a.length === 1 && Number.isFinite(a[0]!)) alpha = a[0]!;
  }
  const delta: LoraDelta = {
    target,
    source: module,
    downShape: s.downShape,
    upShape: s.upShape,
    targetShape: s.targetShape,
    rank: s.rank,
    alpha,
    load: () => {
      let down = file.readFloat32(keys.down!);
      if (keys.mid) down = foldMid(file.readFloat32(keys.mid), down, s.downShape);
      const factors: LoraFactors = { down, up: file.readFloat32(keys.up!) };
      if (keys.dora) factors.doraScale = file.readFloat32(keys.dora);
      return factors;
    },
  };
  if (s.dora) delta.dora = s.dora;
  return delta;
}

/** LyCORIS Tucker: down'[i, c, y, x] = Σ_j mid[i, j, y, x] · down[j, c] (down stored [r, in, 1, 1]). */
function foldMid(mid: Float32Array, down: Float32Array, shape: readonly number[]): Float32Array {
  const [r, inp, kh, kw] = shape as [number, number, number, number];
  const k = kh * kw;
  const out = new Float32Array(r * inp * k);
  for (let i = 0; i < r; i++) {
    for (let c = 0; c < inp; c++) {
      for (let p = 0; p < k; p++) {
        let sum = 0;
        for (let j = 0; j < r; j++) sum += mid[(i * r + j) * k + p]! * down[j * inp + c]!;
        out[(i * inp + c) * k + p] = sum;
      }
    }
  }
  return out;
}

function guessFamily(unmatched: readonly string[]): string | undefined {
  const all = unmatched.join('\n');
  if (/double_blocks|single_blocks|single_transformer_blocks/.test(all)) return 'Flux';
  if (/joint_blocks|context_block/.test(all)) return 'SD 3';
  if (/lora_te_|down_blocks[._]3[._]|down_blocks[._]0[._]attentions/.test(all)) return 'SD 1.x/2.x';
  return undefined;
}

/** "te1:text_model.encoder.layers.0.mlp.fc1" style names of every delta (tests, debug output). */
export function describeDeltas(lora: LoraFile): string[] {
  return LORA_COMPONENTS.flatMap((c) => lora.deltas[c].map((d) => `${COMPONENT_PREFIX[c]}:${d.target.replace(/\.weight$/, '')}`));
}
