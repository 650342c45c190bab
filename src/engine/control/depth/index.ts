// Depth Anything as the InstantID Space runs it: DepthEstimator.open(a transformers-layout folder or
// .safetensors with its config.json), estimate(photo) → the 8-bit depth map the depth ControlNet (455)
// is fed. One compiled graph for every input size; the position table is resized on the host per token grid.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineError } from '../../errors.js';
import { readJsonObject } from '../../formats/diffusers-component.js';
import type { RunOptions } from '../../onnx/index.js';
import { attentionModeFor, compileAndOpen, f32, outputF32, weightsHashOf, type CompiledNet, type F32, type NetLoadOptions } from '../../nets/net-session.js';
import { graphChoicesFor } from '../../onnx/provider.js';
import { openSources, type TensorSource } from '../../nets/sdxl-weights.js';
import { parseDepthAnythingConfig, type DepthAnythingConfig, type PositionInterpolation } from './config.js';
import { DEPTH_IO, buildDepthAnythingGraph, interpolatePositions } from './graph.js';
import { depthPixelValues, depthToUint8, type DepthPost } from './transform.js';

export { parseDepthAnythingConfig, interpolationForVersion, type DepthAnythingConfig, type PositionInterpolation } from './config.js';
export { depthInputSize, depthPixelValues, depthToUint8, type DepthPost, type PixelValues } from './transform.js';
export { buildDepthAnythingGraph, interpolatePositions, DEPTH_IO } from './graph.js';

/**
 * Where to get the weights, for messages. Licences as the Hugging Face model cards of these (V1, -hf)
 * repos state them; Depth-Anything-V2's Base/Large/Giant are CC-BY-NC-4.0 (non-commercial) — a V2 file
 * in the transformers layout loads here too, under its own licence.
 */
export const DEPTH_ANYTHING_DOWNLOAD = {
  small: { repo: 'LiheYoung/depth-anything-small-hf', files: ['config.json', 'model.safetensors'], licence: 'Apache-2.0' },
  base: { repo: 'LiheYoung/depth-anything-base-hf', files: ['config.json', 'model.safetensors'], licence: 'Apache-2.0' },
  large: { repo: 'LiheYoung/depth-anything-large-hf', files: ['config.json', 'model.safetensors'], licence: 'Apache-2.0' },
} as const;

export interface RgbInput {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DepthMap {
  /** [height, width] 8-bit depth (near = bright), the photo's size. */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DepthEstimatorOptions extends NetLoadOptions {
  /** Overrides the position interpolation the config's transformers_version implies (see config.ts). */
  positionInterpolation?: PositionInterpolation;
  /** The Space's lower bound of the network input (518). */
  lowerBound?: number;
}

export interface DepthEstimate extends DepthMap {
  post: DepthPost;
  /** The network input size used. */
  netHeight: number;
  netWidth: number;
}

let sourceHash: string | undefined;
/** The graph code's hash: editing it invalidates compiled models (this folder is outside the cache's own hash). */
function depthSourceHash(): string {
  if (sourceHash) return sourceHash;
  const here = dirname(fileURLToPath(import.meta.url));
  const h = createHash('sha256');
  for (const f of ['graph.ts', 'graph.js', 'config.ts', 'config.js', 'interpolate.ts', 'interpolate.js']) {
    const p = join(here, f);
    if (existsSync(p)) h.update(f).update(readFileSync(p));
  }
  return (sourceHash = h.digest('hex').slice(0, 16));
}

/** Finds config.json and the weights: a folder (model.safetensors / pytorch_model.bin), or a weights file with config.json beside it. */
export function findDepthAnythingFiles(path: string): { config: Record<string, unknown>; weights: string } {
  const abs = resolve(path);
  const hint = `download ${DEPTH_ANYTHING_DOWNLOAD.small.files.join(' and ')} of ${DEPTH_ANYTHING_DOWNLOAD.small.repo} (${DEPTH_ANYTHING_DOWNLOAD.small.licence}) into one folder`;
  if (!existsSync(abs)) throw new EngineError('model_not_found', `Depth Anything weights not found at ${abs}: ${hint}`);
  const dir = statSync(abs).isDirectory() ? abs : dirname(abs);
  let weights = abs;
  if (statSync(abs).isDirectory()) {
    const found = ['model.safetensors', 'pytorch_model.bin'].map((f) => join(abs, f)).find((p) => existsSync(p));
    if (!found) throw new EngineError('model_not_found', `${abs} has no model.safetensors (nor pytorch_model.bin): ${hint}`);
    weights = found;
  }
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new EngineError('model_not_found', `${dir} has no config.json next to the Depth Anything weights: ${hint}`);
  return { config: readJsonObject(configPath), weights };
}

export class DepthEstimator {
  private net: Promise<CompiledNet> | undefined;
  private table: Float32Array | undefined;
  /** Resized position tables by token grid ('gh×gw'), a few photo shapes at most. */
  private readonly positions = new Map<string, F32>();
  private closed = false;

  private constructor(
    readonly config: DepthAnythingConfig,
    private readonly source: TensorSource,
    private readonly weightsHash: string,
    private readonly options: DepthEstimatorOptions,
    private readonly closeFiles: () => void,
  ) {}

  /** From a folder or weights file (see findDepthAnythingFiles). */
  static async open(path: string, options: DepthEstimatorOptions): Promise<DepthEstimator> {
    const files = findDepthAnythingFiles(path);
    return DepthEstimator.fromFiles(files.config, files.weights, options);
  }

  /** From a parsed config.json and a weights file (safetensors or torch .bin, transformers names). */
  static async fromFiles(configJson: unknown, weightsPath: string, options: DepthEstimatorOptions): Promise<DepthEstimator> {
    const config = parseDepthAnythingConfig(configJson, options.positionInterpolation ? { positionInterpolation: options.positionInterpolation } : {});
    const opened = openSources([weightsPath]);
    try {
      if (!opened.source.has('backbone.embeddings.position_embeddings')) {
        throw new EngineError('bad_model_files', `${weightsPath} has no backbone.embeddings.position_embeddings: not a transformers DepthAnythingForDepthEstimation file (the -hf repos)`);
      }
      return new DepthEstimator(config, opened.source, await weightsHashOf([weightsPath]), options, opened.close);
    } catch (e) {
      opened.close();
      throw e;
    }
  }

  private graph(): Promise<CompiledNet> {
    if (this.closed) throw new Error('DepthEstimator used after dispose()');
    const attention = this.options.attention ?? attentionModeFor(this.options.session?.executionProvider);
    const convChannelMultiple = graphChoicesFor(this.options.session?.executionProvider).convChannelMultiple;
    this.net ??= compileAndOpen(
      this.options,
      { net: 'depth-anything', weightsHash: this.weightsHash, config: { ...this.config, positionInterpolation: undefined, attention, convChannelMultiple, code: depthSourceHash() } },
      () => buildDepthAnythingGraph(this.source, this.config, { attention, convChannelMultiple, ...(this.options.dtype ? { dtype: this.options.dtype } : {}) }),
    );
    return this.net;
  }

  /** Dinov2's position embeddings for a (gh × gw) token grid, [1, 1 + gh·gw, D]. */
  private positionsFor(gh: number, gw: number): F32 {
    const key = `${gh}x${gw}`;
    let p = this.positions.get(key);
    if (!p) {
      this.table ??= this.source.readFloat32('backbone.embeddings.position_embeddings');
      p = f32([1, 1 + gh * gw, this.config.hidden], interpolatePositions(this.table, this.config, gh, gw));
      if (this.positions.size >= 16) this.positions.delete(this.positions.keys().next().value!);
      this.positions.set(key, p);
    }
    return p;
  }

  /**
   * The network alone, as transformers' forward: [B, 3, H, W] pixel values → [B, 14·(H // 14), 14·(W // 14)]
   * predicted depth (the input size for sides that are multiples of 14, as the Space's resize makes them).
   */
  async predict(pixelValues: F32, runOptions?: RunOptions): Promise<F32> {
    const [b, c, h, w] = pixelValues.dims;
    if (pixelValues.dims.length !== 4 || !b || c !== 3) throw new EngineError('bad_input', `Depth Anything takes [B, 3, H, W] pixel values, got [${pixelValues.dims.join(', ')}]`);
    const p = this.config.patch;
    if (h! < p || w! < p) throw new EngineError('bad_input', `Depth Anything needs an input of at least ${p}×${p} pixels, got ${w}×${h}`);
    const net = await this.graph();
    const feeds = { [DEPTH_IO.input]: pixelValues, [DEPTH_IO.positions]: this.positionsFor(Math.floor(h! / p), Math.floor(w! / p)) };
    return outputF32(await net.session.run(feeds, runOptions), DEPTH_IO.output);
  }

  /** The Space's get_depth_map: the photo (RGB HWC) → its 8-bit depth map at the photo's size. */
  async estimate(image: RgbInput, runOptions?: RunOptions): Promise<DepthEstimate> {
    const px = depthPixelValues(image.data, image.width, image.height, this.options.lowerBound ? { lowerBound: this.options.lowerBound } : {});
    const depth = await this.predict(f32([1, 3, px.height, px.width], px.data), runOptions);
    const post = depthToUint8(depth.data, px.height, px.width, image.height, image.width);
    return { data: post.uint8, width: image.width, height: image.height, post, netHeight: px.height, netWidth: px.width };
  }

  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const net = await this.net?.catch(() => undefined);
    await net?.session.dispose();
    this.closeFiles();
  }
}

/** A one-channel map as the RGB image a ControlNet takes (PIL's L → RGB: the value in every channel). */
export function grayToRgb(map: DepthMap): RgbInput {
  const out = new Uint8Array(map.width * map.height * 3);
  for (let i = 0; i < map.data.length; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = map.data[i]!;
  return { data: out, width: map.width, height: map.height };
}
