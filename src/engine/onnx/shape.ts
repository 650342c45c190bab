// Static shape inference for the builder's vocabulary. A dim is a number where known, or a name:
// the name given at the input ('B', 'S') where it flows through unchanged, '?' where unknown.
// ORT does its own inference at load; ours exists so nets can write shapes and reshape with them.

export type Dim = number | string;
export type Shape = readonly Dim[];

export const UNKNOWN = '?';

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function broadcastDim(a: Dim, b: Dim, what: () => string): Dim {
  if (a === b) return a;
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`cannot broadcast ${what()}`);
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return UNKNOWN;
}

/** Numpy-style broadcasting of any number of shapes. */
export function broadcast(...shapes: Shape[]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = new Array<Dim>(rank).fill(1);
  const what = (): string => shapes.map(formatShape).join(' with ');
  for (const s of shapes) {
    const off = rank - s.length;
    for (let i = 0; i < s.length; i++) out[off + i] = broadcastDim(out[off + i]!, s[i]!, what);
  }
  return out;
}

/** numpy.matmul shapes: batch dims broadcast, [.., M, K] @ [.., K, N] → [.., M, N]. */
export function matmulShape(a: Shape, b: Shape): Dim[] {
  if (a.length < 1 || b.length < 1) throw new Error('matmul of a scalar');
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k1 = a2[a2.length - 1]!;
  const k2 = b2[b2.length - 2]!;
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    throw new Error(`matmul inner dims differ: ${formatShape(a)} @ ${formatShape(b)}`);
  }
  const batch = broadcast(a2.slice(0, -2), b2.slice(0, -2));
  const out = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

/** ONNX Reshape (allowzero = 0): 0 copies the input dim, -1 is inferred when everything else is known. */
export function reshapeShape(input: Shape, spec: readonly number[]): Dim[] {
  const out: Dim[] = spec.map((d, i) => {
    if (d === 0) {
      if (i >= input.length) throw new Error(`reshape: 0 at position ${i} but input rank is ${input.length}`);
      return input[i]!;
    }
    return d;
  });
  const inferAt = spec.indexOf(-1);
  if (spec.lastIndexOf(-1) !== inferAt) throw new Error('reshape: more than one -1');
  const known = (dims: readonly Dim[]): number | undefined =>
    dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((p, d) => p * d, 1) : undefined;
  if (inferAt >= 0) {
    // Dims copied by 0, and named dims on both sides, cancel: [B, 3, 4] → [0, -1, 2] gives [B, 6, 2].
    const inRest: Dim[] = input.filter((_, i) => spec[i] !== 0);
    const outRest: Dim[] = out.filter((_, i) => i !== inferAt && spec[i] !== 0);
    for (let i = inRest.length - 1; i >= 0; i--) {
      const d = inRest[i]!;
      const j = typeof d === 'string' && d !== UNKNOWN ? outRest.indexOf(d) : -1;
      if (j >= 0) { inRest.splice(i, 1); outRest.splice(j, 1); }
    }
    const whole = known(inRest);
    const rest = known(outRest);
    if (whole !== undefined && rest !== undefined) {
      if (rest === 0 || whole % rest !== 0) throw new Error(`reshape ${formatShape(input)} to ${formatShape(spec)}: sizes do not divide`);
      out[inferAt] = whole / rest;
    } else {
      out[inferAt] = UNKNOWN;
    }
    return out;
  }
  const total = known(input);
  const size = known(out);
  if (total !== undefined && size !== undefined && total !== size) {
    throw new Error(`reshape ${formatShape(input)} (${total} elements) to ${formatShape(spec)} (${size})`);
  }
  return out;
}

export function transposeShape(input: Shape, perm: readonly number[]): Dim[] {
  if (perm.length !== input.length) throw new Error(`transpose: perm ${formatShape(perm)} for rank ${input.length}`);
  return perm.map((p) => input[p]!);
}

export function sumDims(dims: readonly Dim[]): Dim {
  return dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((a, b) => a + b, 0) : UNKNOWN;
}

export function concatShape(shapes: Shape[], axis: number): Dim[] {
  const first = shapes[0];
  if (!first) throw new Error('concat of nothing');
  const a = normAxis(axis, first.length);
  const out = broadcastLike(shapes, a);
  out[a] = sumDims(shapes.map((s) => s[a]!));
  return out;
}

function broadcastLike(shapes: Shape[], skip: number): Dim[] {
  const rank = shapes[0]!.length;
  const out = [...shapes[0]!];
  for (const s of shapes) {
    if (s.length !== rank) throw new Error(`concat: ranks differ (${shapes.map(formatShape).join(', ')})`);
    for (let i = 0; i < rank; i++) {
      if (i === skip) continue;
      const d = s[i]!;
      const o = out[i]!;
      if (typeof d === 'number' && typeof o === 'number' && d !== o) {
        throw new Error(`concat: dim ${i} differs (${shapes.map(formatShape).join(', ')})`);
      }
      if (typeof o !== 'number') out[i] = d;
    }
  }
  return out;
}

/** Output length of one sliced axis (ONNX Slice clamping rules), '?' if the dim is unknown. */
export function sliceDim(dim: Dim, start: number, end: number, step: number): Dim {
  if (typeof dim !== 'number') return UNKNOWN;
  const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = clamp(s, 0, dim);
    e = clamp(e, 0, dim);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  s = clamp(s, -1, dim - 1);
  e = clamp(e, -1, dim - 1);
  return Math.max(0, Math.ceil((e - s) / step));
}

export function convOutDim(size: Dim, kernel: number, stride: number, padBegin: number, padEnd: number, dilation: number): Dim {
  if (typeof size !== 'number') return UNKNOWN;
  return Math.floor((size + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1;
}

export function mulDim(a: Dim, b: Dim): Dim {
  return typeof a === 'number' && typeof b === 'number' ? a * b : UNKNOWN;
}

export function divDim(a: Dim, b: number): Dim {
  if (typeof a !== 'number') return UNKNOWN;
  if (a % b !== 0) throw new Error(`${a} is not divisible by ${b}`);
  return a / b;
}
