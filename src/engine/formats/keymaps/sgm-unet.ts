// SGM / LDM UNet names (model.diffusion_model.*, as in sd_xl_base_1.0.safetensors) → diffusers
// UNet2DConditionModel names, and the diffusers config read back from the tensor shapes.
//
//   input_blocks.0.0                → conv_in
//   input_blocks.i.0 (i ≥ 1)        → down_blocks.b.resnets.j, or .downsamplers.0.conv when it is `op`
//   input_blocks.i.1                → down_blocks.b.attentions.j        b, j = divmod(i − 1, layers + 1)
//   middle_block.0 / .1 / .2        → mid_block.resnets.0 / attentions.0 / resnets.1
//   output_blocks.i.0 / .1          → up_blocks.u.resnets.j / attentions.j   u, j = divmod(i, layers + 1)
//   output_blocks.i.{1|2}.conv      → up_blocks.u.upsamplers.0.conv (after the attention, if any)
//   time_embed.0/2, label_emb.0.0/2 → time_embedding.linear_1/2, add_embedding.linear_1/2
//   out.0 / out.2                   → conv_norm_out / conv_out
// Inside resnets: in_layers.0/2 → norm1/conv1, emb_layers.1 → time_emb_proj, out_layers.0/3 →
// norm2/conv2, skip_connection → conv_shortcut. Transformer internals keep their names.
import { EngineError } from '../../errors.js';
import type { MappedTensor, ModelConfig } from './source.js';

export type Shapes = ReadonlyMap<string, readonly number[]>;

export interface MappedComponent {
  /** diffusers name → where it comes from in the checkpoint (names without the component prefix). */
  table: Map<string, MappedTensor>;
  config: ModelConfig;
  assumed: string[];
}

const RESNET_RENAMES: readonly [string, string][] = [
  ['in_layers.0.', 'norm1.'], ['in_layers.2.', 'conv1.'], ['emb_layers.1.', 'time_emb_proj.'],
  ['out_layers.0.', 'norm2.'], ['out_layers.3.', 'conv2.'], ['skip_connection.', 'conv_shortcut.'],
];

function resnetName(rest: string): string | undefined {
  for (const [from, to] of RESNET_RENAMES) if (rest.startsWith(from)) return to + rest.slice(from.length);
  return undefined;
}

const DIRECT: Readonly<Record<string, string>> = {
  'time_embed.0.': 'time_embedding.linear_1.', 'time_embed.2.': 'time_embedding.linear_2.',
  'label_emb.0.0.': 'add_embedding.linear_1.', 'label_emb.0.2.': 'add_embedding.linear_2.',
  'input_blocks.0.0.': 'conv_in.', 'out.0.': 'conv_norm_out.', 'out.2.': 'conv_out.',
};

const bad = (why: string): never => {
  throw new EngineError('bad_checkpoint', `the UNet in this checkpoint is not laid out as SGM/SDXL: ${why}`);
};

function shape(shapes: Shapes, name: string): readonly number[] {
  return shapes.get(name) ?? bad(`it has no ${name}`);
}

/** Distinct values of the first `(\d+)` in `pattern` among the names. */
function indices(names: Iterable<string>, pattern: RegExp): number[] {
  const out = new Set<number>();
  for (const n of names) {
    const m = pattern.exec(n);
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

/** Transformer blocks inside the attention module at `prefix` (0 when there is none). */
function depthAt(names: readonly string[], prefix: string): number {
  const esc = prefix.replace(/\./g, '\\.');
  return indices(names, new RegExp(`^${esc}transformer_blocks\\.(\\d+)\\.`)).length;
}

/** Per level: one number when every layer agrees (diffusers' usual form), else one per layer. */
function compact(perLayer: number[][]): number[] | number[][] {
  return perLayer.every((l) => l.every((d) => d === l[0])) ? perLayer.map((l) => l[0] ?? 1) : perLayer;
}

export interface UnetHints {
  /** The pooled text embedding width (text_encoder_2's projection_dim), for addition_time_embed_dim. */
  pooledDim?: number;
}

/** Maps an SGM UNet (names without `model.diffusion_model.`) and infers its diffusers config. */
export function mapSgmUnet(shapes: Shapes, hints: UnetHints = {}): MappedComponent {
  const names = [...shapes.keys()];
  const blocks = indices(names, /^input_blocks\.(\d+)\./);
  const downs = blocks.filter((i) => shapes.has(`input_blocks.${i}.0.op.weight`));
  const levels = downs.length + 1;
  const layers = downs.length > 0 ? downs[0]! - 1 : blocks.length - 1;
  if (layers < 1) bad('no resnets before the first downsampler');
  const stride = layers + 1;
  if (blocks.length !== levels * stride || downs.some((d, b) => d !== (b + 1) * stride)) {
    bad(`input blocks ${blocks.join(',')} with downsamplers at ${downs.join(',')} do not form ${levels} levels of ${layers} layers`);
  }
  const outputs = indices(names, /^output_blocks\.(\d+)\./);
  if (outputs.length !== levels * stride) bad(`${outputs.length} output blocks, expected ${levels * stride}`);

  const table = new Map<string, MappedTensor>();
  const unmapped: string[] = [];
  const put = (to: string, from: string): void => {
    if (table.has(to)) bad(`two tensors map to ${to}`);
    table.set(to, { source: from, derive: { kind: 'copy' } });
  };
  for (const name of names) {
    const target = targetName(name, stride);
    if (target === undefined) unmapped.push(name);
    else put(target, name);
  }
  if (unmapped.length > 0) {
    throw new EngineError('unsupported_checkpoint',
      `the UNet has tensors Likeness does not know how to map (${unmapped.length}, e.g. ${unmapped.slice(0, 3).join(', ')}): not an SDXL UNet?`);
  }

  // ---- the config, from shapes ----
  const [c0, inChannels, kIn] = shape(shapes, 'input_blocks.0.0.weight') as number[];
  const [outChannels, , kOut] = shape(shapes, 'out.2.weight') as number[];
  const blockOut: number[] = [];
  const downDepths: number[][] = [];
  for (let b = 0; b < levels; b++) {
    const first = 1 + b * stride;
    blockOut.push(shape(shapes, `input_blocks.${first}.0.in_layers.2.weight`)[0]!);
    downDepths.push(Array.from({ length: layers }, (_, j) => depthAt(names, `input_blocks.${first + j}.1.`)));
  }
  const upDepths = Array.from({ length: levels }, (_, u) =>
    Array.from({ length: stride }, (_, j) => depthAt(names, `output_blocks.${u * stride + j}.1.`)));
  const midDepth = depthAt(names, 'middle_block.1.');
  if (midDepth === 0) throw new EngineError('unsupported_checkpoint', 'the UNet has no mid-block transformer (not an SDXL UNet)');
  const hasAttn = (d: number[]): boolean => d.some((x) => x > 0);
  for (const [i, d] of [...downDepths, ...upDepths].entries()) {
    if (hasAttn(d) && d.some((x) => x === 0)) bad(`block ${i} has attention in some layers only`);
  }
  // Levels without attention get a placeholder depth: 1, or the mid block's for the last level
  // (diffusers builds the mid block with transformer_layers_per_block[-1]).
  const down = downDepths.map((d, b) => (hasAttn(d) ? d : d.map(() => (b === levels - 1 ? midDepth : 1))));
  if (down[levels - 1]!.some((x) => x !== midDepth)) {
    throw new EngineError('unsupported_checkpoint',
      `the mid block has ${midDepth} transformer layers but the last level has ${down[levels - 1]!.join('/')}: diffusers' UNet cannot express that`);
  }
  const transformerLayers = compact(down);
  const uniform = transformerLayers.every((x) => typeof x === 'number');
  const reversedDefault = [...down].reverse().map((d) => d[0]!);
  const up = upDepths.map((d, u) => (hasAttn(d) ? d : d.map(() => reversedDefault[u]!)));
  const reverseMatches = uniform && up.every((d, u) => d.every((x) => x === reversedDefault[u]));

  const someAttn2 = names.find((n) => /\.attn2\.to_k\.weight$/.test(n));
  const crossAttentionDim = someAttn2 ? shapes.get(someAttn2)![1]! : bad('no cross-attention (attn2) found');
  const projIn = names.find((n) => /\.proj_in\.weight$/.test(n))!;
  const [timeEmbedDim, timeProjDim] = shape(shapes, 'time_embed.0.weight') as number[];
  if (timeProjDim !== c0) bad(`time_embed.0 takes ${timeProjDim} features, diffusers feeds block_out_channels[0] = ${c0}`);
  const [, addIn] = shape(shapes, 'label_emb.0.0.weight') as number[];
  const assumed = ['attention_head_dim', 'norm_num_groups', 'norm_eps', 'sample_size', 'flip_sin_to_cos', 'freq_shift', 'act_fn', 'upcast_attention'];
  const pooled = hints.pooledDim ?? 1280;
  if (hints.pooledDim === undefined) assumed.push('addition_time_embed_dim');
  const timeIdsDim = (addIn! - pooled) / 6;
  if (!Number.isInteger(timeIdsDim) || timeIdsDim <= 0) {
    bad(`label_emb takes ${addIn} features, which is not the pooled text width ${pooled} plus six time-id embeddings`);
  }

  const config: ModelConfig = {
    _class_name: 'UNet2DConditionModel',
    sample_size: 128,
    in_channels: inChannels,
    out_channels: outChannels,
    down_block_types: downDepths.map((d) => (hasAttn(d) ? 'CrossAttnDownBlock2D' : 'DownBlock2D')),
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    up_block_types: upDepths.map((d) => (hasAttn(d) ? 'CrossAttnUpBlock2D' : 'UpBlock2D')),
    block_out_channels: blockOut,
    layers_per_block: layers,
    transformer_layers_per_block: transformerLayers,
    reverse_transformer_layers_per_block: reverseMatches ? null : up,
    // Heads are not in the shapes: SGM's SDXL uses 64-channel heads (320/640/1280 → 5/10/20).
    attention_head_dim: blockOut.map((c) => (c % 64 === 0 ? c / 64 : 1)),
    num_attention_heads: null,
    cross_attention_dim: crossAttentionDim,
    use_linear_projection: shape(shapes, projIn).length === 2,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    act_fn: 'silu',
    flip_sin_to_cos: true,
    freq_shift: 0,
    upcast_attention: false,
    time_embedding_dim: timeEmbedDim === 4 * c0! ? null : timeEmbedDim,
    addition_embed_type: 'text_time',
    addition_time_embed_dim: timeIdsDim,
    projection_class_embeddings_input_dim: addIn,
    conv_in_kernel: kIn,
    conv_out_kernel: kOut,
  };
  return { table, config, assumed };
}

/** The diffusers name of one SGM UNet tensor, or undefined when it is not part of the layout. */
function targetName(name: string, stride: number): string | undefined {
  for (const [from, to] of Object.entries(DIRECT)) if (name.startsWith(from)) return to + name.slice(from.length);
  let m = /^input_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const i = Number(m[1]);
    const sub = Number(m[2]);
    const rest = m[3]!;
    const b = Math.floor((i - 1) / stride);
    const j = (i - 1) % stride;
    if (j === stride - 1) return sub === 0 && rest.startsWith('op.') ? `down_blocks.${b}.downsamplers.0.conv.${rest.slice(3)}` : undefined;
    if (sub === 0) return withResnet(`down_blocks.${b}.resnets.${j}.`, rest);
    return sub === 1 ? `down_blocks.${b}.attentions.${j}.${rest}` : undefined;
  }
  m = /^middle_block\.([012])\.(.+)$/.exec(name);
  if (m) {
    if (m[1] === '1') return `mid_block.attentions.0.${m[2]}`;
    return withResnet(`mid_block.resnets.${m[1] === '0' ? 0 : 1}.`, m[2]!);
  }
  m = /^output_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const i = Number(m[1]);
    const sub = Number(m[2]);
    const rest = m[3]!;
    const prefix = `up_blocks.${Math.floor(i / stride)}.`;
    if (sub === 0) return withResnet(`${prefix}resnets.${i % stride}.`, rest);
    if (rest.startsWith('conv.')) return `${prefix}upsamplers.0.${rest}`;
    return sub === 1 ? `${prefix}attentions.${i % stride}.${rest}` : undefined;
  }
  return undefined;
}

function withResnet(prefix: string, rest: string): string | undefined {
  const r = resnetName(rest);
  return r === undefined ? undefined : prefix + r;
}
