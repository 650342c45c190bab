// Applying LoRAs: their deltas are fused into the base weights as the nets read them.
//
//   W' = W + Σ_i s_i · (α_i / r_i) · up_i @ down_i          (conv: down flattened to [r, in·kh·kw])
//
// and for a DoRA LoRA, PEFT's formula (peft/tuners/lora/dora.py): with V = W + s·(α/r)·up@down and
// n = ‖V‖ per output row, the layer computes (m / n) ⊙ V, i.e. contributes (m / n) ⊙ V − W. Norms are
// taken against the base W, so several LoRAs on one layer add up as PEFT's side branches do. A
// LyCORIS magnitude stored per input channel ([1, in]) uses column norms instead, in the same form.
// A scale of 0 leaves the LoRA out (PEFT would still apply a DoRA magnitude at weight 0).
//
// Strategy. Scales reach the graph fused into the weights at build time: the nets load through
// withLoras() unchanged, and the compiled ONNX model is cached per (base weights, LoRA set, scales) —
// loraCacheKey() is the part to put in the compile-cache key. W' is computed on each read and handed
// to the graph writer; nothing merged is kept. The products run as one Gemm per weight (merge.ts: the
// plain LoRAs on a weight stacked along the rank; DoRA norms applied after) on ONNX Runtime's SGEMM in
// a merge worker thread, called synchronously because the nets read weights synchronously (gemm.ts);
// small products, and all of them if ONNX Runtime cannot start, run in a float64 JS loop.
//
// Costs, measured with bench/lora.ts (`node --import tsx bench/engine.ts --lora`) on 2 shared cores
// of an AMD EPYC (another process competing; ORT 2 threads; runs vary by ±30%):
//   - the merge: rank multiply-adds per patched weight element. A kohya SDXL LoRA covers the UNet's
//     722 transformer Linears (2.2·10⁹ weights): 7.1·10¹⁰ multiply-adds at rank 32. One [1280, 1280]
//     rank-32 weight: 6–15 ms on ORT, 0.13–0.17 s in JS; the whole SDXL LoRA: 8–13 s on ORT, 191 s
//     in JS (15–25×; what is left is memory traffic: each weight is copied to the worker, and its W'
//     comes back as a new array). The worker starts with the first large product (≈ 0.3 s) and ends
//     after 30 s without merges, returning ORT's memory;
//   - first use of a LoRA set: the merge, then the graph build, compile-cache write and session
//     creation as for the base model. On the mid model of bench/engine.ts (UNet 64/128/256, CLIP
//     256 + 512; rank-32 LoRA on 246 modules incl. LoCon convs and text encoders): 1.5–1.7 s for UNet +
//     both text encoders (base: 1.3–1.7 s), of which merge 0.2 s (+ 0.3 s worker start); the JS merge
//     took 3.4 s of 4.5 s;
//   - switching LoRAs or changing only a scale: the same again (a new cache entry, 1.5–1.8 s on the
//     mid model), unless that (set, scales) was built before: a cache hit, 0.35 s, no merge;
//   - disk: one compiled UNet + text encoders per cached combination (166 MB on the mid model; for
//     SDXL ≈ 10.3 GB UNet + 3.3 GB encoders in float32, half that in float16), so the compile cache
//     needs its own size bound. Memory: a loaded set holds its sessions, as the base model does; the
//     merge worker, while it lives, ≈ 0.1–0.2 GB more RSS on the mid model (ORT and its arena).
// Since issue 11 the service applies LoRAs as run-time branches (runtime.ts: factors and scales are
// graph inputs, so a set or scale change costs milliseconds and writes nothing; at full size a fused
// rebuild took a minute and ~10 GB of cache per set). This fused form remains for what branches cannot
// carry — DoRA and LoCon convolutions — and for the goldens' independent check of the merge.
import { createHash } from 'node:crypto';
import { EngineError } from '../errors.js';
import type { LoraDelta, LoraFile } from '../formats/lora.js';
import type { LoraComponent } from '../formats/lora-keymap.js';
import type { ModelComponent, SdxlModel, WeightSource } from '../formats/keymaps/source.js';
import { toFloat16, type Dtype, type TensorData } from '../formats/dtype.js';
import type { TensorSource } from '../nets/sdxl-weights.js';
import { mergeLoras } from './merge.js';

export { mergeLoras, type LoadedPatch } from './merge.js';
export { configureLoraMerge, closeLoraMergeWorker, type LoraMergeOptions } from './gemm.js';

/** One LoRA's deltas for one component, at the scale the user chose. */
export interface ScaledLora {
  deltas: readonly LoraDelta[];
  scale: number;
}

interface Patch {
  delta: LoraDelta;
  scale: number;
}

/**
 * What withLoras() wraps: the formats' WeightSource, the nets' TensorSource and an open WeightsFile
 * all fit. Tensors are read through it by diffusers / transformers name.
 */
export interface PatchableSource {
  has(name: string): boolean;
  info(name: string): { dtype: Dtype; shape: number[] };
  readFloat32(name: string): Float32Array;
  /** The tensor in its own dtype (the nets read F16 weights this way for float16 graphs). */
  read?(name: string): TensorData;
  names?(): string[];
}

/**
 * A view of `source` in which every weight a LoRA patches reads as W' (merged on each read, from the
 * LoRA file, so nothing is held in memory); all other tensors pass through untouched. A patched
 * tensor keeps its dtype: read() returns W' rounded back to F16 / BF16 for half-precision weights.
 */
export function withLoras(source: WeightSource, loras: readonly ScaledLora[]): WeightSource;
export function withLoras(source: TensorSource, loras: readonly ScaledLora[]): TensorSource;
export function withLoras(source: PatchableSource, loras: readonly ScaledLora[]): PatchableSource;
export function withLoras(source: PatchableSource, loras: readonly ScaledLora[]): PatchableSource {
  const patches = new Map<string, Patch[]>();
  for (const { deltas, scale } of loras) {
    if (!Number.isFinite(scale)) throw new EngineError('bad_lora_scale', `LoRA scale ${scale} is not a number`);
    if (scale === 0) continue;
    for (const delta of deltas) {
      if (!source.has(delta.target)) {
        throw new EngineError('lora_incompatible', `LoRA layer ${delta.source} patches ${delta.target}, which the model does not have`);
      }
      const shape = source.info(delta.target).shape;
      if (shape.join(',') !== delta.targetShape.join(',')) {
        throw new EngineError('lora_incompatible',
          `LoRA layer ${delta.source} was matched to a [${delta.targetShape.join(', ')}] weight, but the model's ${delta.target} is [${shape.join(', ')}]`);
      }
      const list = patches.get(delta.target) ?? [];
      list.push({ delta, scale });
      patches.set(delta.target, list);
    }
  }
  if (patches.size === 0) return source;
  const merged = (name: string, list: readonly Patch[]): Float32Array =>
    mergeLoras(source.readFloat32(name), list.map((p) => ({ factors: p.delta.load(), delta: p.delta, scale: p.scale })));
  const view: PatchableSource = {
    has: (name) => source.has(name),
    info: (name) => source.info(name),
    readFloat32: (name) => {
      const list = patches.get(name);
      return list ? merged(name, list) : source.readFloat32(name);
    },
  };
  const { read, names } = source;
  if (names) view.names = () => names.call(source);
  if (read) {
    view.read = (name) => {
      const list = patches.get(name);
      return list ? inDtype(source.info(name).dtype, merged(name, list)) : read.call(source, name);
    };
  }
  return view;
}

/** float32 values in a float dtype's storage (F16 / BF16 as bits, rounded to nearest even). */
function inDtype(dtype: Dtype, values: Float32Array): TensorData {
  if (dtype === 'F32') return values;
  if (dtype === 'F16') return toFloat16(values);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const nan = (b: number): boolean => (b & 0x7fffffff) > 0x7f800000;
    return Uint16Array.from(bits, (b) => (nan(b) ? (b >>> 16) | 0x40 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff));
  }
  if (dtype === 'F64') return Float64Array.from(values);
  throw new EngineError('bad_lora', `a LoRA cannot patch a ${dtype} tensor`);
}

/** A LoRA file chosen for a run, with its scale. */
export interface AppliedLora {
  lora: LoraFile;
  scale: number;
}

/** The deltas of one component from several LoRAs, ready for withLoras(). */
export function lorasFor(component: LoraComponent, applied: readonly AppliedLora[]): ScaledLora[] {
  return applied.map(({ lora, scale }) => ({ deltas: lora.deltas[component], scale })).filter((l) => l.deltas.length > 0);
}

/**
 * What identifies a (LoRA set, scales) for compiled-graph caches: the content ids and scales in the
 * order applied (scales written exactly, so 0.7 and 0.70000001 are different builds). Empty set → ''.
 */
export function loraSetKey(applied: readonly { id: string; scale: number }[]): string {
  const used = applied.filter((a) => a.scale !== 0);
  if (used.length === 0) return '';
  return createHash('sha256').update(JSON.stringify(used.map((a) => [a.id, a.scale]))).digest('hex');
}

/** The weights hash for a compile cache: the base's own, extended by the LoRA set when there is one. */
export function loraCacheKey(baseWeightsHash: string, applied: readonly { id: string; scale: number }[]): string {
  const set = loraSetKey(applied);
  return set === '' ? baseWeightsHash : createHash('sha256').update(`${baseWeightsHash}\0lora\0${set}`).digest('hex');
}

/**
 * The UNet and both text encoders of a model with the LoRAs merged in (IdentityNet, other ControlNets
 * and the VAE are never patched: instantid.md §10). Nets load these components unchanged.
 */
export function withLorasOnModel<M extends Pick<SdxlModel, 'unet' | 'text_encoder' | 'text_encoder_2'>>(
  model: M,
  applied: readonly AppliedLora[],
): Record<LoraComponent, ModelComponent> {
  const patch = (c: LoraComponent): ModelComponent => ({ ...model[c], weights: withLoras(model[c].weights, lorasFor(c, applied)) });
  return { unet: patch('unet'), text_encoder: patch('text_encoder'), text_encoder_2: patch('text_encoder_2') };
}
