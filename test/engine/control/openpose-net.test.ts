// The OpenPose body network: built from weight shapes, read from a torch.save body_pose_model.pth as
// released (no conversion), checked against the openpose-body-net golden, and refusing files that are
// not a body model with a message naming what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bodyConvShapes, inferBodyNetConfig, loadBodyNet } from '../../../src/engine/control/openpose/body-net.js';
import { SMOKE_BODY_WIDTHS, smokeBodyPoseTensors, writeSmokeBodyPoseModel } from '../../../src/engine/control/openpose/smoke.js';
import { openWeights } from '../../../src/engine/formats/weights.js';
import { encodeTorchStateDict, type Float32Tensor } from '../../../src/engine/formats/torch-write.js';
import { SafetensorsFile } from '../../../src/engine/formats/safetensors.js';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import type { TensorSource } from '../../../src/engine/nets/sdxl-weights.js';
import { golden } from '../../helpers/paths.js';

const caseDir = golden('openpose-body-net');
const scratch = () => mkdtempSync(join(tmpdir(), 'likeness-openpose-'));
const cacheDir = join(tmpdir(), 'likeness-openpose-test-onnx');

function goldenTensors(): [string, Float32Tensor][] {
  const f = SafetensorsFile.open(join(caseDir, 'weights.safetensors'));
  try {
    return f.names().map((n) => [n, { shape: f.info(n).shape, data: f.readFloat32(n) }]);
  } finally {
    f.close();
  }
}

function sourceOf(tensors: [string, Float32Tensor][]): TensorSource {
  const m = new Map(tensors);
  return {
    has: (n) => m.has(n),
    info: (n) => ({ dtype: 'F32', shape: [...m.get(n)!.shape] }),
    read: (n) => m.get(n)!.data,
    readFloat32: (n) => m.get(n)!.data,
  };
}

test('the public openpose-body-net case passes (widths inferred from the weights)', async () => {
  const r = await evaluateCase(caseDir);
  assert.equal(r.status, 'PASS', formatResult(r, true));
});

test('a torch.save body_pose_model.pth with the released names runs as the safetensors copy does, bit for bit', async () => {
  const dir = scratch();
  try {
    const pth = join(dir, 'body_pose_model.pth');
    writeFileSync(pth, encodeTorchStateDict(goldenTensors()));
    assert.equal(openWeights(pth).format, 'torch-zip');
    const io = SafetensorsFile.open(join(caseDir, 'io.safetensors'));
    const input = { dtype: 'float32' as const, dims: io.info('input').shape, data: io.readFloat32('input') };
    const fromPth = await loadBodyNet(pth, { cacheDir, session: { intraOpThreads: 1 } });
    const fromSt = await loadBodyNet(join(caseDir, 'weights.safetensors'), { cacheDir, session: { intraOpThreads: 1 } });
    try {
      const a = await fromPth.run(input);
      const b = await fromSt.run(input);
      assert.deepEqual(a.paf.dims, [1, 38, 5, 7]);
      assert.deepEqual(Array.from(a.paf.data), Array.from(b.paf.data));
      assert.deepEqual(Array.from(a.heatmap.data), Array.from(b.heatmap.data));
    } finally {
      await fromPth.dispose();
      await fromSt.dispose();
      io.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every width comes from the weights: the smoke widths and the released ones give their own shapes', () => {
  const smoke = inferBodyNetConfig(sourceOf(smokeBodyPoseTensors(0)));
  for (const [name, shape] of bodyConvShapes(SMOKE_BODY_WIDTHS)) assert.deepEqual(smoke.convs[name], shape, name);
  assert.deepEqual(smoke.convs['Mconv1_stage2_L1'], { out: 2, in: 38 + 19 + 3, kernel: 7 });
  assert.deepEqual(smoke.convs['Mconv7_stage6_L2'], { out: 19, in: 2, kernel: 1 });
});

test('the smoke writer makes a torch.save file the detector reads', async () => {
  const dir = scratch();
  try {
    const path = await writeSmokeBodyPoseModel(join(dir, 'models', 'annotators', 'body_pose_model.pth'), { seed: 3 });
    const file = openWeights(path);
    try {
      assert.equal(file.format, 'torch-zip');
      assert.equal(file.names().length, 2 * bodyConvShapes(SMOKE_BODY_WIDTHS).size);
      assert.deepEqual(file.info('conv1_1.weight').shape, [4, 3, 3, 3]);
    } finally {
      file.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file without the body model\'s tensors is refused, naming the first missing one', () => {
  const tensors = goldenTensors().filter(([n]) => n !== 'Mconv3_stage4_L2.weight');
  assert.throws(() => inferBodyNetConfig(sourceOf(tensors)), /no Mconv3_stage4_L2\.weight: not a body_pose_model\.pth/);
});

test('layers that do not connect are refused, naming both sides', () => {
  const tensors = goldenTensors().map(([n, t]): [string, Float32Tensor] =>
    n === 'conv2_1.weight' ? [n, { shape: [4, 5, 3, 3], data: new Float32Array(180) }] : [n, t]);
  assert.throws(() => inferBodyNetConfig(sourceOf(tensors)), /conv2_1\.weight takes 5 channels, but conv1_2 gives 4/);
});
