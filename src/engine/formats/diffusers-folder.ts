// A diffusers model folder (what save_pretrained writes and the Hub serves): model_index.json, one
// subfolder per component with config.json and its weights (found by diffusers-component.ts: single
// file, fp16 variant, shards listed by an index, .bin), plus tokenizer/, tokenizer_2/ and scheduler/.
// Opened into the same SdxlModel shape as a single-file checkpoint; weights are read lazily.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../errors.js';
import {
  WEIGHTS_LOOKED_FOR, componentWeights, isDir, readJsonObject, readShardIndex, type WeightsVariant,
} from './diffusers-component.js';
import { openSingleFile, type SingleFileOptions } from './single-file.js';
import { openWeights, type WeightsFile } from './weights.js';
import {
  SDXL_COMPONENTS, renamedSource,
  type ComponentName, type ModelComponent, type SdxlModel, type WeightSource,
} from './keymaps/source.js';

export type { ComponentName, ModelComponent, ModelConfig, SdxlModel, WeightSource } from './keymaps/source.js';

export interface DiffusersFolderOptions {
  /** Which weights to prefer when both exist: full precision (default) or the fp16 variant. */
  variant?: 'fp16';
}

/** Several shard files as one source, each tensor read from the shard the index puts it in. */
function shardedSource(dir: string, indexFile: string): { weights: WeightSource; files: WeightsFile[] } {
  const files = new Map<string, WeightsFile>();
  const owner = new Map<string, WeightsFile>();
  try {
    for (const [name, shard] of readShardIndex(dir, indexFile)) {
      let file = files.get(shard);
      if (!file) {
        file = openWeights(join(dir, shard));
        files.set(shard, file);
      }
      if (!file.has(name)) throw new EngineError('bad_model_folder', `${indexFile} puts ${name} in ${shard}, which does not hold it`);
      owner.set(name, file);
    }
  } catch (err) {
    for (const f of files.values()) f.close();
    throw err;
  }
  const fileOf = (name: string): WeightsFile => {
    const f = owner.get(name);
    if (!f) throw new EngineError('missing_tensor', `${dir} has no tensor named ${name}`);
    return f;
  };
  const weights: WeightSource = {
    names: () => [...owner.keys()],
    has: (name) => owner.has(name),
    info: (name) => fileOf(name).info(name),
    read: (name) => fileOf(name).read(name),
    readFloat32: (name) => fileOf(name).readFloat32(name),
  };
  return { weights, files: [...files.values()] };
}

/** Old diffusers VAEs name the mid-block attention query/key/value/proj_attn; diffusers renames on load. */
function legacyVaeAttention(name: string): string {
  return name.replace(/(mid_block\.attentions\.\d+)\.(query|key|value|proj_attn)\./, (_, head: string, part: string) =>
    `${head}.${{ query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' }[part]}.`);
}

function openComponent(root: string, name: ComponentName, variant: WeightsVariant, opened: WeightsFile[]): ModelComponent {
  const dir = join(root, name);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new EngineError('missing_component', `${dir} has no config.json`);
  const config = readJsonObject(configPath);
  const found = componentWeights(dir, variant);
  if (!found) throw new EngineError('missing_component', `${dir} has no weights (looked for ${WEIGHTS_LOOKED_FOR})`);
  let weights: WeightSource;
  if (found.index) {
    const sharded = shardedSource(dir, found.index);
    opened.push(...sharded.files);
    weights = sharded.weights;
  } else {
    const single = openWeights(found.weights[0]!);
    opened.push(single);
    weights = single;
  }
  if (name === 'vae' && weights.names().some((n) => legacyVaeAttention(n) !== n)) weights = renamedSource(weights, legacyVaeAttention);
  return { config, weights, assumed: [] };
}

/** Opens a diffusers SDXL folder; throws EngineError naming what is missing or why it is not SDXL. */
export function openDiffusersFolder(dir: string, options: DiffusersFolderOptions = {}): SdxlModel {
  const indexPath = join(dir, 'model_index.json');
  if (!existsSync(indexPath)) throw new EngineError('bad_model_folder', `${dir} is not a diffusers model folder: it has no model_index.json`);
  const index = readJsonObject(indexPath);
  const pipeline = typeof index._class_name === 'string' ? index._class_name : 'an unnamed pipeline';
  const declared = (c: string): boolean => Array.isArray(index[c]) && (index[c] as unknown[])[0] !== null;
  if (!declared('text_encoder_2') && declared('text_encoder') && declared('unet')) {
    throw new EngineError('unsupported_checkpoint',
      `${dir} holds ${pipeline} with one text encoder (a Stable Diffusion 1.x/2.x layout); Likeness runs SDXL (base-architecture) models`);
  }
  const missing = SDXL_COMPONENTS.filter((c) => !declared(c) || !isDir(join(dir, c)));
  if (missing.length > 0) {
    throw new EngineError('missing_component', `${dir} (${pipeline}) lacks ${missing.map((c) => `${c}/`).join(', ')}: an SDXL model needs unet, vae, text_encoder and text_encoder_2`);
  }
  const opened: WeightsFile[] = [];
  try {
    const [unet, vae, te1, te2] = SDXL_COMPONENTS.map((c) => openComponent(dir, c, options.variant, opened)) as [ModelComponent, ModelComponent, ModelComponent, ModelComponent];
    const schedulerPath = join(dir, 'scheduler', 'scheduler_config.json');
    const tokenizer = join(dir, 'tokenizer');
    const tokenizer2 = join(dir, 'tokenizer_2');
    return {
      path: dir,
      layout: 'diffusers',
      unet,
      vae,
      text_encoder: te1,
      text_encoder_2: te2,
      ...(isDir(tokenizer) ? { tokenizer } : {}),
      ...(isDir(tokenizer2) ? { tokenizer_2: tokenizer2 } : {}),
      ...(existsSync(schedulerPath) ? { scheduler: readJsonObject(schedulerPath) } : {}),
      close: () => { for (const f of opened) f.close(); },
    };
  } catch (err) {
    for (const f of opened) f.close();
    throw err;
  }
}

/** A model the user points at: a diffusers folder, or a single-file checkpoint. */
export function openSdxlModel(path: string, options: DiffusersFolderOptions & SingleFileOptions = {}): SdxlModel {
  if (!existsSync(path)) throw new EngineError('missing_file', `${path} does not exist`);
  return isDir(path) ? openDiffusersFolder(path, options) : openSingleFile(path, options);
}
