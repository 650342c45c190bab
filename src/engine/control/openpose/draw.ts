// controlnet_aux open_pose/util.py draw_bodypose on draw_poses' black canvas: per person, the 17 drawn
// limbs as filled ellipses (cv2.ellipse2Poly + fillConvexPoly, 60 % of the limb's colour, half-axes
// (length / 2, 4)), then the 18 joints as radius-4 disks in full colour. Later drawings overwrite
// earlier ones; colours are in the canvas' channel order, which is RGB.
//
// Keypoints go through the reference's float64 round trip: normalised (x / W, y / H) by detect_poses,
// scaled back (· W, · H) here, then truncated by int(); (x / W)·W is not always x (W = 448 sends
// x = 61 to 60.99999999999999), so the round trip is done, not skipped.
import { ellipse2Poly, fillCircle, fillConvexPoly, type Point } from '../cv-draw.js';
import { BODY_PARTS, LIMB_SEQ, type Candidate, type PersonRow } from './body.js';

/** The 18 part colours (RGB), in part order; limb k uses colour k. */
export const POSE_COLORS: readonly (readonly [number, number, number])[] = [
  [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
  [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
  [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
];
const DRAWN_LIMBS = 17;
const STICK_WIDTH = 4;
const JOINT_RADIUS = 4;

export interface PoseDrawing {
  /** H × W × 3 RGB uint8. */
  data: Uint8Array;
  width: number;
  height: number;
  /** The ellipse2Poly polygon of every limb drawn, in drawing order. */
  polygons: Point[][];
}

/** A person's keypoints as detect_poses hands them to the drawing: normalised, or null where missing. */
function keypointsOf(person: PersonRow, candidate: readonly Candidate[], width: number, height: number): ({ x: number; y: number } | null)[] {
  const out: ({ x: number; y: number } | null)[] = [];
  for (let p = 0; p < BODY_PARTS; p++) {
    const idx = Math.trunc(person[p]!);
    const c = idx === -1 ? undefined : candidate[idx];
    out.push(c ? { x: c[0] / width, y: c[1] / height } : null);
  }
  return out;
}

/** draw_poses(poses, H, W, draw_body=True, draw_hand=False, draw_face=False). */
export function drawBodyPose(width: number, height: number, candidate: readonly Candidate[], subset: readonly PersonRow[]): PoseDrawing {
  const canvas = { data: new Uint8Array(width * height * 3), width, height, channels: 3 };
  const polygons: Point[][] = [];
  for (const person of subset) {
    const kps = keypointsOf(person, candidate, width, height);
    for (let k = 0; k < DRAWN_LIMBS; k++) {
      const [a, b] = LIMB_SEQ[k]!;
      const k1 = kps[a - 1];
      const k2 = kps[b - 1];
      if (!k1 || !k2) continue;
      const Y = [k1.x * width, k2.x * width];
      const X = [k1.y * height, k2.y * height];
      const mX = (X[0]! + X[1]!) / 2;
      const mY = (Y[0]! + Y[1]!) / 2;
      const length = Math.sqrt((X[0]! - X[1]!) ** 2 + (Y[0]! - Y[1]!) ** 2);
      const angle = Math.atan2(X[0]! - X[1]!, Y[0]! - Y[1]!) * (180 / Math.PI);
      const polygon = ellipse2Poly([Math.trunc(mY), Math.trunc(mX)], [Math.trunc(length / 2), STICK_WIDTH], Math.trunc(angle), 0, 360, 1);
      polygons.push(polygon);
      fillConvexPoly(canvas, polygon, POSE_COLORS[k]!.map((c) => Math.trunc(c * 0.6)));
    }
    kps.forEach((kp, j) => {
      if (!kp) return;
      fillCircle(canvas, [Math.trunc(kp.x * width), Math.trunc(kp.y * height)], JOINT_RADIUS, POSE_COLORS[j]!);
    });
  }
  return { data: canvas.data, width, height, polygons };
}
