// One component folder of a diffusers model (`<root>/unet/`, `<root>/controlnet/`, `<root>/vae/`, …):
// its config.json and its weights in any of the layouts diffusers and transformers write —
// diffusion_pytorch_model[.fp16].safetensors for diffusers models, model[.fp16].safetensors for
// transformers ones, shards listed by an index json, or torch .bin. The only place that knows these
// file names: whole SDXL folders (diffusers-folder.ts) and single nets (findComponent) both look here.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EngineError } from '../errors.js';
import { parsePythonJson } from './pyjson.js';

/** Which weights to prefer when both exist: full precision (default) or the fp16 variant. */
export type WeightsVariant = 'fp16' | undefined;

/** A component's weight files: one, or the shards an index lists (then `index` is the index file). */
export interface ComponentWeights {
  weights: string[];
  index?: string;
}

export interface ComponentFiles extends ComponentWeights {
  dir: string;
  config: Record<string, unknown>;
}

/** What weightFileNames() covers, for error messages. */
export const WEIGHTS_LOOKED_FOR =
  'diffusion_pytorch_model[.fp16].safetensors, model[.fp16].safetensors, sharded *.safetensors.index.json, and .bin';

export const isDir = (path: string): boolean => existsSync(path) && statSync(path).isDirectory();

/** A JSON object file (Python-style NaN / Infinity allowed); EngineError 'bad_model_folder' otherwise. */
export function readJsonObject(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parsePythonJson(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new EngineError('bad_model_folder', `${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new EngineError('bad_model_folder', `${path} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * Weight file names to try in a component folder, best first: safetensors before .bin, the preferred
 * variant first, diffusers' name before transformers'. A variant index is spelled both ways seen in
 * the wild (diffusers' `*.safetensors.index.fp16.json` and `*.fp16.safetensors.index.json`).
 */
export function weightFileNames(variant: WeightsVariant): string[] {
  const out: string[] = [];
  const variants = variant === 'fp16' ? ['fp16', ''] : ['', 'fp16'];
  for (const ext of ['safetensors', 'bin']) {
    for (const v of variants) {
      for (const base of ['diffusion_pytorch_model', 'model']) {
        const dot = v ? `.${v}` : '';
        out.push(`${base}${dot}.${ext}`, `${base}.${ext}.index${dot}.json`);
        if (dot) out.push(`${base}${dot}.${ext}.index.json`);
      }
    }
  }
  return out;
}

/**
 * A shard index's weight_map (tensor name → shard file in the index's folder), checked: every entry
 * names a plain file name, and every shard exists.
 */
export function readShardIndex(dir: string, indexFile: string): Map<string, string> {
  const path = join(dir, indexFile);
  const map = readJsonObject(path).weight_map;
  if (typeof map !== 'object' || map === null) throw new EngineError('bad_model_folder', `${path} has no weight_map`);
  const out = new Map<string, string>();
  const seen = new Set<string>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new EngineError('bad_model_folder', `${indexFile}: ${name} points to ${JSON.stringify(shard)}, not a file in ${dir}`);
    }
    if (!seen.has(shard) && !existsSync(join(dir, shard))) throw new EngineError('missing_file', `${indexFile} lists shard ${shard}, which is not in ${dir}`);
    seen.add(shard);
    out.set(name, shard);
  }
  if (out.size === 0) throw new EngineError('bad_model_folder', `${path} lists no weight files`);
  return out;
}

/** The best weights in `dir` (see weightFileNames), or undefined when it has none. */
export function componentWeights(dir: string, variant: WeightsVariant): ComponentWeights | undefined {
  const file = weightFileNames(variant).find((f) => existsSync(join(dir, f)));
  if (!file) return undefined;
  if (!file.endsWith('.json')) return { weights: [join(dir, file)] };
  const shards = [...new Set(readShardIndex(dir, file).values())];
  return { weights: shards.map((s) => join(dir, s)), index: file };
}

/**
 * The component `name` ('unet', 'controlnet', …) of a diffusers folder: `path` is the model root
 * (with `name/` inside) or the component folder itself. `variant` 'fp16' prefers *.fp16.* files.
 */
export function findComponent(path: string, name: string, options: { variant?: 'fp16' } = {}): ComponentFiles {
  const abs = resolve(path);
  if (!isDir(abs)) {
    throw new EngineError('model_not_found', `${abs} is not a folder: give a diffusers model folder (with ${name}/) or the ${name} folder itself`);
  }
  const dir = existsSync(join(abs, name, 'config.json')) ? join(abs, name) : abs;
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new EngineError('model_not_found', `${dir} has no config.json (nor ${name}/config.json): it is not a diffusers ${name} folder`);
  const config = readJsonObject(configPath);
  const found = componentWeights(dir, options.variant);
  if (!found) throw new EngineError('model_not_found', `${dir} has a config.json but no weights (looked for ${WEIGHTS_LOOKED_FOR})`);
  return { dir, config, ...found };
}
