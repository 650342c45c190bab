// W' for one weight from its LoRA patches (the formulas are in apply.ts's header). The low-rank
// products are the cost; they run as Gemms (gemm.ts): one for all plain LoRAs on the weight together,
// their factors stacked along the rank,
//
//   W + Σ_i c_i · up_i @ down_i  =  W + [c_1·up_1 | c_2·up_2 | …] @ [down_1; down_2; …],   c_i = s_i·α_i/r_i
//
// and one V_i = W + c_i · up_i @ down_i per DoRA LoRA, whose norms and magnitudes are applied here.
// A conv weight [out, in, kh, kw] is the matrix [out, in·kh·kw] and its down kernel [r, in·kh·kw],
// so a 3×3 LoCon layer is the same product.
import { EngineError } from '../errors.js';
import type { LoraDelta, LoraFactors } from '../formats/lora.js';
import { gemmSync, type GemmJob } from './gemm.js';

/** One patch with its factors in memory. */
export interface LoadedPatch {
  delta: Pick<LoraDelta, 'rank' | 'alpha' | 'targetShape' | 'dora'>;
  factors: LoraFactors;
  scale: number;
}

/** W' for one weight: a new array, `base` left untouched. */
export function mergeLoras(base: Float32Array, patches: readonly LoadedPatch[]): Float32Array {
  const rows = patches[0]?.delta.targetShape[0] ?? 0;
  if (rows === 0) return base.slice();
  const cols = base.length / rows;
  for (const p of patches) checkFactors(p.factors, p.delta.rank, rows, cols);
  const plain = patches.filter((p) => !p.delta.dora);
  const dora = patches.filter((p) => p.delta.dora);

  const [first, ...vs] = gemmSync(() => [
    ...(plain.length > 0 ? [stacked(base, plain, rows, cols)] : []),
    ...dora.map((p) => stacked(base, [p], rows, cols)),
  ]);
  if (dora.length === 0) return first!;

  // W + Σ plain, or W itself when every patch is DoRA; then each DoRA adds (m / ‖V‖) ⊙ V − W
  const sum = plain.length > 0 ? first! : base;
  const dorasV = plain.length > 0 ? vs : [first!, ...vs];
  const out = Float64Array.from(sum);
  dora.forEach((p, i) => {
    const v = dorasV[i]!;
    const f = doraFactors(p.delta.dora!, p.factors.doraScale!, v, rows, cols);
    const perRow = p.delta.dora === 'out';
    for (let o = 0; o < rows; o++) {
      for (let k = 0, at = o * cols; k < cols; k++, at++) out[at] = out[at]! + f[perRow ? o : k]! * v[at]! - base[at]!;
    }
  });
  return Float32Array.from(out);
}

/** The Gemm W + [c_1·up_1 | …] @ [down_1; …] with arrays made for it (gemmSync consumes them). */
function stacked(base: Float32Array, patches: readonly LoadedPatch[], rows: number, cols: number): GemmJob {
  const r = patches.reduce((n, p) => n + p.delta.rank, 0);
  const up = new Float32Array(rows * r); // [rows, r]
  const down = new Float32Array(r * cols); // [r, cols]
  let at = 0;
  for (const p of patches) {
    const { rank, alpha } = p.delta;
    const c = (p.scale * alpha) / rank;
    for (let o = 0; o < rows; o++) for (let j = 0; j < rank; j++) up[o * r + at + j] = c * p.factors.up[o * rank + j]!;
    down.set(p.factors.down, at * cols);
    at += rank;
  }
  return { m: rows, r, n: cols, up, down, base: base.slice() };
}

/**
 * m / ‖V‖: per output row (PEFT's 'out', [rows]), or per input channel ('in', LyCORIS; a conv's
 * norm also runs over the kernel positions), spread over the columns ([cols]).
 */
function doraFactors(kind: 'out' | 'in', m: Float32Array, v: Float32Array, rows: number, cols: number): Float64Array {
  if (kind === 'out') {
    const f = new Float64Array(rows);
    for (let o = 0; o < rows; o++) {
      let sq = 0;
      for (let k = 0; k < cols; k++) sq += v[o * cols + k]! ** 2;
      f[o] = m[o]! / Math.sqrt(sq);
    }
    return f;
  }
  const inner = cols / m.length;
  const sq = new Float64Array(m.length);
  for (let o = 0; o < rows; o++) for (let k = 0; k < cols; k++) sq[Math.floor(k / inner)] += v[o * cols + k]! ** 2;
  return Float64Array.from({ length: cols }, (_, k) => m[Math.floor(k / inner)]! / Math.sqrt(sq[Math.floor(k / inner)]!));
}

function checkFactors(f: LoraFactors, rank: number, rows: number, cols: number): void {
  if (f.up.length !== rows * rank || f.down.length !== rank * cols) {
    throw new EngineError('bad_lora', `LoRA factors of ${f.up.length} and ${f.down.length} values do not fit a [${rows}, ${cols}] weight at rank ${rank}`);
  }
}
