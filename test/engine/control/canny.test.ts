// Canny as OpenCV computes it on a colour image (instantid.md §9): thin edges, hysteresis, the
// channel-max rule with its B,G,R tie order, the goldens, and the golden evaluator on unseen cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { canny, cannyControlImage } from '../../../src/engine/control/canny.js';
import { pilResize } from '../../../src/engine/control/resample.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import type { GoldenCase } from '../../../src/engine/golden/case.js';
import { evaluate } from '../../../src/engine/golden/kinds/canny.js';
import { evaluateCase } from '../../../src/engine/golden/run.js';
import { golden } from '../../helpers/paths.js';

/** A width×height RGB image whose grey value is f(x, y). */
function grey(width: number, height: number, f: (x: number, y: number) => number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out.fill(f(x, y), (y * width + x) * 3, (y * width + x) * 3 + 3);
  return out;
}

function picture(edges: Uint8Array, width: number): string[] {
  const rows: string[] = [];
  for (let i = 0; i < edges.length; i += width) rows.push([...edges.subarray(i, i + width)].map((v) => (v ? '#' : '.')).join(''));
  return rows;
}

test('a vertical step gives a one-pixel line on its dark side', () => {
  const edges = canny(grey(10, 6, (x) => (x < 5 ? 0 : 255)), 10, 6);
  assert.deepEqual(picture(edges, 10), Array(6).fill('....#.....'));
});

test('a horizontal step gives a one-pixel line', () => {
  const edges = canny(grey(5, 8, (_x, y) => (y < 3 ? 200 : 10)), 5, 8);
  assert.deepEqual(picture(edges, 5), ['.....', '.....', '#####', '.....', '.....', '.....', '.....', '.....']);
});

test('the output is 0 or 255 only, and a flat image has no edges', () => {
  assert.ok(canny(grey(7, 7, () => 77), 7, 7).every((v) => v === 0));
  assert.ok(canny(grey(9, 9, (x, y) => ((x * 37 + y * 91) % 256)), 9, 9).every((v) => v === 0 || v === 255));
});

test('a weak edge alone is dropped, but kept where it connects to a strong one', () => {
  assert.ok(canny(grey(10, 20, (x) => (x < 5 ? 0 : 40)), 10, 20).every((v) => v === 0));
  const edges = canny(grey(10, 20, (x, y) => (x < 5 ? 0 : y < 10 ? 40 : 255)), 10, 20);
  assert.deepEqual(picture(edges, 10), [
    ...Array(9).fill('....#.....'), '.....#####', '.....#....', ...Array(9).fill('....#.....'),
  ]);
});

test('thresholds given in either order mean the same', () => {
  const img = grey(12, 12, (x, y) => (x * x + y * y < 60 ? 180 : 20));
  assert.deepEqual(canny(img, 12, 12, 200, 100), canny(img, 12, 12, 100, 200));
});

test('l2gradient compares the Euclidean magnitude, which is smaller on diagonals', () => {
  const img = grey(10, 10, (x, y) => (x + y >= 10 ? 35 : 0));
  const diagonal = ['..........', '........##', '.......##.', '......##..', '.....##...', '....##....', '...##.....', '..##......', '.##.......', '.#........'];
  assert.deepEqual(picture(canny(img, 10, 10), 10), diagonal);
  assert.ok(canny(img, 10, 10, 100, 200, { l2gradient: true }).every((v) => v === 0));
});

function readCase(name: string, tensor: string): { data: Uint8Array; shape: number[] } {
  const io = SafetensorsFile.open(join(golden(name), 'io.safetensors'));
  try {
    return { data: io.read(tensor) as Uint8Array, shape: [...io.info(tensor).shape] };
  } finally {
    io.close();
  }
}

function differing(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

test('the canny golden passes with 0 differing pixels on every image', async () => {
  const r = await evaluateCase(golden('canny'));
  assert.equal(r.status, 'PASS', r.error);
  assert.equal(r.checks.length, 3);
  for (const k of r.checks) assert.match(k.note ?? '', /^0 differing pixels/);
});

test('the channel order matters: RGB read as if it were BGR misses pixels on the tie mosaic', () => {
  const src = readCase('canny', 'synthetic_shapes.rgb_uint8');
  const expected = readCase('canny', 'synthetic_shapes.edges_uint8').data;
  const [h, w] = src.shape as [number, number];
  assert.equal(differing(canny(src.data, w, h), expected), 0);
  assert.equal(differing(canny(src.data, w, h, 100, 200, { layout: 'bgr' }), expected), 12);
});

test('the multi-ControlNet golden canny map is reproduced exactly', () => {
  const photo = readCase('instantid-pipeline-multicontrolnet', 'canny_photo_rgb_uint8');
  const expected = readCase('instantid-pipeline-multicontrolnet', 'canny_image_uint8').data;
  const [h, w] = photo.shape as [number, number];
  assert.equal(differing(canny(photo.data, w, h), expected), 0);
});

test('the control image is the edge map replicated to RGB, resized with PIL bicubic when asked', () => {
  const img = grey(8, 6, (_x, y) => (y < 3 ? 200 : 10));
  const edges = canny(img, 8, 6);
  const rgb = cannyControlImage(img, 8, 6);
  assert.equal(rgb.length, 8 * 6 * 3);
  for (let i = 0; i < edges.length; i++) assert.deepEqual([...rgb.subarray(3 * i, 3 * i + 3)], [edges[i], edges[i], edges[i]]);
  const big = cannyControlImage(img, 8, 6, 100, 200, { outWidth: 12, outHeight: 9 });
  const resized = pilResize(edges, 8, 6, 1, 12, 9, 'bicubic');
  assert.deepEqual([...resized.subarray(24, 60)], [...Array(12).fill(34), ...Array(12).fill(239), ...Array(12).fill(143)]);
  for (let i = 0; i < resized.length; i++) assert.equal(big[3 * i + 2], resized[i]);
});

// ---- the evaluator on cases it has not seen: other names, sizes, thresholds, tolerances ----

type Tensor = { shape: number[]; data: Uint8Array };

function fakeCase(json: Record<string, unknown>, tensors: Record<string, Tensor>): GoldenCase {
  const io = {
    info: (name: string) => ({ name, dtype: 'U8', shape: tensors[name]!.shape, begin: 0, end: 0 }),
    read: (name: string) => tensors[name]!.data,
  } as unknown as SafetensorsFile;
  return {
    dir: '/nonexistent', name: 'fake', kind: 'canny', json, config: (json.config ?? {}) as Record<string, unknown>,
    tolerance: { atol: 0, rtol: 0 }, io: () => io, file: (p: string) => p, close: () => {},
  };
}

const disc = grey(21, 13, (x, y) => ((x - 10) ** 2 + (y - 6) ** 2 < 20 ? 230 : 15));

test('the evaluator pairs each output with the input of the same stem, whatever the names and sizes', () => {
  const checks = evaluate(fakeCase(
    { inputs: ['disc.pixels', 'step.pixels'], outputs: ['step.map', 'disc.map'], config: { threshold1: 100, threshold2: 200 } },
    {
      'disc.pixels': { shape: [13, 21, 3], data: disc },
      'disc.map': { shape: [13, 21], data: canny(disc, 21, 13) },
      'step.pixels': { shape: [4, 6, 3], data: grey(6, 4, (x) => (x < 3 ? 0 : 255)) },
      'step.map': { shape: [4, 6], data: canny(grey(6, 4, (x) => (x < 3 ? 0 : 255)), 6, 4) },
    },
  ));
  assert.deepEqual(checks.map((k) => [k.name, k.pass]), [['step.map', true], ['disc.map', true]]);
});

test('the evaluator counts differing pixels and passes only within max_differing_pixels', () => {
  const wrong = canny(disc, 21, 13);
  wrong[0] = 255;
  wrong[5] = 255;
  const tensors = { 'a.rgb_uint8': { shape: [13, 21, 3], data: disc }, 'a.edges_uint8': { shape: [13, 21], data: wrong } };
  const strict = evaluate(fakeCase({ inputs: ['a.rgb_uint8'], outputs: ['a.edges_uint8'], tolerance: { max_differing_pixels: 0 } }, tensors));
  assert.equal(strict[0]!.pass, false);
  assert.match(strict[0]!.note!, /^2 differing pixels/);
  assert.equal(strict[0]!.maxAbsError, 255);
  const lenient = evaluate(fakeCase({ inputs: ['a.rgb_uint8'], outputs: ['a.edges_uint8'], tolerance: { max_differing_pixels: 2 } }, tensors));
  assert.equal(lenient[0]!.pass, true);
});

test('the evaluator uses per-item thresholds and L2gradient from config.items', () => {
  const img = grey(10, 10, (x, y) => (x + y >= 10 ? 35 : 0));
  const tensors = { 'd.rgb_uint8': { shape: [10, 10, 3], data: img }, 'd.edges_uint8': { shape: [10, 10], data: new Uint8Array(100) } };
  const json = { inputs: ['d.rgb_uint8'], outputs: ['d.edges_uint8'], config: { threshold1: 100, threshold2: 200, items: [{ name: 'd', L2gradient: true }] } };
  assert.equal(evaluate(fakeCase(json, tensors))[0]!.pass, true);
  const l1 = { ...json, config: { threshold1: 100, threshold2: 200 } };
  assert.equal(evaluate(fakeCase(l1, tensors))[0]!.pass, false);
});

test('the evaluator fails, never skips, an output it cannot compute', () => {
  const checks = evaluate(fakeCase(
    { inputs: ['x.rgb_uint8'], outputs: ['y.edges_uint8', 'x.edges_uint8'], config: { apertureSize: 5 } },
    { 'x.rgb_uint8': { shape: [2, 2, 3], data: new Uint8Array(12) }, 'x.edges_uint8': { shape: [2, 2], data: new Uint8Array(4) } },
  ));
  assert.deepEqual(checks.map((k) => k.pass), [false, false]);
  assert.match(checks[0]!.note!, /no input/);
  assert.match(checks[1]!.note!, /apertureSize 5/);
});
