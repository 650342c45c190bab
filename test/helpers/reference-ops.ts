// Plain TypeScript reference implementations of the graph vocabulary, computed in float64 with
// torch's semantics, for comparing ONNX Runtime's results against. Slow and obvious on purpose.
import assert from 'node:assert/strict';

export interface Nd {
  shape: number[];
  data: Float64Array;
}

export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function nd(shape: readonly number[], data?: ArrayLike<number>): Nd {
  const out = new Float64Array(size(shape));
  if (data) {
    assert.equal(data.length, out.length, `nd: ${data.length} values for [${shape.join(', ')}]`);
    for (let i = 0; i < out.length; i++) out[i] = data[i]!;
  }
  return { shape: [...shape], data: out };
}

/** Deterministic normal samples (mulberry32 + Box–Muller). */
export function randn(shape: readonly number[], seed: number, scale = 1): Nd {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) {
    out.data[i] = scale * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  }
  return out;
}

export const f32 = (a: Nd): Float32Array => Float32Array.from(a.data);

function strides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) st[i] = st[i + 1]! * shape[i + 1]!;
  return st;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const x = a[i - (rank - a.length)] ?? 1;
    const y = b[i - (rank - b.length)] ?? 1;
    assert.ok(x === y || x === 1 || y === 1, `broadcast [${a}] with [${b}]`);
    return Math.max(x, y);
  });
}

/** Element of `a` at the broadcast index `idx` (of a possibly higher rank). */
function at(a: Nd, idx: readonly number[]): number {
  const st = strides(a.shape);
  const off = idx.length - a.shape.length;
  let p = 0;
  for (let d = 0; d < a.shape.length; d++) p += (a.shape[d] === 1 ? 0 : idx[d + off]!) * st[d]!;
  return a.data[p]!;
}

export function binary(a: Nd, b: Nd, f: (x: number, y: number) => number): Nd {
  const shape = broadcastShape(a.shape, b.shape);
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    out.data[i] = f(at(a, idx), at(b, idx));
  }
  return out;
}

export function map(a: Nd, f: (x: number) => number): Nd {
  return { shape: [...a.shape], data: a.data.map(f) };
}

/** erf to ~1e-13: Taylor series near 0, erfc's continued fraction beyond 2.5. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 2.5) {
    let k = ax;
    for (let n = 80; n >= 1; n--) k = ax + n / 2 / k;
    return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / k);
  }
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

export function transpose(a: Nd, perm: readonly number[]): Nd {
  const shape = perm.map((p) => a.shape[p]!);
  const st = strides(a.shape);
  const out = nd(shape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape);
    let p = 0;
    for (let d = 0; d < perm.length; d++) p += idx[d]! * st[perm[d]!]!;
    out.data[i] = a.data[p]!;
  }
  return out;
}

export function matmul(a: Nd, b: Nd): Nd {
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  assert.equal(k, k2);
  const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = nd([...batch, m, n]);
  const nb = size(batch);
  for (let bi = 0; bi < nb; bi++) {
    const idx = unravel(bi, batch);
    const offA = batchOffset(a, idx) * m * k;
    const offB = batchOffset(b, idx) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < k; t++) s += a.data[offA + i * k + t]! * b.data[offB + t * n + j]!;
        out.data[bi * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

function batchOffset(a: Nd, idx: readonly number[]): number {
  const bs = a.shape.slice(0, -2);
  const st = strides(bs);
  const off = idx.length - bs.length;
  let p = 0;
  for (let d = 0; d < bs.length; d++) p += (bs[d] === 1 ? 0 : idx[d + off]!) * st[d]!;
  return p;
}

/** torch.nn.functional.linear: x @ wᵀ + b, w [out, in]. */
export function linear(x: Nd, w: Nd, b?: Nd): Nd {
  const y = matmul(x, transpose(w, [1, 0]));
  return b ? binary(y, b, (p, q) => p + q) : y;
}

export function softmax(a: Nd, axis = -1): Nd {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const out = nd(a.shape);
  const inner = size(a.shape.slice(ax + 1));
  const len = a.shape[ax]!;
  const outer = size(a.shape.slice(0, ax));
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const p = (j: number): number => o * len * inner + j * inner + i;
      let max = -Infinity;
      for (let j = 0; j < len; j++) max = Math.max(max, a.data[p(j)]!);
      let sum = 0;
      for (let j = 0; j < len; j++) sum += Math.exp(a.data[p(j)]! - max);
      for (let j = 0; j < len; j++) out.data[p(j)] = Math.exp(a.data[p(j)]! - max) / sum;
    }
  }
  return out;
}

/** torch.nn.functional.conv2d, NCHW. */
export function conv2d(x: Nd, w: Nd, b: Nd | undefined, o: { stride?: number; padding?: number; dilation?: number; groups?: number } = {}): Nd {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [co, cig, kh, kw] = w.shape as [number, number, number, number];
  const s = o.stride ?? 1;
  const p = o.padding ?? 0;
  const d = o.dilation ?? 1;
  const g = o.groups ?? 1;
  assert.equal(cig * g, c);
  const ho = Math.floor((h + 2 * p - d * (kh - 1) - 1) / s) + 1;
  const wo = Math.floor((wd + 2 * p - d * (kw - 1) - 1) / s) + 1;
  const out = nd([n, co, ho, wo]);
  const cog = co / g;
  for (let bn = 0; bn < n; bn++) for (let oc = 0; oc < co; oc++) {
    const grp = Math.floor(oc / cog);
    for (let oy = 0; oy < ho; oy++) for (let ox = 0; ox < wo; ox++) {
      let sum = b ? b.data[oc]! : 0;
      for (let ic = 0; ic < cig; ic++) for (let ky = 0; ky < kh; ky++) for (let kx = 0; kx < kw; kx++) {
        const iy = oy * s - p + ky * d;
        const ix = ox * s - p + kx * d;
        if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
        const cin = grp * cig + ic;
        sum += x.data[((bn * c + cin) * h + iy) * wd + ix]! * w.data[((oc * cig + ic) * kh + ky) * kw + kx]!;
      }
      out.data[((bn * co + oc) * ho + oy) * wo + ox] = sum;
    }
  }
  return out;
}

/** torch.nn.functional.group_norm over [N, C, ...]. */
export function groupNorm(x: Nd, w: Nd, b: Nd, groups: number, eps: number): Nd {
  const [n, c] = x.shape as [number, number];
  const spatial = size(x.shape.slice(2));
  const per = (c / groups) * spatial;
  const out = nd(x.shape);
  for (let bn = 0; bn < n; bn++) for (let g = 0; g < groups; g++) {
    const off = (bn * c + g * (c / groups)) * spatial;
    let mean = 0;
    for (let i = 0; i < per; i++) mean += x.data[off + i]!;
    mean /= per;
    let v = 0;
    for (let i = 0; i < per; i++) v += (x.data[off + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / per + eps);
    for (let i = 0; i < per; i++) {
      const ch = g * (c / groups) + Math.floor(i / spatial);
      out.data[off + i] = (x.data[off + i]! - mean) * inv * w.data[ch]! + b.data[ch]!;
    }
  }
  return out;
}

/** torch.nn.functional.layer_norm over the last dim. */
export function layerNorm(x: Nd, w: Nd, b: Nd | undefined, eps: number): Nd {
  const d = x.shape[x.shape.length - 1]!;
  const out = nd(x.shape);
  for (let r = 0; r < x.data.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x.data[r * d + i]!;
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x.data[r * d + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) out.data[r * d + i] = (x.data[r * d + i]! - mean) * inv * w.data[i]! + (b ? b.data[i]! : 0);
  }
  return out;
}

/** Scaled dot-product attention in diffusers layout: [B, S, H·D] → [B, Sq, H·Dv]; additive mask [.., Sq, Sk]. */
export function attention(q: Nd, k: Nd, v: Nd, heads: number, mask?: Nd): Nd {
  const split = (t: Nd): Nd => {
    const [b, s, hd] = t.shape as [number, number, number];
    return transpose({ shape: [b, s, heads, hd / heads], data: t.data }, [0, 2, 1, 3]);
  };
  const qh = split(q);
  const d = qh.shape[3]!;
  let scores = map(matmul(qh, transpose(split(k), [0, 1, 3, 2])), (x) => x / Math.sqrt(d));
  if (mask) scores = binary(scores, mask, (a, m) => a + m);
  const o = transpose(matmul(softmax(scores, -1), split(v)), [0, 2, 1, 3]); // [B, Sq, H, Dv]
  return { shape: [o.shape[0]!, o.shape[1]!, o.shape[2]! * o.shape[3]!], data: o.data };
}

/** F.interpolate on NCHW, 'nearest' (legacy torch) or 'bilinear' with align_corners=False. */
export function resize(x: Nd, oh: number, ow: number, mode: 'nearest' | 'bilinear'): Nd {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const out = nd([n, c, oh, ow]);
  const sy = h / oh;
  const sx = w / ow;
  const px = (bc: number, y: number, xx: number): number => x.data[(bc * h + y) * w + xx]!;
  for (let bc = 0; bc < n * c; bc++) for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) {
    let v: number;
    if (mode === 'nearest') {
      v = px(bc, Math.min(Math.floor(y * sy), h - 1), Math.min(Math.floor(xx * sx), w - 1));
    } else {
      const fy = Math.max((y + 0.5) * sy - 0.5, 0);
      const fx = Math.max((xx + 0.5) * sx - 0.5, 0);
      const y0 = Math.min(Math.floor(fy), h - 1);
      const x0 = Math.min(Math.floor(fx), w - 1);
      const y1 = Math.min(y0 + 1, h - 1);
      const x1 = Math.min(x0 + 1, w - 1);
      const ly = fy - y0;
      const lx = fx - x0;
      v = (1 - ly) * ((1 - lx) * px(bc, y0, x0) + lx * px(bc, y0, x1)) + ly * ((1 - lx) * px(bc, y1, x0) + lx * px(bc, y1, x1));
    }
    out.data[(bc * oh + y) * ow + xx] = v;
  }
  return out;
}

/** Largest |a-e| - atol - rtol·|e| must be ≤ 0; the message names the worst element. */
export function assertClose(actual: ArrayLike<number>, expected: Nd | ArrayLike<number>, tol: { atol?: number; rtol?: number } = {}, what = 'values'): void {
  const exp = 'data' in expected ? expected.data : expected;
  assert.equal(actual.length, exp.length, `${what}: length ${actual.length} vs ${exp.length}`);
  const atol = tol.atol ?? 1e-5;
  const rtol = tol.rtol ?? 1e-5;
  let worst = -Infinity;
  let at = -1;
  for (let i = 0; i < exp.length; i++) {
    const a = actual[i]!;
    const e = exp[i]!;
    const excess = Number.isNaN(a) !== Number.isNaN(e) ? Infinity : Number.isNaN(e) ? 0 : Math.abs(a - e) - atol - rtol * Math.abs(e);
    if (excess > worst) { worst = excess; at = i; }
  }
  assert.ok(worst <= 0, `${what}: element ${at} is ${actual[at]} but expected ${exp[at]} (atol ${atol}, rtol ${rtol})`);
}
