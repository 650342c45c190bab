// A tiny RANDOM OpenPose body model for the smoke set: the released file's format (a torch.save zip
// pickle named body_pose_model.pth, tensors under the same names: conv1_1.weight … Mconv7_stage6_L2.bias)
// at toy widths, so the preprocessing path runs in milliseconds. It detects nothing meaningful.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeTorchStateDict, type Float32Tensor } from '../../formats/torch-write.js';
import { TorchGenerator } from '../../rng/torch-cpu.js';
import { bodyConvShapes, type BodyWidths } from './body-net.js';

/** The widths of the golden case's tiny model (71.5K parameters). */
export const SMOKE_BODY_WIDTHS: BodyWidths = { c1: 4, c2: 4, c3: 6, c4: 6, c43: 6, F: 3, s1: 3, t: 6, m: 2 };

/** The state dict: kernels ~ N(0, 1/fan_in)·√2 (He, to keep ReLU activations alive), biases ~ N(0, 0.05). */
export function smokeBodyPoseTensors(seed = 0, widths: BodyWidths = SMOKE_BODY_WIDTHS): [string, Float32Tensor][] {
  const out: [string, Float32Tensor][] = [];
  let n = 0;
  for (const [name, { out: o, in: i, kernel: k }] of bodyConvShapes(widths)) {
    const gen = new TorchGenerator(BigInt(seed) * 1000n + BigInt(n++));
    const weight = gen.randn([o, i, k, k]);
    const std = Math.sqrt(2 / (i * k * k));
    for (let j = 0; j < weight.length; j++) weight[j] = Math.fround(weight[j]! * std);
    const bias = gen.randn([o]);
    for (let j = 0; j < bias.length; j++) bias[j] = Math.fround(bias[j]! * 0.05);
    out.push([`${name}.weight`, { shape: [o, i, k, k], data: weight }], [`${name}.bias`, { shape: [o], data: bias }]);
  }
  return out;
}

/** Writes the tiny body model as a torch.save file at `path` (folders created). */
export async function writeSmokeBodyPoseModel(path: string, options: { seed?: number; widths?: BodyWidths } = {}): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeTorchStateDict(path, smokeBodyPoseTensors(options.seed ?? 0, options.widths));
  return path;
}
