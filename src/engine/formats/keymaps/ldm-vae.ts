// LDM VAE names (first_stage_model.*) → diffusers AutoencoderKL names, and the config from shapes.
//
//   {encoder,decoder}.norm_out           → conv_norm_out
//   encoder.down.i.block.j               → encoder.down_blocks.i.resnets.j   (nin_shortcut → conv_shortcut)
//   encoder.down.i.downsample.conv       → encoder.down_blocks.i.downsamplers.0.conv
//   decoder.up.k.block.j                 → decoder.up_blocks.(N−1−k).resnets.j   (LDM counts up from the latent's
//   decoder.up.k.upsample.conv           → decoder.up_blocks.(N−1−k).upsamplers.0.conv   finest level: reversed)
//   *.mid.block_1/2                      → *.mid_block.resnets.0/1
//   *.mid.attn_1.{norm,q,k,v,proj_out}   → *.mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}
//                                          (q/k/v/proj_out are 1×1 conv kernels in LDM, Linear in diffusers)
//   conv_in, conv_out, quant_conv, post_quant_conv keep their names.
import { EngineError } from '../../errors.js';
import type { MappedComponent, Shapes } from './sgm-unet.js';
import type { MappedTensor, ModelConfig } from './source.js';

const ATTN: Readonly<Record<string, string>> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };

const bad = (why: string): never => {
  throw new EngineError('bad_checkpoint', `the VAE in this checkpoint is not laid out as an LDM AutoencoderKL: ${why}`);
};

function count(names: readonly string[], pattern: RegExp): number {
  const seen = new Set<string>();
  for (const n of names) {
    const m = pattern.exec(n);
    if (m) seen.add(m[1]!);
  }
  return seen.size;
}

function resnetRest(rest: string): string {
  return rest.startsWith('nin_shortcut.') ? `conv_shortcut.${rest.slice('nin_shortcut.'.length)}` : rest;
}

/** [diffusers name, whether it is a 1×1 conv kernel read as a Linear weight]. */
function target(name: string, levels: number): [string, boolean] | undefined {
  let m = /^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/.exec(name) ?? /^(quant_conv|post_quant_conv)\.(weight|bias)$/.exec(name);
  if (m) return [name, false];
  m = /^(encoder|decoder)\.norm_out\.(weight|bias)$/.exec(name);
  if (m) return [`${m[1]}.conv_norm_out.${m[2]}`, false];
  m = /^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/.exec(name);
  if (m) return [`encoder.down_blocks.${m[1]}.resnets.${m[2]}.${resnetRest(m[3]!)}`, false];
  m = /^encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)$/.exec(name);
  if (m) return [`encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`, false];
  m = /^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/.exec(name);
  if (m) return [`decoder.up_blocks.${levels - 1 - Number(m[1])}.resnets.${m[2]}.${resnetRest(m[3]!)}`, false];
  m = /^decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$/.exec(name);
  if (m) return [`decoder.up_blocks.${levels - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`, false];
  m = /^(encoder|decoder)\.mid\.block_([12])\.(.+)$/.exec(name);
  if (m) return [`${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${resnetRest(m[3]!)}`, false];
  m = /^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/.exec(name);
  if (m) return [`${m[1]}.mid_block.attentions.0.${ATTN[m[2]!]}.${m[3]}`, m[2] !== 'norm' && m[3] === 'weight'];
  return undefined;
}

/** Maps an LDM VAE (names without `first_stage_model.`) and infers its AutoencoderKL config. */
export function mapLdmVae(shapes: Shapes): MappedComponent {
  const names = [...shapes.keys()];
  const levels = count(names, /^encoder\.down\.(\d+)\./);
  const upLevels = count(names, /^decoder\.up\.(\d+)\./);
  if (levels === 0) bad('it has no encoder.down blocks');
  if (upLevels !== levels) bad(`${levels} encoder levels but ${upLevels} decoder levels`);
  const layers = count(names, /^encoder\.down\.0\.block\.(\d+)\./);
  for (let k = 0; k < levels; k++) {
    const n = count(names, new RegExp(`^decoder\\.up\\.${k}\\.block\\.(\\d+)\\.`));
    if (n !== layers + 1) bad(`decoder.up.${k} has ${n} resnets, expected ${layers + 1}`);
  }
  const table = new Map<string, MappedTensor>();
  const unmapped: string[] = [];
  for (const name of names) {
    const t = target(name, levels);
    if (!t) {
      unmapped.push(name);
      continue;
    }
    if (table.has(t[0])) bad(`two tensors map to ${t[0]}`);
    table.set(t[0], { source: name, derive: t[1] ? { kind: 'squeeze' } : { kind: 'copy' } });
  }
  if (unmapped.length > 0) {
    throw new EngineError('unsupported_checkpoint',
      `the VAE has tensors Likeness does not know how to map (${unmapped.length}, e.g. ${unmapped.slice(0, 3).join(', ')})`);
  }
  const dim = (name: string, axis: number): number => (shapes.get(name) ?? bad(`it has no ${name}`))[axis]!;
  const config: ModelConfig = {
    _class_name: 'AutoencoderKL',
    in_channels: dim('encoder.conv_in.weight', 1),
    out_channels: dim('decoder.conv_out.weight', 0),
    down_block_types: new Array<string>(levels).fill('DownEncoderBlock2D'),
    up_block_types: new Array<string>(levels).fill('UpDecoderBlock2D'),
    block_out_channels: Array.from({ length: levels }, (_, i) => dim(`encoder.down.${i}.block.0.conv1.weight`, 0)),
    layers_per_block: layers,
    act_fn: 'silu',
    latent_channels: dim('decoder.conv_in.weight', 1),
    norm_num_groups: 32,
    sample_size: 1024,
    scaling_factor: 0.13025,
    shift_factor: null,
    latents_mean: null,
    latents_std: null,
    force_upcast: true,
    use_quant_conv: shapes.has('quant_conv.weight'),
    use_post_quant_conv: shapes.has('post_quant_conv.weight'),
    mid_block_add_attention: shapes.has('encoder.mid.attn_1.q.weight'),
  };
  // Not in the shapes: SDXL's VAE config values (its scaling factor, 32 groups, float32 upcast).
  const assumed = ['norm_num_groups', 'sample_size', 'scaling_factor', 'shift_factor', 'latents_mean', 'latents_std', 'force_upcast', 'act_fn'];
  return { table, config, assumed };
}
