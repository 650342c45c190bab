// Loading a diffusers ControlNet (IdentityNet, canny, depth, pose …) and running it: residuals for
// the UNet's down_block_additional_residual_* / mid_block_additional_residual inputs.
import { EngineError } from '../errors.js';
import { findComponent } from '../formats/diffusers-component.js';
import type { RunOptions } from '../onnx/index.js';
import { CONTROLNET_IO, buildControlNetGraph, type ControlNetGraphOptions } from './controlnet.js';
import { attentionModeFor, compileAndOpen, f32, outputF32, timestepFeed, weightsHashOf, type CompiledNet, type F32, type NetLoadOptions } from './net-session.js';
import { openSources, type TensorSource } from './sdxl-weights.js';
import { skipCount } from './unet-blocks.js';
import { parseControlNetConfig, type ControlNetConfig } from './unet-config.js';

export interface ControlNetLoadOptions extends NetLoadOptions {
  /** Adds the face-region mask input (InstantID `_full` pipeline, IdentityNet only). */
  mask?: boolean;
  /** diffusers guess_mode (residuals ramped by logspace(−1, 0)). */
  guessMode?: boolean;
  staticDims?: ControlNetGraphOptions['staticDims'];
  variant?: 'fp16';
}

export interface ControlNetStepInputs {
  sample: F32; // [B, 4, h, w]
  timestep: number | F32;
  /** Text tokens for ordinary ControlNets; the face tokens for IdentityNet. */
  encoderHiddenStates: F32;
  /** [B, 3, 8h, 8w] in [0, 1]. */
  controlnetCond: F32;
  textEmbeds?: F32;
  timeIds?: F32;
  conditioningScale: number;
  /** [Bm, 1, H, W] (image pixels, 1 inside the face box); all ones (at controlnetCond's size) when left out. */
  mask?: F32;
}

export interface ControlNetResiduals {
  down: F32[];
  mid: F32;
}

export interface ControlNetRunner {
  readonly config: ControlNetConfig;
  readonly compiled: CompiledNet;
  readonly hasMask: boolean;
  run(inputs: ControlNetStepInputs, options?: RunOptions): Promise<ControlNetResiduals>;
  dispose(): Promise<void>;
}

export interface ControlNetSource {
  config: unknown;
  weights: TensorSource;
  weightsHash: string;
}

export async function createControlNetRunner(src: ControlNetSource, options: ControlNetLoadOptions): Promise<ControlNetRunner> {
  const config = parseControlNetConfig(src.config);
  const graphOptions: ControlNetGraphOptions = {
    dtype: options.dtype ?? 'float32',
    attention: options.attention ?? attentionModeFor(options.session?.executionProvider),
    ...(options.mask ? { mask: true } : {}),
    ...(options.guessMode ? { guessMode: true } : {}),
    ...(options.staticDims ? { staticDims: options.staticDims } : {}),
  };
  const key = {
    net: 'controlnet',
    weightsHash: src.weightsHash,
    config: { controlnet: config, attention: graphOptions.attention, mask: options.mask ?? false, guessMode: options.guessMode ?? false, staticDims: options.staticDims ?? null },
  };
  const compiled = await compileAndOpen(options, key, () => buildControlNetGraph(src.weights, config, graphOptions));
  const count = skipCount(config);
  return {
    config,
    compiled,
    hasMask: options.mask ?? false,
    async run(x, runOptions) {
      const feeds: Record<string, F32> = {
        [CONTROLNET_IO.sample]: x.sample,
        [CONTROLNET_IO.timestep]: timestepFeed(x.timestep),
        [CONTROLNET_IO.context]: x.encoderHiddenStates,
        [CONTROLNET_IO.cond]: x.controlnetCond,
        [CONTROLNET_IO.scale]: f32([1], Float32Array.of(x.conditioningScale)),
      };
      if (config.embedding.textTime) {
        if (!x.textEmbeds || !x.timeIds) throw new EngineError('bad_input', 'this ControlNet (text_time) needs textEmbeds and timeIds');
        feeds[CONTROLNET_IO.textEmbeds] = x.textEmbeds;
        feeds[CONTROLNET_IO.timeIds] = x.timeIds;
      }
      if (options.mask) {
        // The mask is resized to (H // s, W // s) of its own size: the neutral mask is ones at the image's size.
        const [, , ch, cw] = x.controlnetCond.dims as [number, number, number, number];
        feeds[CONTROLNET_IO.mask] = x.mask ?? f32([1, 1, ch, cw], new Float32Array(ch * cw).fill(1));
      }
      else if (x.mask) throw new EngineError('bad_input', 'this ControlNet was built without the mask input (load it with mask: true)');
      const out = await compiled.session.run(feeds, runOptions);
      return {
        down: Array.from({ length: count }, (_, i) => outputF32(out, CONTROLNET_IO.down(i))),
        mid: outputF32(out, CONTROLNET_IO.mid),
      };
    },
    dispose: () => compiled.session.dispose(),
  };
}

/** A diffusers ControlNet folder (config.json + diffusion_pytorch_model[.fp16].safetensors), or a model root with controlnet/. */
export async function loadControlNet(path: string, options: ControlNetLoadOptions): Promise<ControlNetRunner> {
  const files = findComponent(path, 'controlnet', options.variant ? { variant: options.variant } : {});
  const opened = openSources(files.weights);
  try {
    return await createControlNetRunner({ config: files.config, weights: opened.source, weightsHash: await weightsHashOf(files.weights) }, options);
  } finally {
    opened.close();
  }
}

/** Sums several nets' residuals (diffusers MultiControlNetModel), element by element. */
export function sumResiduals(all: readonly ControlNetResiduals[]): ControlNetResiduals {
  const first = all[0];
  if (!first) throw new Error('no residuals to sum');
  const add = (ts: readonly F32[]): F32 => {
    const out = new Float32Array(ts[0]!.data);
    for (const t of ts.slice(1)) {
      if (t.data.length !== out.length) throw new EngineError('bad_input', 'ControlNet residual shapes differ');
      for (let i = 0; i < out.length; i++) out[i]! += t.data[i]!;
    }
    return f32(ts[0]!.dims, out);
  };
  return { down: first.down.map((_, i) => add(all.map((r) => r.down[i]!))), mid: add(all.map((r) => r.mid)) };
}
