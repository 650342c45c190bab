// The OpenPose body network (CMU's 6-stage CPM; controlnet_aux open_pose/model.py bodypose_model) built
// from the released body_pose_model.pth, whose tensors carry the layer names without module prefixes
// (conv1_1.weight … Mconv7_stage6_L2.bias). Widths and kernel sizes come from the weight shapes; the
// structure (layer order, pools, the 38 PAF / 19 heatmap outputs, the concat order) is the model's.
//
//   x [B, 3, H, W] → VGG (conv1_1 … conv4_2) → conv4_3_CPM → conv4_4_CPM = F [B, f, H/8, W/8]
//   stage 1: L1 = conv5_1..5_CPM_L1(F) [B, 38, …], L2 = conv5_1..5_CPM_L2(F) [B, 19, …]
//   stage t = 2..6: x_t = cat(L1, L2, F) → Mconv1..7_stage{t}_L1 / _L2
//   outputs: paf = stage 6 L1, heatmap = stage 6 L2
// Every conv is followed by a ReLU except model.py's no_relu_layers. That list names Mconv7_stage6_L1
// twice and never Mconv7_stage6_L2, so the final HEATMAP conv is followed by a ReLU and the final PAF
// conv is not (kept: it is what the released model computes).
import { EngineError } from '../../errors.js';
import { GraphBuilder, attr, type Dim, type ModelDef, type RunOptions, type Tensor } from '../../onnx/index.js';
import { compileAndOpen, outputF32, weightsHashOf, type CompiledNet, type F32, type NetLoadOptions } from '../../nets/net-session.js';
import { WeightScope, openSources, type TensorSource } from '../../nets/sdxl-weights.js';

export const BODY_STAGES = 6;
export const PAF_CHANNELS = 38;
export const HEATMAP_CHANNELS = 19;
/** The network's output is the input downsampled by this (three 2×2 max pools). */
export const BODY_STRIDE = 8;

type Layer = { name: string; pool?: false } | { name: string; pool: true };

/** model0: the VGG-19 front (with pools) and the two CPM convs. */
const FRONT: Layer[] = [
  'conv1_1', 'conv1_2', 'pool', 'conv2_1', 'conv2_2', 'pool', 'conv3_1', 'conv3_2', 'conv3_3', 'conv3_4', 'pool',
  'conv4_1', 'conv4_2', 'conv4_3_CPM', 'conv4_4_CPM',
].map((name) => (name === 'pool' ? { name, pool: true } : { name }));

const stageOneLayers = (branch: 1 | 2): string[] => [1, 2, 3, 4, 5].map((i) => `conv5_${i}_CPM_L${branch}`);
const stageLayers = (t: number, branch: 1 | 2): string[] => [1, 2, 3, 4, 5, 6, 7].map((i) => `Mconv${i}_stage${t}_L${branch}`);

/** model.py's no_relu_layers, as written (Mconv7_stage6_L2 is not in it). */
const NO_RELU = new Set([
  'conv5_5_CPM_L1', 'conv5_5_CPM_L2',
  ...[2, 3, 4, 5].flatMap((t) => [`Mconv7_stage${t}_L1`, `Mconv7_stage${t}_L2`]),
  'Mconv7_stage6_L1',
]);

/** Every conv layer in forward order, as named in the weight file. */
export function bodyConvLayers(): string[] {
  const names = FRONT.filter((l) => !l.pool).map((l) => l.name);
  names.push(...stageOneLayers(1), ...stageOneLayers(2));
  for (let t = 2; t <= BODY_STAGES; t++) names.push(...stageLayers(t, 1), ...stageLayers(t, 2));
  return names;
}

export interface ConvShape {
  out: number;
  in: number;
  kernel: number;
}

/** The widths of a body model: each conv's [out, in, k] from its weight, checked for consistency. */
export interface BodyNetConfig {
  convs: Record<string, ConvShape>;
}

/** Reads every conv's shape from the weights and checks that the layers connect as the model needs. */
export function inferBodyNetConfig(w: TensorSource): BodyNetConfig {
  const convs: Record<string, ConvShape> = {};
  for (const name of bodyConvLayers()) {
    for (const part of ['weight', 'bias']) {
      if (!w.has(`${name}.${part}`)) {
        throw new EngineError('bad_model_files', `the openpose body weights have no ${name}.${part}: not a body_pose_model.pth (lllyasviel/Annotators)`);
      }
    }
    const shape = w.info(`${name}.weight`).shape;
    const [out, inp, kh, kw] = shape as [number, number, number, number];
    if (shape.length !== 4 || kh !== kw || kh % 2 !== 1) {
      throw new EngineError('bad_model_files', `openpose body weight ${name}.weight has shape [${shape.join(', ')}], expected [out, in, k, k] with odd k`);
    }
    const bias = w.info(`${name}.bias`).shape;
    if (bias.length !== 1 || bias[0] !== out) throw new EngineError('bad_model_files', `openpose body weight ${name}.bias has shape [${bias.join(', ')}], expected [${out}]`);
    convs[name] = { out, in: inp, kernel: kh };
  }
  const cfg = { convs };
  checkConnections(cfg);
  return cfg;
}

function checkConnections(cfg: BodyNetConfig): void {
  const c = cfg.convs;
  const expectIn = (name: string, width: number, why: string) => {
    if (c[name]!.in !== width) {
      throw new EngineError('bad_model_files', `openpose body weight ${name}.weight takes ${c[name]!.in} channels, but ${why} gives ${width}`);
    }
  };
  const front = FRONT.filter((l) => !l.pool).map((l) => l.name);
  expectIn(front[0]!, 3, 'the RGB input');
  for (let i = 1; i < front.length; i++) expectIn(front[i]!, c[front[i - 1]!]!.out, front[i - 1]!);
  const features = c['conv4_4_CPM']!.out;
  const chain = (names: string[], input: number, inputWhy: string, outputs: number) => {
    expectIn(names[0]!, input, inputWhy);
    for (let i = 1; i < names.length; i++) expectIn(names[i]!, c[names[i - 1]!]!.out, names[i - 1]!);
    const last = names[names.length - 1]!;
    if (c[last]!.out !== outputs) throw new EngineError('bad_model_files', `openpose body weight ${last}.weight has ${c[last]!.out} outputs, expected ${outputs}`);
  };
  chain(stageOneLayers(1), features, 'conv4_4_CPM', PAF_CHANNELS);
  chain(stageOneLayers(2), features, 'conv4_4_CPM', HEATMAP_CHANNELS);
  const stageIn = PAF_CHANNELS + HEATMAP_CHANNELS + features;
  for (let t = 2; t <= BODY_STAGES; t++) {
    chain(stageLayers(t, 1), stageIn, `cat(PAF, heatmap, features) of stage ${t - 1}`, PAF_CHANNELS);
    chain(stageLayers(t, 2), stageIn, `cat(PAF, heatmap, features) of stage ${t - 1}`, HEATMAP_CHANNELS);
  }
}

/**
 * The channel widths of a body model (names as in the golden case's config): c1 conv1_*, c2 conv2_*,
 * c3 conv3_*, c4 conv4_1/4_2, c43 conv4_3_CPM, F conv4_4_CPM (the features fed to every stage),
 * s1 conv5_1..3_CPM_L*, t conv5_4_CPM_L*, m Mconv1..6_stage*_L*.
 */
export interface BodyWidths {
  c1: number; c2: number; c3: number; c4: number; c43: number; F: number; s1: number; t: number; m: number;
}

/** The released body_pose_model.pth (52.3M parameters). */
export const RELEASED_BODY_WIDTHS: BodyWidths = { c1: 64, c2: 128, c3: 256, c4: 512, c43: 256, F: 128, s1: 128, t: 512, m: 128 };

/** Every conv's [out, in, k] for the given widths, in forward order (what a weight file must hold). */
export function bodyConvShapes(w: BodyWidths): Map<string, ConvShape> {
  const m = new Map<string, ConvShape>();
  const front: [string, number, number][] = [
    ['conv1_1', 3, w.c1], ['conv1_2', w.c1, w.c1], ['conv2_1', w.c1, w.c2], ['conv2_2', w.c2, w.c2],
    ['conv3_1', w.c2, w.c3], ['conv3_2', w.c3, w.c3], ['conv3_3', w.c3, w.c3], ['conv3_4', w.c3, w.c3],
    ['conv4_1', w.c3, w.c4], ['conv4_2', w.c4, w.c4], ['conv4_3_CPM', w.c4, w.c43], ['conv4_4_CPM', w.c43, w.F],
  ];
  for (const [name, inp, out] of front) m.set(name, { out, in: inp, kernel: 3 });
  for (const branch of [1, 2] as const) {
    const outs = branch === 1 ? PAF_CHANNELS : HEATMAP_CHANNELS;
    const [l1, l2, l3, l4, l5] = stageOneLayers(branch) as [string, string, string, string, string];
    m.set(l1, { out: w.s1, in: w.F, kernel: 3 }).set(l2, { out: w.s1, in: w.s1, kernel: 3 }).set(l3, { out: w.s1, in: w.s1, kernel: 3 });
    m.set(l4, { out: w.t, in: w.s1, kernel: 1 }).set(l5, { out: outs, in: w.t, kernel: 1 });
  }
  for (let t = 2; t <= BODY_STAGES; t++) {
    for (const branch of [1, 2] as const) {
      const names = stageLayers(t, branch);
      names.forEach((name, i) => {
        const inp = i === 0 ? PAF_CHANNELS + HEATMAP_CHANNELS + w.F : w.m;
        const out = i === 6 ? (branch === 1 ? PAF_CHANNELS : HEATMAP_CHANNELS) : w.m;
        m.set(name, { out, in: inp, kernel: i < 5 ? 7 : 1 });
      });
    }
  }
  return m;
}

function relu(g: GraphBuilder, x: Tensor): Tensor {
  return g.op('Relu', [x], [{ dtype: x.dtype, shape: x.shape }])[0]!;
}

/** nn.MaxPool2d(2, 2, 0): floor mode, as torch's default. */
function maxPool2(g: GraphBuilder, x: Tensor): Tensor {
  const half = (d: Dim): Dim => (typeof d === 'number' ? Math.floor(d / 2) : '?');
  const shape = [x.shape[0]!, x.shape[1]!, half(x.shape[2]!), half(x.shape[3]!)];
  return g.op('MaxPool', [x], [{ dtype: x.dtype, shape }], {
    kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]), pads: attr.ints([0, 0, 0, 0]),
  })[0]!;
}

function conv(g: GraphBuilder, w: WeightScope, cfg: BodyNetConfig, name: string, x: Tensor): Tensor {
  const { kernel } = cfg.convs[name]!;
  const y = g.scope(name, () => g.conv2d(x, w.get(`${name}.weight`), w.get(`${name}.bias`), { padding: (kernel - 1) / 2 }));
  return NO_RELU.has(name) ? y : relu(g, y);
}

/** bodypose_model.forward: x [B, 3, H, W] → (paf [B, 38, H/8, W/8], heatmap [B, 19, H/8, W/8]). */
export function bodyForward(g: GraphBuilder, w: WeightScope, cfg: BodyNetConfig, x: Tensor): { paf: Tensor; heatmap: Tensor } {
  let h = x;
  for (const layer of FRONT) h = layer.pool ? maxPool2(g, h) : conv(g, w, cfg, layer.name, h);
  const features = h; // [B, f, H/8, W/8]
  const branch = (names: string[], input: Tensor) => names.reduce((t, name) => conv(g, w, cfg, name, t), input);
  let paf = branch(stageOneLayers(1), features); // [B, 38, H/8, W/8]
  let heatmap = branch(stageOneLayers(2), features); // [B, 19, H/8, W/8]
  for (let t = 2; t <= BODY_STAGES; t++) {
    const input = g.concat([paf, heatmap, features], 1); // [B, 38 + 19 + f, H/8, W/8]
    paf = branch(stageLayers(t, 1), input);
    heatmap = branch(stageLayers(t, 2), input);
  }
  return { paf, heatmap };
}

export const BODY_IO = { input: 'input', paf: 'paf', heatmap: 'heatmap' } as const;

export function buildBodyNetGraph(weights: TensorSource, cfg: BodyNetConfig, options: { dtype?: 'float32' | 'float16' } = {}): ModelDef {
  const g = new GraphBuilder({ name: 'openpose_body', dtype: options.dtype ?? 'float32', keepIoFloat32: true });
  const x = g.input(BODY_IO.input, ['B', 3, 'H', 'W']);
  const { paf, heatmap } = bodyForward(g, new WeightScope(g, weights), cfg, x);
  g.output(paf, BODY_IO.paf);
  g.output(heatmap, BODY_IO.heatmap);
  return g.build();
}

export interface BodyNetOutputs {
  /** [1, 38, h, w] part affinity fields (x, y per limb). */
  paf: F32;
  /** [1, 19, h, w] part confidence maps (18 parts + background). */
  heatmap: F32;
}

export interface BodyNetRunner {
  readonly config: BodyNetConfig;
  readonly compiled: CompiledNet;
  /** input [1, 3, H, W] (H, W multiples of 8) → the stage-6 outputs. */
  run(input: F32, options?: RunOptions): Promise<BodyNetOutputs>;
  dispose(): Promise<void>;
}

export async function createBodyNetRunner(src: { weights: TensorSource; weightsHash: string }, options: NetLoadOptions): Promise<BodyNetRunner> {
  const config = inferBodyNetConfig(src.weights);
  const compiled = await compileAndOpen(options, { net: 'openpose-body', weightsHash: src.weightsHash, config }, () =>
    buildBodyNetGraph(src.weights, config, options.dtype ? { dtype: options.dtype } : {}));
  return {
    config,
    compiled,
    async run(input, runOptions) {
      const out = await compiled.session.run({ [BODY_IO.input]: input }, runOptions);
      return { paf: outputF32(out, BODY_IO.paf), heatmap: outputF32(out, BODY_IO.heatmap) };
    },
    dispose: () => compiled.session.dispose(),
  };
}

/** The body network of a body_pose_model.pth (torch pickle) or a safetensors file with the same names. */
export async function loadBodyNet(path: string, options: NetLoadOptions): Promise<BodyNetRunner> {
  const opened = openSources([path]);
  try {
    return await createBodyNetRunner({ weights: opened.source, weightsHash: await weightsHashOf([path]) }, options);
  } finally {
    opened.close();
  }
}
