// Which weights a LoRA may patch, and every name LoRA files use for them.
//
// A target table lists, per model component, the modules a LoRA can patch (diffusers / transformers
// path → weight shape). It is derived from the model's config by the same arithmetic diffusers uses to
// build the model (or read off the base weights themselves), never from the names a LoRA file holds.
// Each module is then reachable under its aliases, all "flat" (dots → underscores, as kohya writes):
//   - the diffusers / transformers path itself (kohya SD-style `lora_unet_down_blocks_…`, PEFT
//     `unet.down_blocks.….lora_A`, text encoders `lora_te1_text_model_encoder_layers_…`);
//   - for the UNet, the SGM (original SDXL) path kohya sd-scripts trains SDXL on
//     (`lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q`), by block arithmetic below.
import { EngineError } from '../errors.js';
import type { SdxlModel } from './keymaps/source.js';

export type LoraComponent = 'unet' | 'text_encoder' | 'text_encoder_2';
export const LORA_COMPONENTS: readonly LoraComponent[] = ['unet', 'text_encoder', 'text_encoder_2'];

/** What a LoRA may patch in one component: module path (no `.weight`) → weight shape. */
export interface LoraTargetTable {
  modules: ReadonlyMap<string, readonly number[]>;
  /** Flat name (dots as underscores) → module path. */
  aliases: ReadonlyMap<string, string>;
}

export type LoraTargets = Partial<Record<LoraComponent, LoraTargetTable>>;

/** The UNet structure SGM names depend on. */
export interface UnetLayout {
  layersPerBlock: number;
  /** Per down block, in order: whether it has attentions (CrossAttnDownBlock2D). */
  downAttention: readonly boolean[];
  /** Per up block, in order: whether it has attentions (CrossAttnUpBlock2D). */
  upAttention: readonly boolean[];
}

type Config = Record<string, unknown>;

function bad(what: string): never {
  throw new EngineError('bad_config', `LoRA targets: the model config ${what}`);
}

function int(config: Config, key: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : bad(`has no usable ${key} (${JSON.stringify(v)})`);
}

function strings(config: Config, key: string): string[] {
  const v = config[key];
  return Array.isArray(v) && v.every((s): s is string => typeof s === 'string') ? v : bad(`has no usable ${key}`);
}

/** A per-block setting given as one number or one per block. */
function perBlock(config: Config, key: string, blocks: number, fallback?: number): number[] {
  const v = config[key] ?? fallback;
  if (typeof v === 'number') return Array.from({ length: blocks }, () => v);
  if (Array.isArray(v) && v.length === blocks && v.every((x) => typeof x === 'number')) return v as number[];
  return bad(`has an unusable ${key} (${JSON.stringify(v)})`);
}

const hasAttention = (blockType: string): boolean => blockType.startsWith('CrossAttn');

export function unetLayout(config: Config): UnetLayout {
  if (Array.isArray(config.layers_per_block)) bad('has a per-block layers_per_block, which SGM LoRA names cannot address');
  return {
    layersPerBlock: int(config, 'layers_per_block'),
    downAttention: strings(config, 'down_block_types').map(hasAttention),
    upAttention: strings(config, 'up_block_types').map(hasAttention),
  };
}

/**
 * The LoRA-patchable modules of a diffusers UNet2DConditionModel (SDXL family) with their weight
 * shapes, built the way the model builds itself: every Linear and Conv2d outside the norms.
 */
export function unetModules(config: Config): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const channels = config.block_out_channels;
  if (!Array.isArray(channels) || channels.length === 0 || !channels.every((c) => typeof c === 'number')) bad('has no block_out_channels');
  const ch = channels as number[];
  const n = ch.length;
  const downTypes = strings(config, 'down_block_types');
  const upTypes = strings(config, 'up_block_types');
  if (downTypes.length !== n || upTypes.length !== n) bad('lists a block type count unlike block_out_channels');
  const L = int(config, 'layers_per_block');
  const depth = perBlock(config, 'transformer_layers_per_block', n, 1);
  const upDepth = config.reverse_transformer_layers_per_block == null ? [...depth].reverse() : perBlock(config, 'reverse_transformer_layers_per_block', n);
  const cross = perBlock(config, 'cross_attention_dim', n);
  const linearProj = config.use_linear_projection === true;
  const temb = typeof config.time_embedding_dim === 'number' ? config.time_embedding_dim : ch[0]! * 4;
  const kIn = int(config, 'conv_in_kernel', 3);
  const kOut = int(config, 'conv_out_kernel', 3);

  const conv = (name: string, out: number, inp: number, k: number): void => void m.set(name, [out, inp, k, k]);
  const linear = (name: string, out: number, inp: number): void => void m.set(name, [out, inp]);
  const resnet = (p: string, inp: number, out: number): void => {
    conv(`${p}.conv1`, out, inp, 3);
    linear(`${p}.time_emb_proj`, out, temb);
    conv(`${p}.conv2`, out, out, 3);
    if (inp !== out) conv(`${p}.conv_shortcut`, out, inp, 1);
  };
  const transformer = (p: string, c: number, layers: number, crossDim: number): void => {
    const proj = (name: string): void => (linearProj ? linear(name, c, c) : conv(name, c, c, 1));
    proj(`${p}.proj_in`);
    for (let t = 0; t < layers; t++) {
      const b = `${p}.transformer_blocks.${t}`;
      for (const attn of ['attn1', 'attn2']) {
        const kv = attn === 'attn1' ? c : crossDim;
        linear(`${b}.${attn}.to_q`, c, c);
        linear(`${b}.${attn}.to_k`, c, kv);
        linear(`${b}.${attn}.to_v`, c, kv);
        linear(`${b}.${attn}.to_out.0`, c, c);
      }
      linear(`${b}.ff.net.0.proj`, c * 8, c); // GEGLU: 2 × (4c)
      linear(`${b}.ff.net.2`, c, c * 4);
    }
    proj(`${p}.proj_out`);
  };

  conv('conv_in', ch[0]!, int(config, 'in_channels'), kIn);
  linear('time_embedding.linear_1', temb, ch[0]!);
  linear('time_embedding.linear_2', temb, temb);
  if (config.addition_embed_type === 'text_time') {
    linear('add_embedding.linear_1', temb, int(config, 'projection_class_embeddings_input_dim'));
    linear('add_embedding.linear_2', temb, temb);
  }
  for (let b = 0; b < n; b++) {
    const out = ch[b]!;
    for (let j = 0; j < L; j++) {
      resnet(`down_blocks.${b}.resnets.${j}`, j === 0 ? ch[Math.max(b - 1, 0)]! : out, out);
      if (hasAttention(downTypes[b]!)) transformer(`down_blocks.${b}.attentions.${j}`, out, depth[b]!, cross[b]!);
    }
    if (b < n - 1) conv(`down_blocks.${b}.downsamplers.0.conv`, out, out, 3);
  }
  const midType = config.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : config.mid_block_type;
  if (typeof midType === 'string') {
    const c = ch[n - 1]!;
    resnet('mid_block.resnets.0', c, c);
    resnet('mid_block.resnets.1', c, c);
    if (midType.includes('CrossAttn')) transformer('mid_block.attentions.0', c, depth[n - 1]!, cross[n - 1]!);
  }
  const rev = [...ch].reverse();
  const revCross = [...cross].reverse();
  let prev = rev[0]!;
  for (let b = 0; b < n; b++) {
    const out = rev[b]!;
    const skipIn = rev[Math.min(b + 1, n - 1)]!;
    for (let j = 0; j <= L; j++) {
      const skip = j === L ? skipIn : out;
      resnet(`up_blocks.${b}.resnets.${j}`, (j === 0 ? prev : out) + skip, out);
      if (hasAttention(upTypes[b]!)) transformer(`up_blocks.${b}.attentions.${j}`, out, upDepth[b]!, revCross[b]!);
    }
    if (b < n - 1) conv(`up_blocks.${b}.upsamplers.0.conv`, out, out, 3);
    prev = out;
  }
  conv('conv_out', int(config, 'out_channels'), ch[0]!, kOut);
  return m;
}

/** The LoRA-patchable modules of a transformers CLIPTextModel(WithProjection): attention and MLP Linears. */
export function clipTextModules(config: Config, withProjection: boolean): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const D = int(config, 'hidden_size');
  const F = int(config, 'intermediate_size');
  for (let i = 0; i < int(config, 'num_hidden_layers'); i++) {
    const p = `text_model.encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) m.set(`${p}.self_attn.${proj}`, [D, D]);
    m.set(`${p}.mlp.fc1`, [F, D]);
    m.set(`${p}.mlp.fc2`, [D, F]);
  }
  if (withProjection) m.set('text_projection', [int(config, 'projection_dim', D), D]);
  return m;
}

/** Read access to a component's base weights (WeightSource and WeightsFile fit). */
export interface BaseWeights {
  names(): string[];
  info(name: string): { readonly shape: readonly number[] };
}

/** The patchable modules read off the base weights: every 2-D or 4-D `.weight` except embedding tables. */
export function modulesOfWeights(weights: BaseWeights): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const name of weights.names()) {
    if (!name.endsWith('.weight') || /(^|\.)(token_embedding|position_embedding)\.weight$/.test(name)) continue;
    const shape = weights.info(name).shape;
    if (shape.length === 2 || shape.length === 4) m.set(name.slice(0, -'.weight'.length), [...shape]);
  }
  return m;
}

export const flat = (name: string): string => name.replace(/\./g, '_');

const RESNET_SGM: Readonly<Record<string, string>> = {
  conv1: 'in_layers.2',
  conv2: 'out_layers.3',
  time_emb_proj: 'emb_layers.1',
  conv_shortcut: 'skip_connection',
};

/**
 * The SGM (original SDXL) path of a diffusers UNet module, or undefined for modules SGM lacks.
 * Input block i ≥ 1 is level (i−1) / (L+1), slot (i−1) mod (L+1), slot L being the downsampler;
 * output block i is level i / (L+1), slot i mod (L+1); in a block, `.0` is the resnet, `.1` the
 * transformer, and the upsampler conv follows them (`.2.conv` after a transformer, else `.1.conv`).
 */
export function sgmModuleName(module: string, layout: UnetLayout): string | undefined {
  const L = layout.layersPerBlock;
  const top: Readonly<Record<string, string>> = {
    conv_in: 'input_blocks.0.0',
    conv_out: 'out.2',
    'time_embedding.linear_1': 'time_embed.0',
    'time_embedding.linear_2': 'time_embed.2',
    'add_embedding.linear_1': 'label_emb.0.0',
    'add_embedding.linear_2': 'label_emb.0.2',
  };
  if (top[module]) return top[module];
  const inner = (kind: string, rest: string): string | undefined => (kind === 'attentions' ? rest : RESNET_SGM[rest]);
  let g = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(module);
  if (g) {
    const [b, j] = [Number(g[1]), Number(g[3])];
    const rest = inner(g[2]!, g[4]!);
    return rest && `input_blocks.${1 + b * (L + 1) + j}.${g[2] === 'resnets' ? 0 : 1}.${rest}`;
  }
  g = /^down_blocks\.(\d+)\.downsamplers\.0\.conv$/.exec(module);
  if (g) return `input_blocks.${1 + Number(g[1]) * (L + 1) + L}.0.op`;
  g = /^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(module);
  if (g) {
    const rest = inner(g[1]!, g[3]!);
    const slot = g[1] === 'attentions' ? 1 : Number(g[2]) * 2;
    return rest && `middle_block.${slot}.${rest}`;
  }
  g = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(module);
  if (g) {
    const [b, j] = [Number(g[1]), Number(g[3])];
    const rest = inner(g[2]!, g[4]!);
    return rest && `output_blocks.${b * (L + 1) + j}.${g[2] === 'resnets' ? 0 : 1}.${rest}`;
  }
  g = /^up_blocks\.(\d+)\.upsamplers\.0\.conv$/.exec(module);
  if (g) {
    const b = Number(g[1]);
    return `output_blocks.${b * (L + 1) + L}.${layout.upAttention[b] ? 2 : 1}.conv`;
  }
  return undefined;
}

function table(modules: Map<string, number[]>, extraAlias?: (module: string) => string | undefined): LoraTargetTable {
  const aliases = new Map<string, string>();
  for (const module of modules.keys()) {
    aliases.set(flat(module), module);
    const other = extraAlias?.(module);
    if (other !== undefined) aliases.set(flat(other), module);
  }
  return { modules, aliases };
}

export function unetTargetTable(config: Config, modules: Map<string, number[]> = unetModules(config)): LoraTargetTable {
  const layout = unetLayout(config);
  return table(modules, (module) => sgmModuleName(module, layout));
}

export function textEncoderTargetTable(modules: Map<string, number[]>): LoraTargetTable {
  return table(modules);
}

/** Configs of an SDXL pipeline's parts (diffusers unet/config.json, transformers text_encoder(_2)/config.json). */
export interface SdxlConfigs {
  unet?: Config;
  textEncoder?: Config;
  textEncoder2?: Config;
}

/** Target tables from configs alone (no weight file opened): enough to validate a LoRA before a run. */
export function loraTargetsFromConfigs(configs: SdxlConfigs): LoraTargets {
  const t: LoraTargets = {};
  if (configs.unet) t.unet = unetTargetTable(configs.unet);
  if (configs.textEncoder) t.text_encoder = textEncoderTargetTable(clipTextModules(configs.textEncoder, false));
  if (configs.textEncoder2) t.text_encoder_2 = textEncoderTargetTable(clipTextModules(configs.textEncoder2, true));
  return t;
}

/** Target tables from the base weights themselves (the UNet config still gives the SGM layout). */
export function loraTargetsFromWeights(base: {
  unet?: { config: Config; weights: BaseWeights };
  textEncoder?: BaseWeights;
  textEncoder2?: BaseWeights;
}): LoraTargets {
  const t: LoraTargets = {};
  if (base.unet) t.unet = unetTargetTable(base.unet.config, modulesOfWeights(base.unet.weights));
  if (base.textEncoder) t.text_encoder = textEncoderTargetTable(modulesOfWeights(base.textEncoder));
  if (base.textEncoder2) t.text_encoder_2 = textEncoderTargetTable(modulesOfWeights(base.textEncoder2));
  return t;
}

/** The target tables of an opened SDXL model (openSdxlModel): what its LoRAs are matched against. */
export function loraTargetsOfModel(model: Pick<SdxlModel, 'unet' | 'text_encoder' | 'text_encoder_2'>): LoraTargets {
  return loraTargetsFromWeights({
    unet: { config: model.unet.config, weights: model.unet.weights },
    textEncoder: model.text_encoder.weights,
    textEncoder2: model.text_encoder_2.weights,
  });
}
