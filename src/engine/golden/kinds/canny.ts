// Golden kind `canny`: every output edge map (H,W uint8, 0/255) is recomputed from the input image of
// the same item — the tensor whose name shares the output's stem ('astronaut.rgb_uint8' for
// 'astronaut.edges_uint8') — with the case's thresholds, and judged by its count of differing pixels
// against tolerance.max_differing_pixels. Names, sizes and item count all come from the case.
import type { GoldenCase } from '../case.js';
import type { Check } from '../compare.js';
import { canny, type CannyLayout } from '../../control/canny.js';

interface Params {
  low: number;
  high: number;
  l2gradient: boolean;
  aperture: number;
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

/** Case-wide parameters, overridden by an item of config.items with the same name, if it has its own. */
function paramsFor(config: Record<string, unknown>, stem: string): Params {
  const items = Array.isArray(config.items) ? (config.items as Record<string, unknown>[]) : [];
  const item = items.find((it) => it && typeof it === 'object' && it.name === stem) ?? {};
  const pick = (key: string) => (item[key] !== undefined ? item[key] : config[key]);
  return {
    low: num(pick('threshold1'), 100),
    high: num(pick('threshold2'), 200),
    l2gradient: pick('L2gradient') === true,
    aperture: num(pick('apertureSize'), 3),
  };
}

function stemOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

function names(list: unknown): string[] {
  return Array.isArray(list) ? list.filter((n): n is string => typeof n === 'string') : [];
}

/** What the layout of an input says about its channels: colour inputs are RGB (converted to BGR for OpenCV). */
function layoutOf(shape: readonly number[]): CannyLayout | undefined {
  if (shape.length === 2) return 'gray';
  if (shape.length === 3 && shape[2] === 3) return 'rgb';
  if (shape.length === 3 && shape[2] === 1) return 'gray';
  return undefined;
}

export function evaluate(c: GoldenCase): Check[] {
  const io = c.io();
  const tol = (c.json.tolerance ?? {}) as Record<string, unknown>;
  const maxDiffering = num(tol.max_differing_pixels, 0);
  const inputs = names(c.json.inputs);
  const outputs = names(c.json.outputs);
  const checks: Check[] = [];
  const fail = (name: string, note: string): Check => ({ name, maxAbsError: Infinity, allowed: 0, pass: false, note });

  for (const out of outputs) {
    const stem = stemOf(out);
    const input = inputs.find((n) => n !== out && stemOf(n) === stem);
    if (!input) {
      checks.push(fail(out, `no input named ${stem}.* to compute it from`));
      continue;
    }
    const inInfo = io.info(input);
    const outInfo = io.info(out);
    if (inInfo.dtype !== 'U8' || outInfo.dtype !== 'U8') {
      checks.push(fail(out, `expected uint8 tensors, got ${input} ${inInfo.dtype} and ${out} ${outInfo.dtype}`));
      continue;
    }
    const layout = layoutOf(inInfo.shape);
    const [height, width] = inInfo.shape as [number, number];
    if (!layout || outInfo.shape.length !== 2 || outInfo.shape[0] !== height || outInfo.shape[1] !== width) {
      checks.push(fail(out, `shapes ${JSON.stringify(inInfo.shape)} -> ${JSON.stringify(outInfo.shape)} are not an image and its edge map`));
      continue;
    }
    const p = paramsFor(c.config, stem);
    if (p.aperture !== 3) {
      checks.push(fail(out, `apertureSize ${p.aperture} is not implemented (only 3)`));
      continue;
    }
    const actual = canny(io.read(input) as Uint8Array, width, height, p.low, p.high, { l2gradient: p.l2gradient, layout });
    const expected = io.read(out) as Uint8Array;
    let differing = 0;
    let maxAbsError = 0;
    for (let i = 0; i < expected.length; i++) {
      const d = Math.abs(actual[i]! - expected[i]!);
      if (d) {
        differing++;
        maxAbsError = Math.max(maxAbsError, d);
      }
    }
    checks.push({
      name: out,
      maxAbsError,
      allowed: maxDiffering > 0 ? 255 : 0,
      pass: differing <= maxDiffering,
      note: `${differing} differing pixels (${maxDiffering} allowed)`,
    });
  }
  return checks;
}
