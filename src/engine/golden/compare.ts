// How an output is judged against its golden: max|actual - expected| <= atol + rtol * max|expected|.
import type { Tolerance } from './case.js';

export interface Check {
  /** Tensor (or quantity) name, as in io.safetensors. */
  name: string;
  maxAbsError: number;
  /** The largest error the tolerance allows for this tensor. */
  allowed: number;
  pass: boolean;
  note?: string;
}

export function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]!));
  return m;
}

/** Compares float outputs by the goldens' rule. A length mismatch or a NaN fails. */
export function compareClose(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): Check {
  const allowed = tol.atol + tol.rtol * maxAbs(expected);
  if (actual.length !== expected.length) {
    return { name, maxAbsError: Infinity, allowed, pass: false, note: `length ${actual.length}, expected ${expected.length}` };
  }
  let err = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d;
  }
  return { name, maxAbsError: err, allowed, pass: err <= allowed };
}

/** Exact comparison (token ids, integer timesteps, pixel maps); reports how many elements differ. */
export function compareExact(
  name: string,
  actual: ArrayLike<number | bigint>,
  expected: ArrayLike<number | bigint>,
): Check {
  if (actual.length !== expected.length) {
    return { name, maxAbsError: Infinity, allowed: 0, pass: false, note: `length ${actual.length}, expected ${expected.length}` };
  }
  let differing = 0;
  let err = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]!);
    const e = Number(expected[i]!);
    if (a !== e) {
      differing++;
      err = Math.max(err, Math.abs(a - e));
    }
  }
  return { name, maxAbsError: err, allowed: 0, pass: differing === 0, ...(differing ? { note: `${differing} elements differ` } : {}) };
}
