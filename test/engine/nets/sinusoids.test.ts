// The timestep sinusoids are computed with Mul/Add/Floor only (sinCos), so every provider gives the same
// numbers; on the CPU they must be as close to the exact values as ORT's own Sin/Cos.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sinCosError } from '../webgpu/sinusoids-lib.js';

test('sinCos on the CPU: within 4e-7 of float64 sin/cos for SDXL arguments up to 4,096 rad; ORT Sin/Cos within 3e-7', async () => {
  const exact = await sinCosError('cpu', 'exact');
  const native = await sinCosError('cpu', 'native');
  assert.ok(exact.sin <= 4e-7 && exact.cos <= 4e-7, `sinCos error ${JSON.stringify(exact)}`);
  assert.ok(native.sin <= 3e-7 && native.cos <= 3e-7, `ORT Sin/Cos error ${JSON.stringify(native)}`);
});
