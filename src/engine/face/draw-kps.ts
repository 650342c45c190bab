// InstantID's draw_kps: the IdentityNet conditioning picture drawn from the five face keypoints
// (instantid.md §3). Four sticks from eyes and mouth corners to the nose, each a filled ellipse in the
// colour of its first point, dimmed to 60 %, then a full-colour dot on every keypoint. Everything is
// drawn with OpenCV's own rasterisation so the picture matches the reference pixel for pixel.
import { ellipse2Poly, fillCircle, fillConvexPoly, type Canvas } from '../control/cv-draw.js';

export type Rgb = readonly [r: number, g: number, b: number];

/** Colours per keypoint: red, green, blue, yellow, magenta (RGB). */
export const KPS_COLORS: readonly Rgb[] = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
  [255, 255, 0],
  [255, 0, 255],
];

/** [from, to] keypoint pairs, drawn in this order; each stick takes the colour of `from`. */
export const KPS_LIMBS: readonly (readonly [number, number])[] = [
  [0, 2],
  [1, 2],
  [3, 2],
  [4, 2],
];

export interface DrawKpsOptions {
  colors?: readonly Rgb[];
  /** Half-thickness of each stick (the ellipse's minor semi-axis). InstantID: 4. */
  stickWidth?: number;
  /** Radius of the keypoint dots. InstantID: 10. */
  radius?: number;
  /** Factor applied to the sticks before the dots are drawn (then truncated to uint8). InstantID: 0.6. */
  limbScale?: number;
  /**
   * Arithmetic of the stick geometry. insightface hands draw_kps float32 keypoints, so numpy computes
   * the mean, difference and length in float32 ('float32', the default); 'float64' is what a list of
   * Python floats gives. They differ only where a value lands within a rounding error of an integer.
   */
  precision?: 'float32' | 'float64';
}

/**
 * Draws the keypoint picture on a black width×height canvas; returns HWC RGB uint8.
 * Keypoints are in that canvas's pixels (x right, y down).
 */
export function drawKps(
  width: number,
  height: number,
  kps: ReadonlyArray<readonly [number, number]>,
  opts: DrawKpsOptions = {},
): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`drawKps: bad canvas size ${width}×${height}`);
  }
  const colors = opts.colors ?? KPS_COLORS;
  const stickWidth = opts.stickWidth ?? 4;
  const radius = opts.radius ?? 10;
  const limbScale = opts.limbScale ?? 0.6;
  const f = opts.precision === 'float64' ? (v: number) => v : Math.fround;
  if (kps.length > colors.length) throw new RangeError(`drawKps: ${kps.length} keypoints but ${colors.length} colours`);
  for (const [x, y] of kps) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) throw new RangeError(`drawKps: keypoint (${x}, ${y}) is not finite`);
  }
  const pts = kps.map(([x, y]) => [f(x), f(y)] as const);

  // Sticks go on a float canvas, as numpy's zeros() is float64; the dimming below truncates like astype(uint8).
  const sticks: Canvas = { width, height, channels: 3, data: new Float64Array(width * height * 3) };
  for (const [a, b] of KPS_LIMBS) {
    const pa = pts[a];
    const pb = pts[b];
    if (!pa || !pb) continue;
    const dx = f(pa[0] - pb[0]);
    const dy = f(pa[1] - pb[1]);
    const length = f(Math.sqrt(f(f(dx * dx) + f(dy * dy))));
    const angle = Math.atan2(dy, dx) * (180 / Math.PI); // math.degrees multiplies by the constant 180/pi
    const center = [Math.trunc(f(f(pa[0] + pb[0]) / 2)), Math.trunc(f(f(pa[1] + pb[1]) / 2))] as const;
    const polygon = ellipse2Poly(center, [Math.trunc(length / 2), stickWidth], Math.trunc(angle), 0, 360, 1);
    fillConvexPoly(sticks, polygon, colors[a]!);
  }
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.trunc(sticks.data[i]! * limbScale));

  const canvas: Canvas = { width, height, channels: 3, data: out };
  pts.forEach(([x, y], i) => fillCircle(canvas, [Math.trunc(x), Math.trunc(y)], radius, colors[i]!));
  return out;
}
