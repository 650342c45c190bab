// Finding a diffusers model component on disk: `<root>/unet/`, `<root>/controlnet/` or the component
// folder itself, with its config.json and weights in any of the layouts diffusers writes
// (single file, fp16 variant, sharded with an index, torch .bin).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EngineError } from '../errors.js';
import { parsePythonJson } from '../formats/pyjson.js';

export interface ComponentFiles {
  dir: string;
  config: Record<string, unknown>;
  /** Weight files (several when sharded). */
  weights: string[];
}

const BASE = 'diffusion_pytorch_model';

function shardedFiles(index: string): string[] {
  const json = parsePythonJson(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> };
  const files = [...new Set(Object.values(json.weight_map ?? {}))];
  if (files.length === 0) throw new EngineError('bad_model_files', `${index} lists no weight files`);
  return files.map((f) => join(dirname(index), f));
}

/**
 * The component `name` ('unet', 'controlnet', …) of a diffusers folder: `path` is the model root
 * (with `name/` inside) or the component folder itself. `variant` 'fp16' prefers *.fp16.* files.
 */
export function findComponent(path: string, name: string, options: { variant?: 'fp16' } = {}): ComponentFiles {
  const abs = resolve(path);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new EngineError('model_not_found', `${abs} is not a folder: give a diffusers model folder (with ${name}/) or the ${name} folder itself`);
  }
  const dir = existsSync(join(abs, name, 'config.json')) ? join(abs, name) : abs;
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new EngineError('model_not_found', `${dir} has no config.json (nor ${name}/config.json): it is not a diffusers ${name} folder`);
  const config = parsePythonJson(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  const variants = options.variant === 'fp16' ? ['.fp16', ''] : ['', '.fp16'];
  for (const v of variants) {
    const single = join(dir, `${BASE}${v}.safetensors`);
    if (existsSync(single)) return { dir, config, weights: [single] };
    const index = join(dir, `${BASE}${v}.safetensors.index.json`);
    if (existsSync(index)) return { dir, config, weights: shardedFiles(index) };
  }
  for (const v of variants) {
    const bin = join(dir, `${BASE}${v}.bin`);
    if (existsSync(bin)) return { dir, config, weights: [bin] };
    const index = join(dir, `${BASE}${v}.bin.index.json`);
    if (existsSync(index)) return { dir, config, weights: shardedFiles(index) };
  }
  throw new EngineError('model_not_found', `${dir} has a config.json but no ${BASE}.safetensors (or .fp16 / sharded / .bin) weights`);
}
