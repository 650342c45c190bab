// The parameter names and shapes of diffusers' AutoencoderKL and of transformers'
// CLIPTextModel(WithProjection) for a given config: what `model.state_dict()` holds for a freshly
// initialised model (the UNet's table is nets/unet-shapes.ts). Used to write random-weight models
// (the smoke set, benchmarks); smoke.ts checks every table against the engine's graph builders, so a
// table and the builders cannot drift apart unnoticed.
import { parseClipTextConfig } from '../nets/clip-config.js';
import type { VaeConfig } from '../nets/vae-config.js';

/** Parameter name → shape, in state-dict order. */
export type StateShapes = Map<string, number[]>;

class Table {
  readonly shapes: StateShapes = new Map();

  put(name: string, shape: number[]): void {
    this.shapes.set(name, shape);
  }

  /** nn.Linear: weight [out, in] and (optionally) bias [out]. */
  linear(name: string, out: number, inp: number, bias = true): void {
    this.put(`${name}.weight`, [out, inp]);
    if (bias) this.put(`${name}.bias`, [out]);
  }

  conv(name: string, out: number, inp: number, kernel: number): void {
    this.put(`${name}.weight`, [out, inp, kernel, kernel]);
    this.put(`${name}.bias`, [out]);
  }

  /** GroupNorm / LayerNorm: weight and bias [channels]. */
  norm(name: string, channels: number): void {
    this.put(`${name}.weight`, [channels]);
    this.put(`${name}.bias`, [channels]);
  }
}

/** AutoencoderKL: encoder, quant_conv, post_quant_conv, decoder. */
export function vaeStateShapes(cfg: VaeConfig): StateShapes {
  const t = new Table();
  const boc = cfg.blockOutChannels;
  const last = boc[boc.length - 1]!;
  const L = cfg.latentChannels;

  const resnet = (name: string, cin: number, cout: number): void => {
    t.norm(`${name}.norm1`, cin);
    t.conv(`${name}.conv1`, cout, cin, 3);
    t.norm(`${name}.norm2`, cout);
    t.conv(`${name}.conv2`, cout, cout, 3);
    if (cin !== cout) t.conv(`${name}.conv_shortcut`, cout, cin, 1);
  };
  const mid = (name: string): void => {
    resnet(`${name}.resnets.0`, last, last);
    if (cfg.midBlockAddAttention) {
      const a = `${name}.attentions.0`;
      t.norm(`${a}.group_norm`, last);
      for (const p of ['to_q', 'to_k', 'to_v', 'to_out.0']) t.linear(`${a}.${p}`, last, last);
    }
    resnet(`${name}.resnets.1`, last, last);
  };

  t.conv('encoder.conv_in', boc[0]!, cfg.inChannels, 3);
  let channels = boc[0]!;
  boc.forEach((out, i) => {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(`encoder.down_blocks.${i}.resnets.${j}`, channels, out);
      channels = out;
    }
    if (i < boc.length - 1) t.conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  });
  mid('encoder.mid_block');
  t.norm('encoder.conv_norm_out', last);
  t.conv('encoder.conv_out', 2 * L, last, 3);
  if (cfg.useQuantConv) t.conv('quant_conv', 2 * L, 2 * L, 1);
  if (cfg.usePostQuantConv) t.conv('post_quant_conv', L, L, 1);

  t.conv('decoder.conv_in', last, L, 3);
  mid('decoder.mid_block');
  channels = last;
  for (let i = 0; i < boc.length; i++) {
    const out = boc[boc.length - 1 - i]!;
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      resnet(`decoder.up_blocks.${i}.resnets.${j}`, channels, out);
      channels = out;
    }
    if (i < boc.length - 1) t.conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  }
  t.norm('decoder.conv_norm_out', boc[0]!);
  t.conv('decoder.conv_out', cfg.outChannels, boc[0]!, 3);
  return t.shapes;
}

/** CLIPTextModel (or ...WithProjection) from its transformers config dict. */
export function clipStateShapes(configDict: Record<string, unknown>, withProjection: boolean): StateShapes {
  const cfg = parseClipTextConfig(configDict);
  const t = new Table();
  const D = cfg.hiddenSize;
  t.put('text_model.embeddings.token_embedding.weight', [cfg.vocabSize, D]);
  t.put('text_model.embeddings.position_embedding.weight', [cfg.maxPositionEmbeddings, D]);
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const l = `text_model.encoder.layers.${i}`;
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) t.linear(`${l}.self_attn.${p}`, D, D);
    t.norm(`${l}.layer_norm1`, D);
    t.linear(`${l}.mlp.fc1`, cfg.intermediateSize, D);
    t.linear(`${l}.mlp.fc2`, D, cfg.intermediateSize);
    t.norm(`${l}.layer_norm2`, D);
  }
  t.norm('text_model.final_layer_norm', D);
  if (withProjection) t.put('text_projection.weight', [cfg.projectionDim ?? D, D]);
  return t.shapes;
}
