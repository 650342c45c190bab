// One graph for a whole denoising step: the ControlNets' residuals, scaled and summed, flow straight
// into the UNet (architecture.md: onnxruntime-node cannot keep tensors on the GPU between runs, so
// on GPU the UNet and its ControlNets are one graph and a step is one run). Each net's context is
// cut from the UNet's: IdentityNet reads the image tokens (the last numTokens), the others the text.
import { GraphBuilder, type ModelDef, type Tensor } from '../onnx/index.js';
import { controlnetForward } from './controlnet.js';
import { WeightScope, type TensorSource } from './sdxl-weights.js';
import type { ControlNetConfig, UNetConfig } from './unet-config.js';
import { UNET_IO, declareUnetInputs, unetBuilderOptions, unetForward, type UnetGraphOptions } from './unet.js';

export interface ControlNetPart {
  weights: TensorSource;
  config: ControlNetConfig;
  /** 'image_tokens' for InstantID's IdentityNet (needs the IP-Adapter's numTokens), 'text' otherwise. */
  context: 'image_tokens' | 'text';
  /** Adds controlnet_{k}_mask, the face-region mask on this net's residuals. */
  mask?: boolean;
}

export const DENOISER_IO = {
  ...UNET_IO,
  cond: (k: number) => `controlnet_${k}_cond`,
  scale: (k: number) => `controlnet_${k}_scale`,
  mask: (k: number) => `controlnet_${k}_mask`,
} as const;

/** UNet + ControlNets as one model: UNet inputs, then per net its image [B, 3, 8h, 8w], scale [1] and optional mask. */
export function buildDenoiserGraph(unetWeights: TensorSource, unet: UNetConfig, nets: readonly ControlNetPart[], options: UnetGraphOptions = {}): ModelDef {
  const g = new GraphBuilder(unetBuilderOptions('denoiser', options));
  const { controlResiduals: _ignored, ...unetOptions } = options;
  const x = declareUnetInputs(g, unet, unetOptions);
  const n = x.ip?.numTokens ?? 0;
  const imageTokens = n > 0 ? g.slice(x.context, [-n], [Number.MAX_SAFE_INTEGER], [1]) : undefined; // [B, n, Cc]
  const text = n > 0 ? g.slice(x.context, [0], [-n], [1]) : x.context; // [B, S − n, Cc]

  let down: Tensor[] | undefined;
  let mid: Tensor | undefined;
  nets.forEach((net, k) => {
    if (net.context === 'image_tokens' && !imageTokens) throw new Error(`ControlNet ${k} reads the image tokens: build the UNet with an IP-Adapter`);
    const B = x.sample.shape[0]!;
    const r = g.scope(`controlnet_${k}`, () => controlnetForward(g, new WeightScope(g, net.weights, '', `controlnet_${k}.`), net.config, {
      sample: x.sample,
      timestep: x.timestep,
      context: net.context === 'image_tokens' ? imageTokens! : text,
      cond: g.input(DENOISER_IO.cond(k), [B, net.config.conditioningChannels, `CH${k}`, `CW${k}`]),
      scale: g.input(DENOISER_IO.scale(k), [1]),
      ...(x.textEmbeds ? { textEmbeds: x.textEmbeds } : {}),
      ...(x.timeIds ? { timeIds: x.timeIds } : {}),
      ...(net.mask ? { mask: g.input(DENOISER_IO.mask(k), ['Bm', 1, `MH${k}`, `MW${k}`]) } : {}),
    }));
    down = down ? down.map((d, i) => g.add(d, r.down[i]!)) : r.down;
    mid = mid ? g.add(mid, r.mid) : r.mid;
  });

  const noise = unetForward(g, new WeightScope(g, unetWeights), unet, {
    ...x,
    ...(down && mid ? { downResiduals: down, midResidual: mid } : {}),
  });
  g.output(noise, UNET_IO.output);
  return g.build();
}
