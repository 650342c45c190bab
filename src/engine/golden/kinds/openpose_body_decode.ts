// Golden kind `openpose_body_decode`: OpenposeDetector.__call__ with the body network replaced by a
// stand-in whose outputs the case stores (NAME.call0.paf / .heatmap). Per item of config.items: the
// input image goes through HWC3 and resize_image(detect_resolution) (→ NAME.detect_rgb_uint8 when
// stored), Body's scaled, padded BGR input is built (→ NAME.net_input_bgr_uint8; its size must give
// the stored outputs' size), the stored outputs are decoded (→ candidate, subset), drawn (→ the
// ellipse polygons and the detect-size canvas) and resized to resize_image(detect image,
// image_resolution) (→ pose_map). Tolerances come from the case's tolerance object.
import type { GoldenCase } from '../case.js';
import { compareExact, type Check } from '../compare.js';
import { caseNames } from '../net-io.js';
import { resizeBilinearCv } from '../../face/resize.js';
import { averageMaps, bodyScaleInput, bodyScales, decodeBody } from '../../control/openpose/body.js';
import { drawBodyPose } from '../../control/openpose/draw.js';
import { DEFAULT_DETECT_RESOLUTION, DEFAULT_IMAGE_RESOLUTION, hwc3, resizeImage, resizeImagePlan, swapRB } from '../../control/openpose/index.js';
import type { F32 } from '../../nets/net-session.js';

type Json = Record<string, unknown>;

const num = (v: unknown, fallback: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);
const obj = (v: unknown): Json => (v && typeof v === 'object' ? (v as Json) : {});

const fail = (name: string, note: string): Check => ({ name, maxAbsError: Infinity, allowed: 0, pass: false, note });

/** uint8 images: pass if at most `maxDiffering` pixels differ by more than `level`. */
function compareImage(name: string, actual: Uint8Array, expected: Uint8Array, level: number, maxDiffering = 0): Check {
  if (actual.length !== expected.length) return fail(name, `length ${actual.length}, expected ${expected.length}`);
  let err = 0;
  let over = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    err = Math.max(err, d);
    if (d > level) over++;
  }
  return { name, maxAbsError: err, allowed: level, pass: over <= maxDiffering, ...(over ? { note: `${over} values off by more than ${level}` } : {}) };
}

/** Columns `exact` compared exactly, the others within atol. */
function compareRows(name: string, actual: readonly (readonly number[])[], expected: Float32Array, cols: number, exactCols: readonly number[], atol: number): Check {
  const rows = expected.length / cols;
  if (actual.length !== rows) return fail(name, `${actual.length} rows, expected ${rows}`);
  let exactDiff = 0;
  let err = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const a = actual[r]![c]!;
      const e = expected[r * cols + c]!;
      if (exactCols.includes(c)) {
        if (a !== e) exactDiff++;
      } else {
        // Stored as float32: compare with the float32 of ours.
        err = Math.max(err, Math.abs(Math.fround(a) - e));
      }
    }
  }
  return {
    name, maxAbsError: exactDiff ? Infinity : err, allowed: atol, pass: exactDiff === 0 && err <= atol,
    ...(exactDiff ? { note: `${exactDiff} integer entries differ` } : {}),
  };
}

function f32(c: GoldenCase, name: string): F32 {
  const io = c.io();
  return { dtype: 'float32', dims: [...io.info(name).shape], data: io.readFloat32(name) };
}

export function evaluate(c: GoldenCase): Check[] {
  const io = c.io();
  const tol = obj(c.json.tolerance);
  const scoreAtol = num(obj(tol.candidate).score_atol, 1e-4);
  const totalAtol = num(obj(tol.subset).column_18_total_score_atol, 1e-3);
  const outputs = new Set(caseNames(c, 'outputs'));
  const items = Array.isArray(c.config.items) ? (c.config.items as Json[]) : [];
  const checks: Check[] = [];
  for (const item of items) {
    const name = String(item.name);
    const has = (suffix: string) => outputs.has(`${name}.${suffix}`);
    const inputName = `${name}.input_rgb_uint8`;
    // __call__'s defaults where an item does not say.
    const detectRes = num(item.detect_resolution, DEFAULT_DETECT_RESOLUTION);
    const imageRes = num(item.image_resolution, DEFAULT_IMAGE_RESOLUTION);
    const shape = io.info(inputName).shape;
    const input = { data: io.read(inputName) as Uint8Array, width: shape[1]!, height: shape[0]!, channels: shape[2] ?? 1 };
    const detect = resizeImage(hwc3(input), detectRes);
    if (has('detect_rgb_uint8')) checks.push(compareImage(`${name}.detect_rgb_uint8`, detect.data, io.read(`${name}.detect_rgb_uint8`) as Uint8Array, 1));

    const [scale, ...more] = bodyScales();
    if (more.length) throw new Error('openpose_body_decode stores one network call per item; Body runs several scales');
    const scaled = bodyScaleInput(swapRB(detect), scale!);
    if (has('net_input_bgr_uint8')) checks.push(compareImage(`${name}.net_input_bgr_uint8`, scaled.padded.data, io.read(`${name}.net_input_bgr_uint8`) as Uint8Array, 1));
    const paf = f32(c, `${name}.call0.paf`);
    const heatmap = f32(c, `${name}.call0.heatmap`);
    // The stand-in's outputs are inputs to the decoder; what is checked is that our padded input size
    // is the one they were made for (input / 8).
    const netDims = [scaled.input.dims[2]! / 8, scaled.input.dims[3]! / 8];
    checks.push(compareExact(`${name}.call0.paf dims`, paf.dims.slice(2), netDims));
    checks.push(compareExact(`${name}.call0.heatmap dims`, heatmap.dims.slice(2), netDims));

    const maps = averageMaps(detect.width, detect.height, [{ scaled, out: { paf, heatmap } }]);
    const { candidate, subset } = decodeBody(maps);
    checks.push(compareRows(`${name}.candidate`, candidate, io.readFloat32(`${name}.candidate`), 4, [0, 1, 3], scoreAtol));
    const cols = Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 18);
    checks.push(compareRows(`${name}.subset`, subset, io.readFloat32(`${name}.subset`), 20, cols, totalAtol));

    const drawing = drawBodyPose(detect.width, detect.height, candidate, subset);
    if (has('limb_polygons')) {
      checks.push(compareExact(`${name}.limb_polygon_lengths`, drawing.polygons.map((p) => p.length), io.read(`${name}.limb_polygon_lengths`) as Int32Array));
      checks.push(compareExact(`${name}.limb_polygons`, drawing.polygons.flat(2), io.read(`${name}.limb_polygons`) as Int32Array));
    }
    const canvasCheck = compareImage(`${name}.canvas_uint8`, drawing.data, io.read(`${name}.canvas_uint8`) as Uint8Array, 0);
    checks.push(canvasCheck);
    const out = resizeImagePlan(detect.width, detect.height, imageRes);
    const poseMap = resizeBilinearCv(drawing, out.width, out.height);
    // One level is accepted only when the canvas is exact (a non-fixed-point bilinear would differ by 1).
    checks.push(compareImage(`${name}.pose_map_uint8`, poseMap.data, io.read(`${name}.pose_map_uint8`) as Uint8Array, canvasCheck.pass ? 1 : 0));
  }
  return checks;
}
