// Golden kind `depth_anything`: transformers DepthAnythingForDepthEstimation + the InstantID Space's
// depth pre/post-processing. Outputs are named `[VARIANT.]ITEM.QUANTITY`:
// - ITEM with an input ITEM.pixel_values: the network alone (QUANTITY predicted_depth);
// - ITEM with an input ITEM.input_rgb_uint8: the whole get_depth_map (pixel_values / predicted_depth crops,
//   depth_resized, depth_min_max, depth_uint8, or the full pixel_values / predicted_depth);
// - VARIANT `tMNN` (e.g. t441): the same, with the position interpolation transformers M.NN runs.
// Float quantities use the case's atol/rtol entry; depth_uint8 its max_abs_diff / max_fraction_differing.
import type { GoldenCase } from '../case.js';
import type { Tolerance } from '../case.js';
import { compareClose, type Check } from '../compare.js';
import { caseFile, caseNames, goldenCacheDir, ioF32 } from '../net-io.js';
import { DepthEstimator, depthPixelValues, depthToUint8, interpolationForVersion, type PositionInterpolation } from '../../control/depth/index.js';
import { f32, type F32 } from '../../nets/net-session.js';

const fail = (name: string, note: string): Check => ({ name, maxAbsError: Infinity, allowed: 0, pass: false, note });

interface Tolerances {
  /** The float tolerance for a quantity: the entry whose key names it ("predicted_depth / pixel_values crops / …"), else the first. */
  float(quantity: string): Tolerance;
  u8: { maxAbsDiff: number; maxFraction: number };
}

function tolerances(c: GoldenCase): Tolerances {
  const tol = (c.json.tolerance ?? {}) as Record<string, unknown>;
  const floats: { names: string[]; t: Tolerance }[] = [];
  let u8 = { maxAbsDiff: 0, maxFraction: 0 };
  for (const [key, v] of Object.entries(tol)) {
    if (!v || typeof v !== 'object') continue;
    const e = v as Record<string, unknown>;
    if (typeof e.atol === 'number') floats.push({ names: key.split('/').map((n) => n.trim().replace(/ crops$/, '_crop')), t: { atol: e.atol, rtol: typeof e.rtol === 'number' ? e.rtol : 0 } });
    if (typeof e.max_abs_diff === 'number') u8 = { maxAbsDiff: e.max_abs_diff, maxFraction: typeof e.max_fraction_differing === 'number' ? e.max_fraction_differing : 0 };
  }
  return {
    float: (quantity) => (floats.find((f) => f.names.some((n) => n === quantity || quantity.startsWith(`${n}_`)))?.t ?? floats[0]?.t ?? c.tolerance),
    u8,
  };
}

/** x[..., :h, :w] (corner 'top_left') or x[..., -h:, -w:] of a [planes, H, W] tensor. */
function crop(data: Float32Array, planes: number, H: number, W: number, h: number, w: number, corner: 'top_left' | 'bottom_right'): Float32Array {
  const out = new Float32Array(planes * h * w);
  const y0 = corner === 'top_left' ? 0 : H - h;
  const x0 = corner === 'top_left' ? 0 : W - w;
  for (let p = 0; p < planes; p++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(p * h + y) * w + x] = data[(p * H + y0 + y) * W + x0 + x]!;
  return out;
}

function compareUint8(name: string, actual: Uint8Array, expected: Float32Array, rule: { maxAbsDiff: number; maxFraction: number }): Check {
  if (actual.length !== expected.length) return fail(name, `length ${actual.length}, expected ${expected.length}`);
  let differing = 0;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (d > 0) differing++;
    worst = Math.max(worst, d);
  }
  const fraction = differing / actual.length;
  return {
    name, maxAbsError: worst, allowed: rule.maxAbsDiff,
    pass: worst <= rule.maxAbsDiff && fraction <= rule.maxFraction,
    note: `${differing} of ${actual.length} pixels differ (allowed ${(rule.maxFraction * 100).toFixed(2)}%)`,
  };
}

interface PipelineRun { pixels: F32; predicted: F32; resized: Float32Array; min: number; max: number; uint8: Uint8Array }

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const weightsPath = caseFile(c, 'weights', 'weights.safetensors');
  const io = c.io();
  const inputs = new Set(caseNames(c, 'inputs'));
  const tols = tolerances(c);
  const items = Array.isArray(c.config.items) ? (c.config.items as Record<string, unknown>[]) : [];
  const estimators = new Map<string, Promise<DepthEstimator>>();
  const estimator = (variant: PositionInterpolation | undefined): Promise<DepthEstimator> => {
    const key = variant ?? 'config';
    let e = estimators.get(key);
    if (!e) {
      e = DepthEstimator.fromFiles(c.config, weightsPath, { cacheDir: goldenCacheDir(), session: { intraOpThreads: 1 }, ...(variant ? { positionInterpolation: variant } : {}) });
      estimators.set(key, e);
    }
    return e;
  };
  const runs = new Map<string, Promise<PipelineRun>>();
  const pipeline = (item: string, variant: PositionInterpolation | undefined): Promise<PipelineRun> => {
    const key = `${variant ?? 'config'}:${item}`;
    let r = runs.get(key);
    if (!r) {
      r = (async () => {
        const name = `${item}.input_rgb_uint8`;
        const [h, w] = io.info(name).shape as [number, number];
        const rgb = Uint8Array.from(io.readFloat32(name));
        const spec = items.find((it) => it?.name === item) ?? {};
        const prep = (c.config.space_preprocessing ?? {}) as Record<string, unknown>;
        const lowerBound = Number(spec.lower_bound ?? prep.lower_bound ?? 518);
        const multiple = Number(prep.ensure_multiple_of ?? 14);
        const px = depthPixelValues(rgb, w, h, { lowerBound, multiple });
        const pixels = f32([1, 3, px.height, px.width], px.data);
        const predicted = await (await estimator(variant)).predict(pixels);
        const post = depthToUint8(predicted.data, px.height, px.width, h, w);
        return { pixels, predicted, resized: post.resized, min: post.min, max: post.max, uint8: post.uint8 };
      })();
      runs.set(key, r);
    }
    return r;
  };

  const checks: Check[] = [];
  try {
    for (const out of caseNames(c, 'outputs')) {
      const parts = out.split('.');
      const v = /^t(\d)(\d+)$/.exec(parts[0]!);
      const variant = v ? interpolationForVersion(`${v[1]}.${v[2]}`) : undefined;
      if (v) parts.shift();
      const quantity = parts.pop()!;
      const item = parts.join('.');
      const expected = io.readFloat32(out);
      const shape = io.info(out).shape;
      if (inputs.has(`${item}.pixel_values`) && quantity === 'predicted_depth') {
        const got = await (await estimator(variant)).predict(ioF32(c, `${item}.pixel_values`));
        checks.push(compareClose(out, got.data, expected, tols.float(quantity)));
        continue;
      }
      if (!inputs.has(`${item}.input_rgb_uint8`)) {
        checks.push(fail(out, `no input ${item}.pixel_values or ${item}.input_rgb_uint8 to compute it from`));
        continue;
      }
      const r = await pipeline(item, variant);
      const [, , H, W] = r.pixels.dims as [number, number, number, number];
      const cropped = /^(pixel_values|predicted_depth)_crop_(top_left|bottom_right)$/.exec(quantity);
      if (cropped) {
        const isPx = cropped[1] === 'pixel_values';
        const [h, w] = shape.slice(-2) as [number, number];
        const got = crop(isPx ? r.pixels.data : r.predicted.data, isPx ? 3 : 1, H, W, h, w, cropped[2] as 'top_left' | 'bottom_right');
        checks.push(compareClose(out, got, expected, tols.float(quantity)));
      } else if (quantity === 'pixel_values') {
        checks.push(compareClose(out, r.pixels.data, expected, tols.float(quantity)));
      } else if (quantity === 'predicted_depth') {
        checks.push(compareClose(out, r.predicted.data, expected, tols.float(quantity)));
      } else if (quantity === 'depth_resized') {
        checks.push(compareClose(out, r.resized, expected, tols.float(quantity)));
      } else if (quantity === 'depth_min_max') {
        checks.push(compareClose(out, [r.min, r.max], expected, tols.float(quantity)));
      } else if (quantity === 'depth_uint8') {
        checks.push(compareUint8(out, r.uint8, expected, tols.u8));
      } else {
        checks.push(fail(out, `unknown depth quantity ${quantity}`));
      }
    }
  } finally {
    for (const e of estimators.values()) await (await e.catch(() => undefined))?.dispose();
  }
  return checks;
}
