// LoRAs at run time: the low-rank branches are in the graph, their factors are inputs.
//
// A net built with loraSlots (BuilderOptions) computes, for every Linear weight W it names,
//
//   y = x·Wᵀ + b + ((x·Dᵀ) ⊙ s)·Uᵀ,   D = [down_1; down_2; …] [R, in],   U = [up_1 | up_2 | …] [out, R],
//                                     s = [c_1 (r_1 times), c_2 (r_2 times), …] [R]
//
// with c_i = s_i·α_i/r_i, i.e. exactly W' = W + Σ c_i·up_i·down_i of the fused form (apply.ts), the
// LoRAs on one layer stacked along the rank R (symbolic: any set of LoRAs fits one compiled graph).
// D and U are in the LoRA file's own layouts, so one LoRA on a layer feeds its arrays as they are
// read, and a scale change only rewrites s. A slot no LoRA patches gets R = 0 (empty factors; ONNX
// Runtime's MatMul returns zeros for K = 0). So a LoRA set or scale change rebuilds nothing and writes
// nothing: it is a new set of feeds.
//
// What this form cannot carry, and which falls back to the fused form (apply.ts): DoRA (its
// magnitudes are normalised against W', not additive) and convolutions (LoCon). runtimeLoraSupport()
// says which. A Linear delta whose weight has no slot patches a weight the graph never reads (every
// Linear a graph computes has one — e.g. the last CLIP layer of an encoder built for the penultimate
// state): it is left out, as the fused form's patched-but-unread weight is. (The LoRA reader has
// already matched every delta to a weight of the model.)
import { EngineError } from '../errors.js';
import { LORA_INPUT, type ValueMeta } from '../onnx/index.js';
import type { HostTensor } from '../onnx/dtype.js';
import type { LoraDelta } from '../formats/lora.js';
import type { ScaledLora } from './apply.js';

/** One Linear's branch in a compiled graph. */
export interface LoraSlot {
  /** The weight's initializer name (diffusers / transformers name, with any graph prefix). */
  weight: string;
  inFeatures: number;
  outFeatures: number;
}

/** The LoRA slots of a session, from its input metadata (the `#lora_down` / `#lora_up` inputs). */
export function loraSlotsOf(inputs: readonly ValueMeta[]): Map<string, LoraSlot> {
  const slots = new Map<string, LoraSlot>();
  const down = new Map<string, number>();
  const up = new Map<string, number>();
  for (const m of inputs) {
    const p = LORA_INPUT.parse(m.name);
    if (!p || p.factor === 'scale') continue;
    const dim = p.factor === 'down' ? m.shape[1] : m.shape[0];
    if (typeof dim !== 'number') throw new EngineError('bad_graph', `LoRA input ${m.name} has no static feature size`);
    (p.factor === 'down' ? down : up).set(p.weight, dim);
  }
  for (const [weight, inFeatures] of down) {
    const outFeatures = up.get(weight);
    if (outFeatures === undefined) throw new EngineError('bad_graph', `LoRA slot ${weight} has a down input but no up input`);
    slots.set(weight, { weight, inFeatures, outFeatures });
  }
  return slots;
}

/** Why a delta cannot run as a branch, or undefined when it can. */
function unsupported(delta: LoraDelta): string | undefined {
  if (delta.dora) return `${delta.source} is DoRA (its magnitudes need the merged weight)`;
  if (delta.targetShape.length !== 2) return `${delta.source} patches a convolution (${delta.target})`;
  return undefined;
}

/**
 * Whether every delta of these LoRAs can run as a branch: { ok: true }, or the first reason it
 * cannot (then the caller fuses the LoRAs into the weights instead).
 */
export function runtimeLoraSupport(loras: readonly ScaledLora[]): { ok: true } | { ok: false; reason: string } {
  for (const { deltas, scale } of loras) {
    if (scale === 0) continue;
    for (const d of deltas) {
      const why = unsupported(d);
      if (why) return { ok: false, reason: why };
    }
  }
  return { ok: true };
}

type F32 = HostTensor<'float32'>;

/**
 * The stacked factors last fed per slot, so that changing only the scales of a set of several LoRAs
 * copies nothing (the scales are their own input). Keyed by weight; an entry is reused only for the
 * same deltas in the same order. Hold one per net (UnetRunner, text encoder).
 */
export type StackMemo = Map<string, { deltas: readonly LoraDelta[]; down: Float32Array; up: Float32Array }>;
const EMPTY = new Float32Array(0);

/**
 * The feeds for every slot of a graph: the stacked, scaled factors where the LoRAs patch the weight,
 * empty (rank 0) elsewhere. Throws EngineError('lora_not_runtime') for a delta runtimeLoraSupport
 * rejects, and 'lora_incompatible' when a factor does not fit the slot's weight.
 */
export function runtimeLoraFeeds(slots: ReadonlyMap<string, LoraSlot>, loras: readonly ScaledLora[], reuse?: StackMemo): Record<string, F32> {
  const perWeight = new Map<string, { delta: LoraDelta; scale: number }[]>();
  for (const { deltas, scale } of loras) {
    if (!Number.isFinite(scale)) throw new EngineError('bad_lora_scale', `LoRA scale ${scale} is not a number`);
    if (scale === 0) continue;
    for (const delta of deltas) {
      const why = unsupported(delta);
      if (why) throw new EngineError('lora_not_runtime', `this LoRA cannot be applied at run time: ${why}`);
      const slot = slots.get(delta.target);
      if (!slot) continue; // a weight this graph never reads
      if (delta.targetShape[0] !== slot.outFeatures || delta.targetShape[1] !== slot.inFeatures) {
        throw new EngineError('lora_incompatible',
          `LoRA layer ${delta.source} was matched to a [${delta.targetShape.join(', ')}] weight, but the model's ${delta.target} is [${slot.outFeatures}, ${slot.inFeatures}]`);
      }
      const list = perWeight.get(delta.target) ?? [];
      list.push({ delta, scale });
      perWeight.set(delta.target, list);
    }
  }
  const feeds: Record<string, F32> = {};
  for (const slot of slots.values()) {
    const patches = perWeight.get(slot.weight) ?? [];
    const { down, up, scale, rank } = stackFactors(slot, patches, reuse);
    feeds[LORA_INPUT.down(slot.weight)] = { dtype: 'float32', dims: [rank, slot.inFeatures], data: down };
    feeds[LORA_INPUT.up(slot.weight)] = { dtype: 'float32', dims: [slot.outFeatures, rank], data: up };
    feeds[LORA_INPUT.scale(slot.weight)] = { dtype: 'float32', dims: [rank], data: scale };
  }
  return feeds;
}

/** D [R, in] (downs stacked by rows), U [out, R] (ups side by side) and s [R] for one slot. */
function stackFactors(slot: LoraSlot, patches: readonly { delta: LoraDelta; scale: number }[], memo?: StackMemo): { down: Float32Array; up: Float32Array; scale: Float32Array; rank: number } {
  const rank = patches.reduce((n, p) => n + p.delta.rank, 0);
  if (rank === 0) return { down: EMPTY, up: EMPTY, scale: EMPTY, rank: 0 };
  const scale = new Float32Array(rank);
  let at = 0;
  for (const { delta, scale: s } of patches) {
    scale.fill((s * delta.alpha) / delta.rank, at, at + delta.rank);
    at += delta.rank;
  }
  const deltas = patches.map((p) => p.delta);
  const known = memo?.get(slot.weight);
  if (known && known.deltas.length === deltas.length && known.deltas.every((d, i) => d === deltas[i])) return { down: known.down, up: known.up, scale, rank };
  const { inFeatures: nIn, outFeatures: nOut } = slot;
  const loaded = patches.map(({ delta }) => {
    const f = delta.load();
    if (f.down.length !== delta.rank * nIn || f.up.length !== nOut * delta.rank) {
      throw new EngineError('bad_lora', `LoRA layer ${delta.source}: factors of ${f.down.length} and ${f.up.length} values do not fit a [${nOut}, ${nIn}] weight at rank ${delta.rank}`);
    }
    return f;
  });
  if (patches.length === 1) {
    memo?.set(slot.weight, { deltas, down: loaded[0]!.down, up: loaded[0]!.up });
    return { down: loaded[0]!.down, up: loaded[0]!.up, scale, rank };
  }
  const down = new Float32Array(rank * nIn);
  const up = new Float32Array(nOut * rank);
  at = 0;
  patches.forEach(({ delta }, i) => {
    const f = loaded[i]!;
    const r = delta.rank;
    down.set(f.down, at * nIn);
    interleaveColumns(up, f.up, nOut, rank, r, at);
    at += r;
  });
  memo?.set(slot.weight, { deltas, down, up });
  return { down, up, scale, rank };
}

/** dst [rows, width] columns at…at+r ← src [rows, r] (a plain loop V8 optimises; subarray + set per row is slower). */
function interleaveColumns(dst: Float32Array, src: Float32Array, rows: number, width: number, r: number, at: number): void {
  let from = 0;
  for (let o = 0; o < rows; o++) {
    const to = o * width + at;
    for (let j = 0; j < r; j++) dst[to + j] = src[from + j]!;
    from += r;
  }
}

/** Every slot at rank 0: the graph computes the base model. */
export function emptyLoraFeeds(slots: ReadonlyMap<string, LoraSlot>): Record<string, F32> {
  return runtimeLoraFeeds(slots, []);
}
