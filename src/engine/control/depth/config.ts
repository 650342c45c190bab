// DepthAnythingForDepthEstimation's config, from a transformers config.json (the LiheYoung/depth-anything-*-hf
// layout: a Dinov2 `backbone_config` inside). What the graph needs and nothing else; anything the
// graph does not implement (SwiGLU FFN, metric depth with other heads, a non-Dinov2 backbone) is refused.
import { EngineError } from '../../errors.js';

/**
 * How Dinov2's position table is resized to the token grid.
 * - 'size': F.interpolate(size=(H/14, W/14)), transformers ≥ 4.46 (the golden's main outputs).
 * - 'scale_factor': F.interpolate(scale_factor=((H/14 + 0.1)/g, (W/14 + 0.1)/g)), transformers ≤ 4.45 and
 *   the original Depth-Anything repo the InstantID Space runs.
 */
export type PositionInterpolation = 'size' | 'scale_factor';

export interface DepthAnythingConfig {
  hidden: number;
  layers: number;
  heads: number;
  mlpHidden: number;
  patch: number;
  /** Side of the square position grid the table holds (image_size / patch). */
  posGrid: number;
  layerNormEps: number;
  /** Hidden-state indices fed to the neck (0 = embeddings, i = after layer i). */
  outIndices: number[];
  applyLayernorm: boolean;
  reassembleFactors: number[];
  neckHiddenSizes: number[];
  fusionHidden: number;
  headHidden: number;
  headInIndex: number;
  depthType: 'relative' | 'metric';
  maxDepth: number;
  positionInterpolation: PositionInterpolation;
}

const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

function num(c: Record<string, unknown>, key: string, fallback?: number): number {
  const v = c[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new EngineError('bad_model_config', `the Depth Anything config.json has no number ${key}`);
  return v;
}

function nums(c: Record<string, unknown>, key: string, fallback?: number[]): number[] {
  const v = c[key] ?? fallback;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new EngineError('bad_model_config', `the Depth Anything config.json has no list of numbers ${key}`);
  }
  return v as number[];
}

/** The interpolation a transformers version runs: 'size' from 4.46 on, 'scale_factor' before (and when unknown, as the Space). */
export function interpolationForVersion(version: unknown): PositionInterpolation {
  if (typeof version !== 'string') return 'scale_factor';
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return 'scale_factor';
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 4 || (major === 4 && minor >= 46) ? 'size' : 'scale_factor';
}

export function parseDepthAnythingConfig(json: unknown, options: { positionInterpolation?: PositionInterpolation } = {}): DepthAnythingConfig {
  const c = obj(json);
  const modelType = c.model_type ?? (c._class_name === 'DepthAnythingForDepthEstimation' ? 'depth_anything' : undefined);
  if (modelType !== undefined && modelType !== 'depth_anything') {
    throw new EngineError('bad_model_config', `config.json is a ${String(modelType)} model, not depth_anything (DepthAnythingForDepthEstimation)`);
  }
  const b = obj(c.backbone_config);
  if (Object.keys(b).length === 0) throw new EngineError('bad_model_config', 'the Depth Anything config.json has no backbone_config (Dinov2)');
  if (b.model_type !== undefined && b.model_type !== 'dinov2') {
    throw new EngineError('bad_model_config', `Depth Anything with a ${String(b.model_type)} backbone is not supported (only dinov2)`);
  }
  if (b.use_swiglu_ffn === true) throw new EngineError('bad_model_config', 'Dinov2 with use_swiglu_ffn (giant) is not supported');
  if (b.hidden_act !== undefined && b.hidden_act !== 'gelu') throw new EngineError('bad_model_config', `Dinov2 hidden_act ${String(b.hidden_act)} is not supported (only gelu)`);
  const hidden = num(b, 'hidden_size', 768);
  const heads = num(b, 'num_attention_heads', 12);
  if (hidden % heads !== 0) throw new EngineError('bad_model_config', `Dinov2 hidden_size ${hidden} does not split into ${heads} heads`);
  const patch = num(b, 'patch_size', 14);
  const imageSize = num(b, 'image_size', 518);
  const layers = num(b, 'num_hidden_layers', 12);
  const outIndices = b.out_indices !== undefined ? nums(b, 'out_indices') : (Array.isArray(b.out_features)
    ? (b.out_features as unknown[]).map((s) => Number(String(s).replace(/^stage/, '')))
    : [layers - 3, layers - 2, layers - 1, layers]);
  if (outIndices.some((i) => !Number.isInteger(i) || i < 0 || i > layers)) {
    throw new EngineError('bad_model_config', `Dinov2 out_indices ${JSON.stringify(outIndices)} are not hidden-state indices 0..${layers}`);
  }
  const reassembleFactors = nums(c, 'reassemble_factors', [4, 2, 1, 0.5]);
  const neckHiddenSizes = nums(c, 'neck_hidden_sizes', [96, 192, 384, 768]);
  if (reassembleFactors.length !== outIndices.length || neckHiddenSizes.length !== outIndices.length) {
    throw new EngineError('bad_model_config', `Depth Anything: ${outIndices.length} backbone features but ${reassembleFactors.length} reassemble factors and ${neckHiddenSizes.length} neck sizes`);
  }
  for (const f of reassembleFactors) {
    if (!(f >= 1 ? Number.isInteger(f) : Number.isInteger(1 / f))) throw new EngineError('bad_model_config', `reassemble factor ${f} is neither an integer nor 1/integer`);
  }
  const depthType = c.depth_estimation_type ?? 'relative';
  if (depthType !== 'relative' && depthType !== 'metric') throw new EngineError('bad_model_config', `depth_estimation_type ${String(depthType)} is not relative or metric`);
  const version = b.transformers_version ?? c.transformers_version;
  return {
    hidden,
    layers,
    heads,
    mlpHidden: Math.trunc(hidden * num(b, 'mlp_ratio', 4)),
    patch,
    posGrid: Math.floor(imageSize / patch),
    layerNormEps: num(b, 'layer_norm_eps', 1e-6),
    outIndices,
    applyLayernorm: b.apply_layernorm !== false,
    reassembleFactors,
    neckHiddenSizes,
    fusionHidden: num(c, 'fusion_hidden_size', 64),
    headHidden: num(c, 'head_hidden_size', 32),
    headInIndex: num(c, 'head_in_index', -1),
    depthType,
    maxDepth: num(c, 'max_depth', 1),
    positionInterpolation: options.positionInterpolation ?? interpolationForVersion(version),
  };
}
