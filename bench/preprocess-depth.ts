// Depth preprocessing (the depth ControlNet 455's map) at 512² and 1024² photos, on Depth Anything
// small's real structure (Dinov2 ViT-S/14: hidden 384, 12 layers, 6 heads; neck [48, 96, 192, 384],
// fusion 64, head 32 — 24.8M parameters) with RANDOM weights (timing only), and canny beside it.
// Per size: the Space's preprocessing (cv2 cubic to the 518 lower bound, normalisation), the network
// (first run includes building + compiling the graph for that input size; then warm), the
// post-processing (bilinear back, min-max), and canny on the same photo.
// Run: node --import tsx bench/preprocess-depth.ts [--threads N] [--runs N]
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { cannyControlImage } from '../src/engine/control/canny.js';
import {
  DepthEstimator, depthPixelValues, depthToUint8, parseDepthAnythingConfig,
} from '../src/engine/control/depth/index.js';
import { depthAnythingWeightShapes } from '../src/engine/control/depth/shapes.js';
import { writeSafetensors, type TensorToWrite } from '../src/engine/formats/safetensors-write.js';
import { f32 } from '../src/engine/nets/net-session.js';
import { depthAnythingSmallConfig } from '../src/engine/smoke-instantid.js';

const SMALL = depthAnythingSmallConfig();

const { values } = parseArgs({ options: { threads: { type: 'string' }, runs: { type: 'string' } } });
const threads = Number(values.threads ?? Math.min(4, availableParallelism()));
const runs = Number(values.runs ?? 3);
const dir = mkdtempSync(join(tmpdir(), 'likeness-bench-depth-'));
const ms = (t0: number): number => performance.now() - t0;

try {
  const cfg = parseDepthAnythingConfig(SMALL);
  const shapes = depthAnythingWeightShapes(cfg);
  let seed = 1;
  const list: [string, TensorToWrite][] = [...shapes].map(([name, shape]) => [name, {
    dtype: 'F32', shape, data: () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const fan = shape.slice(1).reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; out[i] = ((seed / 2 ** 32) - 0.5) * (shape.length === 1 ? 0.1 : 2 / Math.sqrt(fan)); }
      return out;
    },
  }]);
  const params = [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  await writeSafetensors(join(dir, 'model.safetensors'), list);
  await writeFile(join(dir, 'config.json'), JSON.stringify(SMALL));
  const est = await DepthEstimator.open(dir, { cacheDir: join(dir, 'cache'), session: { intraOpThreads: threads } });
  console.log(`Depth Anything small structure, ${(params / 1e6).toFixed(1)}M parameters (random), float32, CPU EP, ${threads} threads, best of ${runs} warm runs\n`);
  console.log('| photo | net input | preprocess ms | network ms (first, with compile) | network ms (warm) | postprocess ms | whole map ms (warm) | canny ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const side of [512, 1024]) {
    const rgb = new Uint8Array(side * side * 3).map((_, i) => (i * 7919) % 256);
    let t0 = performance.now();
    const px = depthPixelValues(rgb, side, side);
    const pre = ms(t0);
    const input = f32([1, 3, px.height, px.width], px.data);
    t0 = performance.now();
    let depth = await est.predict(input);
    const first = ms(t0);
    let warm = Infinity;
    let whole = Infinity;
    for (let r = 0; r < runs; r++) {
      t0 = performance.now();
      depth = await est.predict(input);
      warm = Math.min(warm, ms(t0));
      t0 = performance.now();
      await est.estimate({ data: rgb, width: side, height: side });
      whole = Math.min(whole, ms(t0));
    }
    t0 = performance.now();
    depthToUint8(depth.data, px.height, px.width, side, side);
    const post = ms(t0);
    t0 = performance.now();
    cannyControlImage(rgb, side, side, 100, 200);
    const canny = ms(t0);
    console.log(`| ${side}² | ${px.width}×${px.height} | ${pre.toFixed(0)} | ${first.toFixed(0)} | ${warm.toFixed(0)} | ${post.toFixed(0)} | ${whole.toFixed(0)} | ${canny.toFixed(0)} |`);
  }
  await est.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
