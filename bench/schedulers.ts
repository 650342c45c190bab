// step() time per scheduler on an SDXL 1024² latent (1x4x128x128), SDXL's scheduler config, 30 steps.
// Noise comes from a preallocated buffer so that only the scheduler's own work is timed (target < 1 ms).
// Run: node --import tsx bench/schedulers.ts
import { performance } from 'node:perf_hooks';
import { SCHEDULER_NAMES, createScheduler } from '../src/engine/schedulers/index.js';
import type { NoiseSource } from '../src/engine/schedulers/types.js';

const SHAPE = [1, 4, 128, 128] as const;
const STEPS = 30;
const ROUNDS = 5;
const SDXL = {
  _class_name: 'EulerDiscreteScheduler', beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000, prediction_type: 'epsilon', steps_offset: 1, timestep_spacing: 'leading',
  clip_sample: false, set_alpha_to_one: false, skip_prk_steps: true, interpolation_type: 'linear', use_karras_sigmas: false,
};

const length = SHAPE.reduce<number>((a, b) => a * b, 1);
const latent = Float32Array.from({ length }, (_, i) => Math.sin(i));
const eps = Float32Array.from({ length }, (_, i) => 0.3 * Math.cos(i));
const buffer = Float32Array.from({ length }, (_, i) => Math.sin(3 * i));
const noise: NoiseSource = { randn: () => buffer };

const rows: string[][] = [];
for (const name of SCHEDULER_NAMES) {
  const times: number[] = [];
  for (let round = 0; round <= ROUNDS; round++) {
    const scheduler = createScheduler(SDXL, name);
    scheduler.setTimesteps(STEPS);
    let x: Float32Array = latent.map((v) => v * scheduler.initNoiseSigma);
    for (const t of scheduler.timesteps) {
      const input = scheduler.scaleModelInput(x, t);
      void input;
      const start = performance.now();
      x = scheduler.step(eps, t, x, { generator: noise, shape: SHAPE });
      if (round > 0) times.push(performance.now() - start); // round 0 warms the JIT up
    }
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  rows.push([name, mean.toFixed(3), times[Math.floor(times.length / 2)]!.toFixed(3), times[times.length - 1]!.toFixed(3)]);
}

const header = ['scheduler', 'mean ms', 'median ms', 'max ms'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(`step() on [${SHAPE.join(', ')}], ${STEPS} steps x ${ROUNDS} rounds, node ${process.version}`);
console.log(line(header));
for (const r of rows) console.log(line(r));
