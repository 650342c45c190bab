// controlnet_aux open_pose/body.py `Body.__call__` around the network: the BGR image scaled to the
// network's box (smart_resize_k), padded to the stride, the outputs scaled back to the image and
// averaged over scales, then decoded into candidates (peaks) and people (subset rows).
//
// Python details kept on purpose (each changes numbers or people):
// - multiplier = scale·368 / H; the scaled size is int(W·m) × int(H·m) (truncation), INTER_AREA if the
//   size shrinks on average, else INTER_LANCZOS4; padding is 128 on the bottom / right to multiples of 8;
//   the network sees float32(pixel) / 256 − 0.5 (256, not 255).
// - maps back: every channel ×8 with LANCZOS4, cropped to the unpadded size, resized to H × W;
//   heatmap_avg += heatmap_avg + heatmap / n (the reference's doubling, harmless with one scale).
// - peaks: scipy gaussian_filter(σ = 3) in float64, ≥ its 4 neighbours (0 outside) and > 0.1, in
//   row-major order; the score is the unsmoothed map.
// - limbs, person assembly and the deletion rule exactly as body.py (see assemblePeople).
import { cvResize, type CvImage } from '../cv-resize.js';
import { BODY_STRIDE, HEATMAP_CHANNELS, PAF_CHANNELS, type BodyNetOutputs } from './body-net.js';

export const BODY_PARTS = 18;
/** 1-based part pairs of the 19 limbs (the last two, shoulder–ear, are scored but never drawn). */
export const LIMB_SEQ: readonly (readonly [number, number])[] = [
  [2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13], [13, 14],
  [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [3, 17], [6, 18],
];
/** Each limb's (x, y) PAF channels, + 19 as in body.py's mapIdx. */
const MAP_IDX: readonly (readonly [number, number])[] = [
  [31, 32], [39, 40], [33, 34], [35, 36], [41, 42], [43, 44], [19, 20], [21, 22], [23, 24], [25, 26], [27, 28],
  [29, 30], [47, 48], [49, 50], [53, 54], [51, 52], [55, 56], [37, 38], [45, 46],
];

export interface BodyOptions {
  /** Body's scale_search (fractions of the 368-px box). controlnet_aux uses [0.5]. */
  scales?: readonly number[];
  boxSize?: number;
  padValue?: number;
  /** Peak threshold on the smoothed heatmap. */
  thre1?: number;
  /** PAF threshold per sample along a limb. */
  thre2?: number;
}

const DEFAULTS = { scales: [0.5], boxSize: 368, padValue: 128, thre1: 0.1, thre2: 0.05 } as const;

/** One network input of Body's multi-scale loop. */
export interface BodyScaleInput {
  /** [1, 3, Hp, Wp] float32 BGR / 256 − 0.5. */
  input: { dtype: 'float32'; dims: number[]; data: Float32Array };
  /** The padded BGR uint8 image (Hp × Wp × 3) the input was made from. */
  padded: CvImage<Uint8Array>;
  /** Size before padding. */
  width: number;
  height: number;
}

/** util.smart_resize_k / smart_resize: INTER_AREA when the area shrinks on average, else LANCZOS4. */
function smartResize<T extends Uint8Array | Float32Array>(img: CvImage<T>, width: number, height: number, k = (height + width) / (img.height + img.width)): CvImage<T> {
  return cvResize(img, width, height, k < 1 ? 'area' : 'lanczos4');
}

/** Body's input for one scale: resized (int truncation of the scaled size), padded, normalised. */
export function bodyScaleInput(bgr: CvImage<Uint8Array>, scale: number, options: BodyOptions = {}): BodyScaleInput {
  const boxSize = options.boxSize ?? DEFAULTS.boxSize;
  const padValue = options.padValue ?? DEFAULTS.padValue;
  const m = (scale * boxSize) / bgr.height;
  const width = Math.trunc(bgr.width * m);
  const height = Math.trunc(bgr.height * m);
  if (width < 1 || height < 1) throw new RangeError(`openpose: a ${bgr.width}×${bgr.height} image scaled by ${m} is empty`);
  // smart_resize_k decides the filter from the unrounded target size.
  const scaled = smartResize(bgr, width, height, (bgr.height * m + bgr.width * m) / (bgr.height + bgr.width));
  const pw = Math.ceil(width / BODY_STRIDE) * BODY_STRIDE;
  const ph = Math.ceil(height / BODY_STRIDE) * BODY_STRIDE;
  const padded = new Uint8Array(pw * ph * 3).fill(padValue);
  for (let y = 0; y < height; y++) padded.set(scaled.data.subarray(y * width * 3, (y + 1) * width * 3), y * pw * 3);
  const plane = pw * ph;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) data[c * plane + i] = Math.fround(padded[i * 3 + c]! / 256) - 0.5;
  }
  return { input: { dtype: 'float32', dims: [1, 3, ph, pw], data }, padded: { data: padded, width: pw, height: ph, channels: 3 }, width, height };
}

/** One network channel scaled back to the image: ×8 (LANCZOS4), unpadded crop, then to width × height. */
function channelBack(out: { dims: readonly number[]; data: Float32Array }, c: number, scaled: { width: number; height: number }, width: number, height: number): Float32Array {
  const [, , h, w] = out.dims as [number, number, number, number];
  const plane = h * w;
  const up = cvResize({ data: out.data.subarray(c * plane, (c + 1) * plane).slice(), width: w, height: h, channels: 1 }, w * BODY_STRIDE, h * BODY_STRIDE, 'lanczos4');
  const crop = new Float32Array(scaled.width * scaled.height);
  for (let y = 0; y < scaled.height; y++) crop.set(up.data.subarray(y * up.width, y * up.width + scaled.width), y * scaled.width);
  return smartResize({ data: crop, width: scaled.width, height: scaled.height, channels: 1 }, width, height).data;
}

/** A peak: [x, y, score, id], as a candidate row. */
export type Candidate = readonly [x: number, y: number, score: number, id: number];

/** A person: 18 candidate ids (−1 absent), then total score, then part count — a subset row. */
export type PersonRow = number[];

export interface BodyResult {
  candidate: Candidate[];
  subset: PersonRow[];
}

/**
 * The heatmap and PAF averages at image size, one float64 plane per channel, computed on each read:
 * the decoder reads each channel it needs once (each PAF pair belongs to one limb) and never the
 * background heatmap, nor the PAFs of limbs without peaks at both ends; so only one plane is alive
 * at a time, and each costs two resizes of the whole image.
 */
export interface BodyMaps {
  width: number;
  height: number;
  heatmap(part: number): Float64Array;
  paf(channel: number): Float64Array;
}

/** Maps already at image size (tests, or other sources). */
export function bodyMapsOf(width: number, height: number, heatmap: readonly Float64Array[], paf: readonly Float64Array[]): BodyMaps {
  return { width, height, heatmap: (c) => heatmap[c]!, paf: (c) => paf[c]! };
}

/** Accumulates the network outputs of each scale as Body does, one channel at a time. */
export function averageMaps(width: number, height: number, runs: readonly { scaled: BodyScaleInput; out: BodyNetOutputs }[]): BodyMaps {
  const n = runs.length;
  for (const { out } of runs) {
    if (out.heatmap.dims[1] !== HEATMAP_CHANNELS || out.paf.dims[1] !== PAF_CHANNELS) {
      throw new RangeError(`openpose: the network returned ${out.paf.dims[1]} PAF and ${out.heatmap.dims[1]} heatmap channels, expected ${PAF_CHANNELS} and ${HEATMAP_CHANNELS}`);
    }
  }
  const channel = (kind: 'heatmap' | 'paf', c: number): Float64Array => {
    const count = kind === 'heatmap' ? HEATMAP_CHANNELS : PAF_CHANNELS;
    if (!Number.isInteger(c) || c < 0 || c >= count) throw new RangeError(`openpose: no ${kind} channel ${c}`);
    const acc = new Float64Array(width * height);
    for (const { scaled, out } of runs) {
      // The division by n is float32 (a numpy float32 array by a Python int). The heatmap keeps the
      // reference's heatmap_avg += heatmap_avg + heatmap / n (harmless with one scale).
      const plane = channelBack(out[kind], c, scaled, width, height);
      if (kind === 'heatmap') for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + (acc[i]! + Math.fround(plane[i]! / n));
      else for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + Math.fround(plane[i]! / n);
    }
    return acc;
  };
  return { width, height, heatmap: (c) => channel('heatmap', c), paf: (c) => channel('paf', c) };
}

/** numpy's pairwise sum of a short float64 array (n ≤ 128: eight running sums, combined in a tree). */
function numpySum(a: Float64Array): number {
  const n = a.length;
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[i]!;
    return s;
  }
  if (n > 128) throw new RangeError('numpySum: only short arrays');
  const r = Array.from({ length: 8 }, (_, j) => a[j]!);
  const whole = n - (n % 8);
  for (let i = 8; i < whole; i += 8) for (let j = 0; j < 8; j++) r[j] = r[j]! + a[i + j]!;
  let s = ((r[0]! + r[1]!) + (r[2]! + r[3]!)) + ((r[4]! + r[5]!) + (r[6]! + r[7]!));
  for (let i = whole; i < n; i++) s += a[i]!;
  return s;
}

/** scipy.ndimage._gaussian_kernel1d: exp(−0.5/σ² · x²) over x = −r..r (r = int(4σ + 0.5)), divided by its sum. */
function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.trunc(4 * sigma + 0.5);
  const c = -0.5 / (sigma * sigma);
  const k = new Float64Array(2 * radius + 1);
  for (let i = -radius; i <= radius; i++) k[i + radius] = Math.exp(c * (i * i));
  const sum = numpySum(k);
  for (let i = 0; i < k.length; i++) k[i] = k[i]! / sum;
  return k;
}

/** scipy 'reflect' (half-sample symmetric: d c b a | a b c d | d c b a), for any overshoot. */
function reflect(i: number, n: number): number {
  const period = 2 * n;
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - 1 - j;
  return j;
}

/**
 * scipy.ndimage.gaussian_filter(map, sigma) on an H × W float64 map: correlate1d along axis 0, then
 * axis 1, each in scipy's order for a symmetric kernel: x[0]·k[0], then + (x[−j] + x[j])·k[j] for
 * j = r … 1.
 */
export function gaussianFilter(map: Float64Array, width: number, height: number, sigma: number): Float64Array {
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const tmp = new Float64Array(map.length);
  for (let y = 0; y < height; y++) {
    const o = y * width;
    const w0 = k[r]!;
    for (let x = 0; x < width; x++) tmp[o + x] = map[o + x]! * w0;
    for (let j = r; j >= 1; j--) {
      const up = reflect(y - j, height) * width;
      const down = reflect(y + j, height) * width;
      const w = k[r - j]!;
      for (let x = 0; x < width; x++) tmp[o + x] = tmp[o + x]! + (map[up + x]! + map[down + x]!) * w;
    }
  }
  const out = new Float64Array(map.length);
  const line = new Float64Array(width + 2 * r);
  const pad = Array.from({ length: width + 2 * r }, (_, i) => reflect(i - r, width));
  for (let y = 0; y < height; y++) {
    const o = y * width;
    for (let i = 0; i < line.length; i++) line[i] = tmp[o + pad[i]!]!;
    for (let x = 0; x < width; x++) {
      const c = x + r;
      let s = line[c]! * k[r]!;
      for (let j = r; j >= 1; j--) s += (line[c - j]! + line[c + j]!) * k[r - j]!;
      out[o + x] = s;
    }
  }
  return out;
}

/** Peaks of every part, ids running over all parts in order. */
export function findPeaks(maps: BodyMaps, thre1: number = DEFAULTS.thre1): Candidate[][] {
  const { width: W, height: H } = maps;
  const all: Candidate[][] = [];
  let id = 0;
  for (let part = 0; part < BODY_PARTS; part++) {
    const ori = maps.heatmap(part);
    const peaks: Candidate[] = [];
    all.push(peaks);
    // The filter is a weighted mean (weights > 0, sum 1): nothing exceeds thre1 after it unless something
    // came close before (the margin covers the weights' rounding), so empty channels skip the filter.
    let max = -Infinity;
    for (let i = 0; i < ori.length; i++) if (ori[i]! > max) max = ori[i]!;
    if (!(max > thre1 * (1 - 1e-9))) continue;
    const one = gaussianFilter(ori, W, H, 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const v = one[y * W + x]!;
        if (!(v > thre1)) continue;
        const up = y > 0 ? one[(y - 1) * W + x]! : 0;
        const down = y < H - 1 ? one[(y + 1) * W + x]! : 0;
        const left = x > 0 ? one[y * W + x - 1]! : 0;
        const right = x < W - 1 ? one[y * W + x + 1]! : 0;
        if (v >= up && v >= down && v >= left && v >= right) peaks.push([x, y, ori[y * W + x]!, id++]);
      }
    }
  }
  return all;
}

/** numpy.linspace(a, b, num): start + i·step, the last point exactly b. */
function linspace(a: number, b: number, num: number): number[] {
  const div = num - 1;
  const delta = b - a;
  const step = delta / div;
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(step === 0 ? (i / div) * delta + a : i * step + a);
  out[num - 1] = b;
  return out;
}

/** Python's round() of a float: ties to even. */
function pyRound(v: number): number {
  const f = Math.floor(v);
  const frac = v - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** A limb connection: candidate ids of both ends, its score, and the ends' indices within their parts. */
export type Connection = readonly [idA: number, idB: number, score: number, i: number, j: number];

/** Scores every pair of peaks of each limb along its PAF and keeps the best disjoint pairs. */
export function connectLimbs(maps: BodyMaps, peaks: readonly Candidate[][], thre2: number = DEFAULTS.thre2): (Connection[] | undefined)[] {
  const { width: W, height: H } = maps;
  const midNum = 10;
  return LIMB_SEQ.map(([a, b], k) => {
    const candA = peaks[a - 1]!;
    const candB = peaks[b - 1]!;
    if (candA.length === 0 || candB.length === 0) return undefined;
    const pafX = maps.paf(MAP_IDX[k]![0] - 19);
    const pafY = maps.paf(MAP_IDX[k]![1] - 19);
    const scored: [number, number, number][] = [];
    candA.forEach((pa, i) => {
      candB.forEach((pb, j) => {
        let vx = pb[0] - pa[0];
        let vy = pb[1] - pa[1];
        const norm = Math.max(0.001, Math.sqrt(vx * vx + vy * vy));
        vx /= norm;
        vy /= norm;
        const xs = linspace(pa[0], pb[0], midNum);
        const ys = linspace(pa[1], pb[1], midNum);
        let sum = 0;
        let above = 0;
        for (let t = 0; t < midNum; t++) {
          const at = Math.trunc(pyRound(ys[t]!)) * W + Math.trunc(pyRound(xs[t]!));
          const s = pafX[at]! * vx + pafY[at]! * vy;
          sum += s;
          if (s > thre2) above++;
        }
        const score = sum / midNum + Math.min((0.5 * H) / norm - 1, 0);
        if (above > 0.8 * midNum && score > 0) scored.push([i, j, score]);
      });
    });
    // sorted(..., reverse=True) is stable: equal scores keep their (i, j) order.
    const order = scored.map((_, n) => n).sort((p, q) => scored[q]![2] - scored[p]![2] || p - q);
    const connections: Connection[] = [];
    const usedA = new Set<number>();
    const usedB = new Set<number>();
    for (const n of order) {
      const [i, j, s] = scored[n]!;
      if (usedA.has(i) || usedB.has(j)) continue;
      connections.push([candA[i]![3], candB[j]![3], s, i, j]);
      usedA.add(i);
      usedB.add(j);
      if (connections.length >= Math.min(candA.length, candB.length)) break;
    }
    return connections;
  });
}

/**
 * body.py's person assembly. For each limb k and connection (A = idA, B = idB, s): the rows holding A
 * in part a or B in part b. One row: add B if it is not there yet. Two rows: merge them if they share
 * no part (ids + 1 as numpy adds −1 rows, scores and counts summed, s added), else add B to the first
 * without checking. None (and k < 17): a new row of A and B. Finally rows with under 4 parts or a mean
 * score under 0.4 are deleted. (A third matching row makes the reference raise IndexError; here the
 * first two are used.)
 */
export function assemblePeople(candidate: readonly Candidate[], connections: readonly (Connection[] | undefined)[]): PersonRow[] {
  let subset: PersonRow[] = [];
  const SCORE = BODY_PARTS;
  const COUNT = BODY_PARTS + 1;
  connections.forEach((list, k) => {
    if (!list) return;
    const a = LIMB_SEQ[k]![0] - 1;
    const b = LIMB_SEQ[k]![1] - 1;
    for (const [idA, idB, s] of list) {
      const rows: number[] = [];
      subset.forEach((row, j) => {
        if (row[a] === idA || row[b] === idB) rows.push(j);
      });
      if (rows.length === 1) {
        const row = subset[rows[0]!]!;
        if (row[b] !== idB) {
          row[b] = idB;
          row[COUNT]! += 1;
          row[SCORE]! += candidate[idB]![2] + s;
        }
      } else if (rows.length >= 2) {
        const r1 = subset[rows[0]!]!;
        const r2 = subset[rows[1]!]!;
        let overlap = false;
        for (let p = 0; p < BODY_PARTS; p++) if (r1[p]! >= 0 && r2[p]! >= 0) overlap = true;
        if (!overlap) {
          for (let p = 0; p < BODY_PARTS; p++) r1[p]! += r2[p]! + 1;
          r1[SCORE]! += r2[SCORE]!;
          r1[COUNT]! += r2[COUNT]!;
          r1[SCORE]! += s;
          subset = subset.filter((_, j) => j !== rows[1]);
        } else {
          r1[b] = idB;
          r1[COUNT]! += 1;
          r1[SCORE]! += candidate[idB]![2] + s;
        }
      } else if (k < 17) {
        const row = new Array<number>(BODY_PARTS + 2).fill(-1);
        row[a] = idA;
        row[b] = idB;
        row[COUNT] = 2;
        row[SCORE] = candidate[idA]![2] + candidate[idB]![2] + s;
        subset.push(row);
      }
    }
  });
  return subset.filter((row) => !(row[COUNT]! < 4 || row[SCORE]! / row[COUNT]! < 0.4));
}

/** Candidates and people from the averaged maps. */
export function decodeBody(maps: BodyMaps, options: BodyOptions = {}): BodyResult {
  const peaks = findPeaks(maps, options.thre1 ?? DEFAULTS.thre1);
  const candidate = peaks.flat();
  const connections = connectLimbs(maps, peaks, options.thre2 ?? DEFAULTS.thre2);
  return { candidate, subset: assemblePeople(candidate, connections) };
}

/** The scales Body runs (multipliers of boxSize / H). */
export function bodyScales(options: BodyOptions = {}): readonly number[] {
  return options.scales ?? DEFAULTS.scales;
}
