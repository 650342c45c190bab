// SDXL's two text encoders in a single-file checkpoint → transformers names and configs.
//
// text_encoder (CLIP ViT-L, conditioner.embedders.0.transformer.*) is already in transformers naming
// (text_model.*): only the prefix goes. text_encoder_2 (OpenCLIP ViT-bigG, conditioner.embedders.1.model.*):
//   token_embedding.weight                → text_model.embeddings.token_embedding.weight
//   positional_embedding                  → text_model.embeddings.position_embedding.weight
//   transformer.resblocks.n.ln_1 / ln_2   → text_model.encoder.layers.n.layer_norm1 / layer_norm2
//   ….attn.in_proj_weight / in_proj_bias  → ….self_attn.{q,k,v}_proj.weight / .bias (three row blocks, q k v)
//   ….attn.out_proj                       → ….self_attn.out_proj
//   ….mlp.c_fc / mlp.c_proj               → ….mlp.fc1 / mlp.fc2
//   ln_final                              → text_model.final_layer_norm
//   text_projection [hidden, proj]        → text_projection.weight [proj, hidden] (OpenCLIP computes x·P)
// logit_scale, position_ids and attn_mask buffers are dropped.
import { EngineError } from '../../errors.js';
import type { MappedComponent, Shapes } from './sgm-unet.js';
import type { MappedTensor, ModelConfig } from './source.js';

const IGNORED = /^(logit_scale|attn_mask|text_model\.embeddings\.position_ids)$/;

const bad = (which: string, why: string): never => {
  throw new EngineError('bad_checkpoint', `the ${which} in this checkpoint is not a CLIP text transformer: ${why}`);
};

/** Heads are not in the shapes: CLIP ViT-L and OpenCLIP bigG both use 64-wide heads (768/64, 1280/64). */
function conventionalHeads(hidden: number): number {
  return hidden % 64 === 0 ? hidden / 64 : 1;
}

function layerCount(names: readonly string[]): number {
  const seen = new Set<number>();
  for (const n of names) {
    const m = /^text_model\.encoder\.layers\.(\d+)\./.exec(n);
    if (m) seen.add(Number(m[1]));
  }
  for (let i = 0; i < seen.size; i++) if (!seen.has(i)) throw new EngineError('bad_checkpoint', `text encoder layer ${i} is missing`);
  return seen.size;
}

/** transformers CLIPTextConfig for the mapped weights (`shapes` under transformers names). */
function clipConfig(which: string, shapes: Shapes, hiddenAct: 'quick_gelu' | 'gelu', withProjection: boolean): { config: ModelConfig; assumed: string[] } {
  const dims = (name: string): readonly number[] => shapes.get(name) ?? bad(which, `it has no ${name}`);
  const [vocab, hidden] = dims('text_model.embeddings.token_embedding.weight') as [number, number];
  const layers = layerCount([...shapes.keys()]);
  if (layers === 0) bad(which, 'it has no layers');
  const assumed = ['num_attention_heads', 'hidden_act', 'layer_norm_eps', 'bos_token_id', 'eos_token_id', 'pad_token_id'];
  const projection = shapes.get('text_projection.weight');
  if (withProjection && !projection) bad(which, 'it has no text_projection');
  if (!projection) assumed.push('projection_dim');
  const config: ModelConfig = {
    architectures: [withProjection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'],
    model_type: 'clip_text_model',
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: dims('text_model.encoder.layers.0.mlp.fc1.weight')[0],
    num_hidden_layers: layers,
    num_attention_heads: conventionalHeads(hidden),
    max_position_embeddings: dims('text_model.embeddings.position_embedding.weight')[0],
    projection_dim: projection ? projection[0] : hidden,
    hidden_act: hiddenAct,
    layer_norm_eps: 1e-5,
    attention_dropout: 0,
    dropout: 0,
    // transformers' defaults, as in SDXL's released configs; eos 2 selects argmax pooling.
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  };
  return { config, assumed };
}

function mapped(which: string, names: readonly string[], rename: (name: string) => [string, MappedTensor][] | undefined): Map<string, MappedTensor> {
  const table = new Map<string, MappedTensor>();
  const unmapped: string[] = [];
  for (const name of names) {
    if (IGNORED.test(name)) continue;
    const targets = rename(name);
    if (!targets) {
      unmapped.push(name);
      continue;
    }
    for (const [to, t] of targets) {
      if (table.has(to)) bad(which, `two tensors map to ${to}`);
      table.set(to, t);
    }
  }
  if (unmapped.length > 0) {
    throw new EngineError('unsupported_checkpoint',
      `the ${which} has tensors Likeness does not know how to map (${unmapped.length}, e.g. ${unmapped.slice(0, 3).join(', ')})`);
  }
  return table;
}

function shapesOf(table: ReadonlyMap<string, MappedTensor>, source: Shapes): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  for (const [to, { source: from, derive }] of table) {
    const s = source.get(from)!;
    out.set(to, derive.kind === 'rows' ? [derive.end - derive.start, ...s.slice(1)] : derive.kind === 'transpose' ? [s[1]!, s[0]!] : s);
  }
  return out;
}

/** CLIP ViT-L as stored by SGM (names without `conditioner.embedders.0.transformer.`): a prefix strip. */
export function mapHfClip(shapes: Shapes): MappedComponent {
  const which = 'first text encoder (CLIP ViT-L)';
  const table = mapped(which, [...shapes.keys()], (name) =>
    name.startsWith('text_model.') || name === 'text_projection.weight' ? [[name, { source: name, derive: { kind: 'copy' } }]] : undefined);
  return { table, ...clipConfig(which, shapesOf(table, shapes), 'quick_gelu', false) };
}

const OPEN_CLIP_LAYER: readonly [RegExp, string][] = [
  [/^ln_1\.(weight|bias)$/, 'layer_norm1.$1'],
  [/^ln_2\.(weight|bias)$/, 'layer_norm2.$1'],
  [/^attn\.out_proj\.(weight|bias)$/, 'self_attn.out_proj.$1'],
  [/^mlp\.c_fc\.(weight|bias)$/, 'mlp.fc1.$1'],
  [/^mlp\.c_proj\.(weight|bias)$/, 'mlp.fc2.$1'],
];

/** OpenCLIP ViT-bigG (names without `conditioner.embedders.1.model.`) → CLIPTextModelWithProjection. */
export function mapOpenClip(shapes: Shapes): MappedComponent {
  const which = 'second text encoder (OpenCLIP ViT-bigG)';
  const copy = (source: string): MappedTensor => ({ source, derive: { kind: 'copy' } });
  const table = mapped(which, [...shapes.keys()], (name) => {
    switch (name) {
      case 'token_embedding.weight': return [['text_model.embeddings.token_embedding.weight', copy(name)]];
      case 'positional_embedding': return [['text_model.embeddings.position_embedding.weight', copy(name)]];
      case 'ln_final.weight': return [['text_model.final_layer_norm.weight', copy(name)]];
      case 'ln_final.bias': return [['text_model.final_layer_norm.bias', copy(name)]];
      case 'text_projection': return [['text_projection.weight', { source: name, derive: { kind: 'transpose' } }]];
    }
    const m = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(name);
    if (!m) return undefined;
    const layer = `text_model.encoder.layers.${m[1]}.`;
    const rest = m[2]!;
    const fused = /^attn\.in_proj_(weight|bias)$/.exec(rest);
    if (fused) {
      const rows = shapes.get(name)![0]!;
      if (rows % 3 !== 0) bad(which, `${name} has ${rows} rows, not three equal blocks`);
      const n = rows / 3;
      return (['q', 'k', 'v'] as const).map((p, i): [string, MappedTensor] =>
        [`${layer}self_attn.${p}_proj.${fused[1]}`, { source: name, derive: { kind: 'rows', start: i * n, end: (i + 1) * n } }]);
    }
    for (const [re, to] of OPEN_CLIP_LAYER) if (re.test(rest)) return [[layer + rest.replace(re, to), copy(name)]];
    return undefined;
  });
  return { table, ...clipConfig(which, shapesOf(table, shapes), 'gelu', true) };
}
