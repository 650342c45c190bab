// Control-map preprocessing time on the CPU (issue 14): OpenposeDetector.detect as the tool calls it
// (controlnet_aux's defaults: detect and image resolution 512), on a photo resized to 512² and 1024²,
// for body nets of three widths with random weights (the numbers do not depend on the weights'
// values): the smoke set's, a mid-size one, and the released body_pose_model.pth's (52.3M params).
//   total    detect(): HWC3 + resize_image, the network, maps back, decode, drawing, final resize
//   net      the body network alone (one scale, 0.5 · 368 px box)
//   decode   the output channels the decoder reads ×8 (LANCZOS4), cropped and resized to the detect
//            size, then gaussian peaks, limb scoring, person assembly; draw: the pose map
// Medians of --rounds runs after one warm-up. No controlnet_aux figure: this machine has no torch.
// Run: node --import tsx bench/preprocess.ts [--threads N] [--rounds N] [--widths smoke,mid,released]
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { cvResize } from '../src/engine/control/cv-resize.js';
import { RELEASED_BODY_WIDTHS, bodyConvShapes, loadBodyNet, type BodyWidths } from '../src/engine/control/openpose/body-net.js';
import { averageMaps, bodyScaleInput, decodeBody } from '../src/engine/control/openpose/body.js';
import { drawBodyPose } from '../src/engine/control/openpose/draw.js';
import { OpenposeDetector, hwc3, resizeImage, swapRB } from '../src/engine/control/openpose/index.js';
import { SMOKE_BODY_WIDTHS, writeSmokeBodyPoseModel } from '../src/engine/control/openpose/smoke.js';
import { decodeImageRGB } from '../src/net/image.js';

const { values } = parseArgs({ options: { threads: { type: 'string' }, rounds: { type: 'string' }, widths: { type: 'string' } } });
const threads = Number(values.threads ?? 2);
const MID_WIDTHS: BodyWidths = { c1: 16, c2: 32, c3: 64, c4: 128, c43: 64, F: 32, s1: 32, t: 128, m: 32 };
const rounds = Number(values.rounds ?? 3);
const params = (w: BodyWidths): string => {
  let n = 0;
  for (const { out, in: inp, kernel } of bodyConvShapes(w).values()) n += out * (inp * kernel * kernel + 1);
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : `${(n / 1e3).toFixed(1)}K`;
};
const WIDTHS: Record<string, { widths: BodyWidths; describe: string }> = {
  smoke: { widths: SMOKE_BODY_WIDTHS, describe: `smoke (${params(SMOKE_BODY_WIDTHS)} params)` },
  mid: { widths: MID_WIDTHS, describe: `mid, ¼ widths (${params(MID_WIDTHS)})` },
  released: { widths: RELEASED_BODY_WIDTHS, describe: `released widths (${params(RELEASED_BODY_WIDTHS)})` },
};
const chosen = (values.widths ?? 'smoke,mid,released').split(',');
const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time<T>(fn: () => Promise<T> | T): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
}

const photo = await decodeImageRGB(await readFile(join(root, '..', 'shared', 'assets', 'faces', 'fullbody_y_pose.jpg')), { label: 'fullbody_y_pose.jpg' });
const dir = mkdtempSync(join(tmpdir(), 'likeness-bench-preprocess-'));
const rows: string[][] = [];
try {
  for (const name of chosen) {
    const spec = WIDTHS[name];
    if (!spec) throw new Error(`--widths: unknown ${name} (smoke, mid, released)`);
    const weights = await writeSmokeBodyPoseModel(join(dir, `${name}.pth`), { widths: spec.widths });
    const options = { cacheDir: join(dir, 'onnx'), session: { intraOpThreads: threads } };
    const detector = await OpenposeDetector.open(weights, options);
    const net = await loadBodyNet(weights, options);
    try {
      for (const size of [512, 1024]) {
        const image = { ...cvResize({ ...photo, channels: 3 }, size, size, 'area'), channels: 3 };
        const t = { total: [] as number[], net: [] as number[], decode: [] as number[], draw: [] as number[] };
        for (let round = 0; round <= rounds; round++) {
          const [, total] = await time(() => detector.detect(image));
          const detect = resizeImage(hwc3(image), 512);
          const scaled = bodyScaleInput(swapRB(detect), 0.5);
          const [out, netMs] = await time(() => net.run(scaled.input));
          const [pose, decodeMs] = await time(() => decodeBody(averageMaps(detect.width, detect.height, [{ scaled, out }])));
          const [, drawMs] = await time(() => drawBodyPose(detect.width, detect.height, pose.candidate, pose.subset));
          if (round === 0) continue;
          t.total.push(total); t.net.push(netMs); t.decode.push(decodeMs); t.draw.push(drawMs);
        }
        rows.push([spec.describe, `${size}²`, ...[t.total, t.net, t.decode, t.draw].map((x) => median(x).toFixed(0))]);
        console.error(`done: ${name} ${size}`);
      }
    } finally {
      await detector.dispose();
      await net.dispose();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(`OpenPose body preprocessing, ms (median of ${rounds}), detect/image resolution 512, ${threads} ORT threads, ${cpus()[0]?.model ?? 'CPU'} × ${cpus().length}`);
const header = ['body net', 'image', 'total', 'net', 'decode', 'draw'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => `| ${r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const r of rows) console.log(line(r));
