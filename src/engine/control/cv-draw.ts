// OpenCV's non-antialiased raster primitives (imgproc drawing.cpp, LINE_8, shift 0), reproduced so that
// pictures drawn with cv2 in the reference code (InstantID's draw_kps, later openpose's sticks) come out
// pixel for pixel the same: ellipse2Poly's 1-degree sine table and cvRound, fillConvexPoly's 16.16
// fixed-point edge walk plus its 8-connected outline, and the filled midpoint circle.
// Only integer vertices are supported (the `shift` argument of OpenCV is always 0 in our callers).

/** An interleaved image being drawn on: float canvases behave like numpy float64 arrays under cv2. */
export interface Canvas {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Uint8Array | Float32Array | Float64Array;
}

export type Point = readonly [x: number, y: number];

const XY_SHIFT = 16;
const XY_ONE = 1 << XY_SHIFT;

/**
 * sin of 0..90 degrees as OpenCV tabulates it: 7 decimals, stored as float32. The table's other 360
 * entries are these by symmetry; the exact float32 values matter because vertices are rounded.
 */
const SIN_QUADRANT = [
  0.0, 0.0174524, 0.0348995, 0.052336, 0.0697565, 0.0871557, 0.1045285, 0.1218693, 0.1391731, 0.1564345,
  0.1736482, 0.190809, 0.2079117, 0.2249511, 0.2419219, 0.258819, 0.2756374, 0.2923717, 0.309017, 0.3255682,
  0.3420201, 0.3583679, 0.3746066, 0.3907311, 0.4067366, 0.4226183, 0.4383711, 0.4539905, 0.4694716, 0.4848096,
  0.5, 0.5150381, 0.5299193, 0.544639, 0.5591929, 0.5735764, 0.5877853, 0.601815, 0.6156615, 0.6293204,
  0.6427876, 0.656059, 0.6691306, 0.6819984, 0.6946584, 0.7071068, 0.7193398, 0.7313537, 0.7431448, 0.7547096,
  0.7660444, 0.777146, 0.7880108, 0.7986355, 0.809017, 0.819152, 0.8290376, 0.8386706, 0.8480481, 0.8571673,
  0.8660254, 0.8746197, 0.8829476, 0.8910065, 0.898794, 0.9063078, 0.9135455, 0.9205049, 0.9271839, 0.9335804,
  0.9396926, 0.9455186, 0.9510565, 0.9563048, 0.9612617, 0.9659258, 0.9702957, 0.9743701, 0.9781476, 0.9816272,
  0.9848078, 0.9876883, 0.9902681, 0.9925462, 0.9945219, 0.9961947, 0.9975641, 0.9986295, 0.9993908, 0.9998477,
  1.0,
].map(Math.fround);

/** OpenCV's SinTable[deg] for deg in 0..450 (it reads cos as SinTable[450 - deg]). */
function sinTable(deg: number): number {
  const d = deg % 360;
  if (d <= 90) return SIN_QUADRANT[d]!;
  if (d <= 180) return SIN_QUADRANT[180 - d]!;
  if (d <= 270) return -SIN_QUADRANT[d - 180]!;
  return -SIN_QUADRANT[360 - d]!;
}

/** cvRound: nearest integer, ties to even (SSE2 cvtsd2si / lrint in the default rounding mode). */
export function cvRound(v: number): number {
  const f = Math.floor(v);
  const frac = v - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * cv2.ellipse2Poly with integer centre, axes and angle (degrees): one vertex every `delta` degrees of
 * the arc, rounded to pixels, consecutive duplicates dropped. A full ellipse repeats its first vertex.
 */
export function ellipse2Poly(
  center: Point,
  axes: readonly [number, number],
  angle: number,
  arcStart: number,
  arcEnd: number,
  delta: number,
): Point[] {
  if (!(delta > 0 && delta <= 180)) throw new RangeError(`ellipse2Poly delta ${delta} is outside (0, 180]`);
  let a = Math.trunc(angle);
  while (a < 0) a += 360;
  while (a > 360) a -= 360;
  let start = Math.trunc(arcStart);
  let end = Math.trunc(arcEnd);
  if (start > end) [start, end] = [end, start];
  while (start < 0) {
    start += 360;
    end += 360;
  }
  while (end > 360) {
    end -= 360;
    start -= 360;
  }
  if (end - start > 360) {
    start = 0;
    end = 360;
  }
  const beta = sinTable(a); // float sin
  const alpha = sinTable(450 - a); // float cos
  const out: Point[] = [];
  let prevX = NaN;
  let prevY = NaN;
  for (let i = start; i < end + delta; i += delta) {
    let t = i > end ? end : i;
    if (t < 0) t += 360;
    const x = axes[0] * sinTable(450 - t);
    const y = axes[1] * sinTable(t);
    const px = cvRound(center[0] + x * alpha - y * beta);
    const py = cvRound(center[1] + x * beta + y * alpha);
    if (px !== prevX || py !== prevY) {
      out.push([px, py]);
      prevX = px;
      prevY = py;
    }
  }
  // A single distinct vertex means a degenerate ellipse; OpenCV then returns the centre twice.
  if (out.length === 1) return [center, center];
  return out;
}

/** The colour as the canvas stores it: uint8 canvases saturate and round as cv::Scalar conversion does. */
function rawColor(canvas: Canvas, color: readonly number[]): number[] {
  const out: number[] = [];
  for (let k = 0; k < canvas.channels; k++) {
    const v = color[k] ?? 0;
    out.push(canvas.data instanceof Uint8Array ? Math.min(255, Math.max(0, cvRound(v))) : v);
  }
  return out;
}

function putPixel(canvas: Canvas, x: number, y: number, color: readonly number[]): void {
  const o = (y * canvas.width + x) * canvas.channels;
  for (let k = 0; k < canvas.channels; k++) canvas.data[o + k] = color[k]!;
}

/** Fills x1..x2 (inclusive, already inside the image) of row y. */
function hline(canvas: Canvas, y: number, x1: number, x2: number, color: readonly number[]): void {
  for (let x = x1; x <= x2; x++) putPixel(canvas, x, y, color);
}

/**
 * cv::clipLine on integer end points: Cohen-Sutherland against [0, w-1] x [0, h-1], intersections
 * computed in double and truncated, each end updated in turn (the second uses the first's new value).
 */
function clipLine(width: number, height: number, p1: [number, number], p2: [number, number]): boolean {
  const right = width - 1;
  const bottom = height - 1;
  if (width <= 0 || height <= 0) return false;
  let [x1, y1] = p1;
  let [x2, y2] = p2;
  let c1 = +(x1 < 0) + +(x1 > right) * 2 + +(y1 < 0) * 4 + +(y1 > bottom) * 8;
  let c2 = +(x2 < 0) + +(x2 > right) * 2 + +(y2 < 0) * 4 + +(y2 > bottom) * 8;
  if ((c1 & c2) === 0 && (c1 | c2) !== 0) {
    if (c1 & 12) {
      const a = c1 < 8 ? 0 : bottom;
      x1 += Math.trunc(((a - y1) * (x2 - x1)) / (y2 - y1));
      y1 = a;
      c1 = +(x1 < 0) + +(x1 > right) * 2;
    }
    if (c2 & 12) {
      const a = c2 < 8 ? 0 : bottom;
      x2 += Math.trunc(((a - y2) * (x2 - x1)) / (y2 - y1));
      y2 = a;
      c2 = +(x2 < 0) + +(x2 > right) * 2;
    }
    if ((c1 & c2) === 0 && (c1 | c2) !== 0) {
      if (c1) {
        const a = c1 === 1 ? 0 : right;
        y1 += Math.trunc(((a - x1) * (y2 - y1)) / (x2 - x1));
        x1 = a;
        c1 = 0;
      }
      if (c2) {
        const a = c2 === 1 ? 0 : right;
        y2 += Math.trunc(((a - x2) * (y2 - y1)) / (x2 - x1));
        x2 = a;
        c2 = 0;
      }
    }
  }
  p1[0] = x1;
  p1[1] = y1;
  p2[0] = x2;
  p2[1] = y2;
  return (c1 | c2) === 0;
}

/** cv::Line with 8-connectivity: LineIterator's Bresenham walk, always drawn left to right. */
export function line8(canvas: Canvas, from: Point, to: Point, color: readonly number[]): void {
  drawLine8(canvas, from, to, rawColor(canvas, color));
}

function drawLine8(canvas: Canvas, from: Point, to: Point, color: readonly number[]): void {
  const p1: [number, number] = [from[0], from[1]];
  const p2: [number, number] = [to[0], to[1]];
  const outside = (p: [number, number]) => p[0] < 0 || p[0] >= canvas.width || p[1] < 0 || p[1] >= canvas.height;
  if ((outside(p1) || outside(p2)) && !clipLine(canvas.width, canvas.height, p1, p2)) return;
  let dx = p2[0] - p1[0];
  let dy = p2[1] - p1[1];
  let [x, y] = p1;
  if (dx < 0) {
    dx = -dx;
    dy = -dy;
    [x, y] = p2;
  }
  const stepY = dy < 0 ? -1 : 1;
  dy = Math.abs(dy);
  const steep = dy > dx;
  const major = steep ? dy : dx;
  const minor = steep ? dx : dy;
  // The major axis advances every pixel; the minor one whenever the error went negative before the step.
  let err = major - 2 * minor;
  for (let i = 0; i <= major; i++) {
    putPixel(canvas, x, y, color);
    const minorStep = err < 0;
    err += -2 * minor + (minorStep ? 2 * major : 0);
    if (steep) {
      y += stepY;
      if (minorStep) x += 1;
    } else {
      x += 1;
      if (minorStep) y += stepY;
    }
  }
}

/**
 * cv2.fillConvexPoly (LINE_8, shift 0): the closed 8-connected outline, then each row between the two
 * edges walked from the top vertex, x in 16.16 fixed point rounded to the nearest pixel on both sides.
 */
export function fillConvexPoly(canvas: Canvas, pts: readonly Point[], color: readonly number[]): void {
  const n = pts.length;
  if (n === 0) return;
  const raw = rawColor(canvas, color);
  let imin = 0;
  let xmin = pts[0]![0];
  let xmax = xmin;
  let ymin = pts[0]![1];
  let ymax = ymin;
  let prev = pts[n - 1]!;
  for (let i = 0; i < n; i++) {
    const p = pts[i]!;
    if (p[1] < ymin) {
      ymin = p[1];
      imin = i;
    }
    ymax = Math.max(ymax, p[1]);
    xmax = Math.max(xmax, p[0]);
    xmin = Math.min(xmin, p[0]);
    drawLine8(canvas, prev, p, raw);
    prev = p;
  }
  if (n < 3 || xmax < 0 || ymax < 0 || xmin >= canvas.width || ymin >= canvas.height) return;
  ymax = Math.min(ymax, canvas.height - 1);

  const half = XY_ONE >> 1;
  const edges = [
    { idx: imin, di: 1, x: -XY_ONE, dx: 0, ye: ymin },
    { idx: imin, di: n - 1, x: -XY_ONE, dx: 0, ye: ymin },
  ];
  let remaining = n; // vertices left to hand to either edge; OpenCV stops once both have used them up
  let y = ymin;
  do {
    for (const e of edges) {
      if (y < e.ye) continue;
      let idx0 = e.idx;
      let idx = idx0 + e.di;
      if (idx >= n) idx -= n;
      while (remaining-- > 0) {
        const ty = pts[idx]![1];
        if (ty > y) {
          const xs = pts[idx0]![0] * XY_ONE;
          const xe = pts[idx]![0] * XY_ONE;
          e.ye = ty;
          e.dx = Math.trunc(((xe - xs) * 2 + (ty - y)) / (2 * (ty - y)));
          e.x = xs;
          e.idx = idx;
          break;
        }
        idx0 = idx;
        idx += e.di;
        if (idx >= n) idx -= n;
      }
    }
    if (remaining < 0) break;
    if (y >= 0) {
      const [left, right] = edges[0]!.x > edges[1]!.x ? [edges[1]!, edges[0]!] : [edges[0]!, edges[1]!];
      let x1 = Math.floor((left.x + half) / XY_ONE);
      let x2 = Math.floor((right.x + half) / XY_ONE);
      if (x2 >= 0 && x1 < canvas.width) {
        if (x1 < 0) x1 = 0;
        if (x2 >= canvas.width) x2 = canvas.width - 1;
        hline(canvas, y, x1, x2, raw);
      }
    }
    edges[0]!.x += edges[0]!.dx;
    edges[1]!.x += edges[1]!.dx;
  } while (++y <= ymax);
}

/**
 * cv2.circle(..., thickness=-1) with the default LINE_8: OpenCV's integer midpoint circle, each step
 * filling the four horizontal spans it reaches, clipped to the image.
 */
export function fillCircle(canvas: Canvas, center: Point, radius: number, color: readonly number[]): void {
  if (radius < 0) throw new RangeError(`circle radius ${radius} is negative`);
  const raw = rawColor(canvas, color);
  const [cx, cy] = center;
  const span = (y: number, xa: number, xb: number) => {
    if (y < 0 || y >= canvas.height) return;
    const x1 = Math.max(xa, 0);
    const x2 = Math.min(xb, canvas.width - 1);
    if (x1 <= x2) hline(canvas, y, x1, x2, raw);
  };
  let err = 0;
  let dx = radius;
  let dy = 0;
  let plus = 1;
  let minus = (radius << 1) - 1;
  while (dx >= dy) {
    span(cy - dy, cx - dx, cx + dx);
    span(cy + dy, cx - dx, cx + dx);
    span(cy - dx, cx - dy, cx + dy);
    span(cy + dx, cx - dy, cx + dy);
    dy++;
    err += plus;
    plus += 2;
    if (err > 0) {
      err -= minus;
      dx--;
      minus -= 2;
    }
  }
}
