// controlnet_aux's Body decode: peaks, limb scoring, person assembly (merge, overlap, deletion), the
// network input, and the public openpose-body-decode golden case end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BODY_PARTS, LIMB_SEQ, assemblePeople, bodyMapsOf, bodyScaleInput, connectLimbs, decodeBody, findPeaks, type BodyMaps, type Candidate, type Connection,
} from '../../../src/engine/control/openpose/body.js';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { golden } from '../../helpers/paths.js';

const MAP_IDX = [[31, 32], [39, 40], [33, 34], [35, 36], [41, 42], [43, 44], [19, 20], [21, 22], [23, 24], [25, 26], [27, 28],
  [29, 30], [47, 48], [49, 50], [53, 54], [51, 52], [55, 56], [37, 38], [45, 46]];

function emptyMaps(width: number, height: number): BodyMaps {
  return bodyMapsOf(width, height,
    Array.from({ length: 19 }, () => new Float64Array(width * height)),
    Array.from({ length: 38 }, () => new Float64Array(width * height)));
}

/** A blob of height `amp` (σ px) for part p at (x, y). */
function blob(maps: BodyMaps, part: number, x: number, y: number, amp = 0.9, sigma = 1.5): void {
  const m = maps.heatmap(part);
  for (let j = 0; j < maps.height; j++) {
    for (let i = 0; i < maps.width; i++) {
      const v = amp * Math.exp(-((i - x) ** 2 + (j - y) ** 2) / (2 * sigma ** 2));
      m[j * maps.width + i] = Math.max(m[j * maps.width + i]!, v);
    }
  }
}

/** The unit vector from a to b written into limb k's PAF channels on the pixels within 1.5 px of the segment. */
function field(maps: BodyMaps, k: number, a: readonly [number, number], b: readonly [number, number], magnitude = 1): void {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len = Math.hypot(dx, dy);
  const px = maps.paf(MAP_IDX[k]![0]! - 19);
  const py = maps.paf(MAP_IDX[k]![1]! - 19);
  for (let j = 0; j < maps.height; j++) {
    for (let i = 0; i < maps.width; i++) {
      const t = Math.max(0, Math.min(1, ((i - a[0]) * dx + (j - a[1]) * dy) / (len * len)));
      if (Math.hypot(i - (a[0] + t * dx), j - (a[1] + t * dy)) <= 1.5) {
        px[j * maps.width + i] = (magnitude * dx) / len;
        py[j * maps.width + i] = (magnitude * dy) / len;
      }
    }
  }
}

/** A standing figure's 18 parts (nose, neck, r/l shoulder, elbow, wrist, r/l hip, knee, ankle, eyes, ears) around x0. */
function figure(x0: number): [number, number][] {
  return [
    [x0, 10], [x0, 18], [x0 - 6, 18], [x0 - 8, 28], [x0 - 9, 38], [x0 + 6, 18], [x0 + 8, 28], [x0 + 9, 38],
    [x0 - 4, 40], [x0 - 4, 52], [x0 - 4, 62], [x0 + 4, 40], [x0 + 4, 52], [x0 + 4, 62],
    [x0 - 2, 8], [x0 + 2, 8], [x0 - 4, 9], [x0 + 4, 9],
  ];
}

function drawPerson(maps: BodyMaps, parts: ([number, number] | null)[], amp = 0.9, magnitude = 1, sigma = 1.5): void {
  parts.forEach((p, i) => p && blob(maps, i, p[0], p[1], amp, sigma));
  LIMB_SEQ.forEach(([a, b], k) => {
    const pa = parts[a - 1];
    const pb = parts[b - 1];
    if (pa && pb) field(maps, k, pa, pb, magnitude);
  });
}

test('one clear figure decodes to one person with all 18 parts at the blob centres', () => {
  const maps = emptyMaps(64, 72);
  const parts = figure(32);
  drawPerson(maps, parts);
  const { candidate, subset } = decodeBody(maps);
  assert.equal(subset.length, 1);
  const person = subset[0]!;
  assert.equal(person[19], 18);
  for (let p = 0; p < BODY_PARTS; p++) {
    const c = candidate[person[p]!]!;
    assert.deepEqual([c[0], c[1]], parts[p], `part ${p}`);
  }
});

test('two figures side by side are two people, in the order their first limb was found', () => {
  const maps = emptyMaps(128, 72);
  drawPerson(maps, figure(30));
  drawPerson(maps, figure(90));
  const { candidate, subset } = decodeBody(maps);
  assert.equal(subset.length, 2);
  const neckX = subset.map((row) => candidate[row[1]!]![0]);
  assert.deepEqual(neckX, [30, 90]);
  assert.ok(subset.every((row) => row[19] === 18));
});

test('a faint ghost is assembled and then deleted by the mean-score rule', () => {
  const maps = emptyMaps(128, 72);
  drawPerson(maps, figure(30));
  drawPerson(maps, figure(90), 0.17, 0.12, 6); // wide and faint: its smoothed peaks still pass 0.1
  const { candidate, subset } = decodeBody(maps);
  const ghost = new Set(candidate.filter((c) => c[0] >= 70).map((c) => c[3]));
  assert.ok(ghost.size >= 4, 'the ghost has peaks');
  const limbs = connectLimbs(maps, findPeaks(maps)).flatMap((l) => l ?? []);
  assert.ok(limbs.filter(([a, b]) => ghost.has(a) && ghost.has(b)).length >= 3, 'and its limbs connect');
  assert.equal(subset.length, 1);
  assert.equal(candidate[subset[0]![1]!]![0], 30);
});

test('peaks: smoothed map above 0.1 and not below a 4-neighbour, row-major, ids over all parts, unsmoothed score', () => {
  const maps = emptyMaps(40, 30);
  blob(maps, 0, 30, 5, 0.8);
  blob(maps, 0, 8, 20, 0.8);
  blob(maps, 2, 20, 15, 0.5);
  blob(maps, 3, 10, 10, 0.05); // too faint
  const peaks = findPeaks(maps);
  assert.deepEqual(peaks[0]!.map((c) => [c[0], c[1], c[3]]), [[30, 5, 0], [8, 20, 1]]);
  assert.deepEqual(peaks[2]!.map((c) => [c[0], c[1], c[3]]), [[20, 15, 2]]);
  assert.equal(peaks[3]!.length, 0);
  assert.ok(Math.abs(peaks[2]![0]![2] - 0.5) < 1e-12, 'score is the unsmoothed heatmap value');
});

test('a limb is connected only along its field\'s direction, each peak at most once', () => {
  const maps = emptyMaps(60, 40);
  blob(maps, 1, 10, 10); // neck
  blob(maps, 2, 10, 30); // r shoulder below it
  blob(maps, 2, 40, 10); // a second r shoulder to the right, no field towards it
  field(maps, 0, [10, 10], [10, 30]);
  const peaks = findPeaks(maps);
  const limbs = connectLimbs(maps, peaks);
  assert.equal(limbs[0]!.length, 1);
  const [idA, idB] = limbs[0]![0]!;
  assert.deepEqual([peaks[1]![0]![3], peaks[2]!.find((c) => c[1] === 30)![3]], [idA, idB]);

  const reversed = emptyMaps(60, 40);
  blob(reversed, 1, 10, 10);
  blob(reversed, 2, 10, 30);
  field(reversed, 0, [10, 30], [10, 10]);
  assert.deepEqual(connectLimbs(reversed, findPeaks(reversed))[0], []);
});

test('limbs whose ends have no peaks are skipped', () => {
  const maps = emptyMaps(30, 30);
  blob(maps, 1, 10, 10);
  assert.equal(connectLimbs(maps, findPeaks(maps))[0], undefined);
});

/** Candidates 0..n−1, each of score 1 (positions are irrelevant to assembly). */
const scored = (n: number): Candidate[] => Array.from({ length: n }, (_, i) => [i, 0, 1, i] as Candidate);
const limbsWith = (entries: Record<number, Connection[]>): (Connection[] | undefined)[] => LIMB_SEQ.map((_, k) => entries[k]);

test('two rows that share no part are merged by a limb joining them (numpy\'s +1 on the −1 entries)', () => {
  // limb 0 neck(1)–r_shoulder(2): ids 0–1; limb 13 nose(0)–r_eye(14): ids 2–3; limb 12 neck(1)–nose(0): 0–2 joins them.
  const rows = assemblePeople(scored(4), limbsWith({ 0: [[0, 1, 0.5, 0, 0]], 12: [[0, 2, 0.25, 0, 0]], 13: [[2, 3, 0.5, 0, 0]] }));
  assert.equal(rows.length, 1);
  const row = rows[0]!;
  assert.deepEqual([row[1], row[2], row[0], row[14]], [0, 1, 2, 3]);
  assert.equal(row.slice(0, 18).filter((v) => v >= 0).length, 4);
  assert.equal(row[19], 4);
  assert.equal(row[18], 2 + 0.5 + 2 + 0.5 + 0.25);
});

test('two overlapping rows: the limb\'s B end goes to the first row without checking it is new', () => {
  const conns = limbsWith({
    0: [[0, 1, 1, 0, 0]], // neck 0 – r_shoulder 1: row 1
    1: [[0, 2, 1, 0, 0]], // neck 0 – l_shoulder 2: joins row 1
    // r_shoulder 3 – r_elbow 4 starts row 2; then r_shoulder 1 – r_elbow 4 matches row 1 (by A) and
    // row 2 (by B). Both rows have an r_shoulder, so they overlap: no merge, row 1 takes r_elbow 4.
    2: [[3, 4, 1, 0, 0], [1, 4, 0.5, 1, 1]],
  });
  const rows = assemblePeople(scored(5), conns);
  assert.equal(rows.length, 1, 'row 2 (2 parts) is deleted');
  const row = rows[0]!;
  assert.deepEqual([row[1], row[2], row[5], row[3]], [0, 1, 2, 4]);
  assert.equal(row[19], 4);
  assert.equal(row[18], 3 + 2 + 1.5);
});

test('the shoulder–ear limbs never start a person', () => {
  const rows = assemblePeople(scored(2), limbsWith({ 17: [[0, 1, 5, 0, 0]], 18: [[0, 1, 5, 0, 0]] }));
  assert.equal(rows.length, 0);
});

test('rows with under 4 parts, or a mean score under 0.4, are deleted', () => {
  const three = assemblePeople(scored(3), limbsWith({ 0: [[0, 1, 1, 0, 0]], 2: [[1, 2, 1, 0, 0]] }));
  assert.equal(three.length, 0, '3 parts');
  const weak: Candidate[] = Array.from({ length: 4 }, (_, i) => [i, 0, 0.1, i] as Candidate);
  const faint = assemblePeople(weak, limbsWith({ 0: [[0, 1, 0.1, 0, 0]], 2: [[1, 2, 0.1, 0, 0]], 3: [[2, 3, 0.1, 0, 0]] }));
  assert.equal(faint.length, 0, 'mean score 0.175');
  const strong = assemblePeople(scored(4), limbsWith({ 0: [[0, 1, 1, 0, 0]], 2: [[1, 2, 1, 0, 0]], 3: [[2, 3, 1, 0, 0]] }));
  assert.equal(strong.length, 1);
});

test('the network input is the scaled BGR image padded with 128 to multiples of 8, as pixel / 256 − 0.5', () => {
  const width = 52;
  const height = 100;
  const data = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 7) % 256);
  const s = bodyScaleInput({ data, width, height, channels: 3 }, 0.5);
  // m = 184 / 100: int(52 · 1.84) × int(100 · 1.84) = 95 × 184, padded to 96 × 184.
  assert.deepEqual([s.width, s.height], [95, 184]);
  assert.deepEqual(s.input.dims, [1, 3, 184, 96]);
  const plane = 184 * 96;
  for (let c = 0; c < 3; c++) {
    assert.equal(s.input.data[c * plane + 95], 0, 'padding 128 → 0');
    assert.equal(s.input.data[c * plane + 10 * 96 + 7], s.padded.data[(10 * 96 + 7) * 3 + c]! / 256 - 0.5);
  }
});

test('the public openpose-body-decode case passes', async () => {
  const r = await evaluateCase(golden('openpose-body-decode'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
});
