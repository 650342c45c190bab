// A project's private models on disk, for the operator (`likeness models private add|ls`) and for
// `likeness serve`'s start-up check. Where they live and how a Run finds them: catalog.ts.
//
// add copies a file (or a checkpoint's diffusers folder) into models/<loras|checkpoints>/private/<projectId>/
// under a temporary dot-name, then renames it into place, so a Run never sees a partial copy (a dot-name
// is no model id). Before copying it reads the file's header: a LoRA must be a .safetensors whose layers
// fit SDXL base (the same reader a task uses, against SDXL's layer table, no weights read); a checkpoint
// must be an SDXL single file (model.diffusion_model.*, both text encoders) or a diffusers folder.
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { cp, copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { EngineError } from '../engine/errors.js';
import { treeBytes } from '../engine/onnx/cache.js';
import { readLora } from '../engine/formats/lora.js';
import { loraTargetsFromConfigs, type LoraTargets } from '../engine/formats/lora-keymap.js';
import { SafetensorsFile } from '../engine/formats/safetensors.js';
import { checkSdxlKeys } from '../engine/formats/single-file.js';
import { sniffWeightsFormat } from '../engine/formats/weights.js';
import { SDXL_BASE_TEXT_ENCODER_2_CONFIG, SDXL_BASE_TEXT_ENCODER_CONFIG, SDXL_BASE_UNET_CONFIG } from '../engine/smoke-sizes.js';
import { MODEL_DIRS, MODEL_ID, privateModelDir } from './catalog.js';

export type PrivateKind = 'checkpoint' | 'lora';
export const PRIVATE_KINDS: readonly PrivateKind[] = ['lora', 'checkpoint'];

/** A problem the operator can act on (bad file, bad id, already there): the CLI prints the message. */
export class PrivateModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrivateModelError';
  }
}

export interface PrivateModel {
  projectId: number;
  kind: PrivateKind;
  id: string;
  path: string;
  /** A checkpoint's diffusers folder (else one .safetensors file). */
  folder: boolean;
  bytes: number;
}

/** The project's private models as a Run would find them (complete copies only), by kind then id. */
export function listPrivateModels(home: string, projectId: number): PrivateModel[] {
  const out: PrivateModel[] = [];
  for (const kind of PRIVATE_KINDS) {
    const dir = privateModelDir(home, kind, projectId);
    if (!dir || !existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = statSync(path);
      const file = /^(.*)\.safetensors$/.exec(name);
      if (st.isFile() && file && MODEL_ID.test(file[1]!) && st.size > 0) {
        out.push({ projectId, kind, id: file[1]!, path, folder: false, bytes: st.size });
      } else if (kind === 'checkpoint' && st.isDirectory() && MODEL_ID.test(name) && existsSync(join(path, 'model_index.json'))) {
        out.push({ projectId, kind, id: name, path, folder: true, bytes: treeBytes(path) });
      }
    }
  }
  return out;
}

function head(path: string): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const bytes = new Uint8Array(16);
    return bytes.subarray(0, readSync(fd, bytes, 0, 16, 0));
  } finally {
    closeSync(fd);
  }
}

/** The tensor names of a .safetensors file (its header only), or why it is not one. */
function tensorNames(path: string, label: string): string[] {
  const format = sniffWeightsFormat(head(path));
  if (format === 'torch-zip' || format === 'torch-legacy') {
    throw new PrivateModelError(`${label} is a torch pickle (.bin/.pt/.ckpt): private models must be .safetensors; convert it first`);
  }
  if (format !== 'safetensors') throw new PrivateModelError(`${label} is not a .safetensors file (its first bytes say otherwise)`);
  try {
    const file = SafetensorsFile.open(path);
    const names = file.names();
    file.close();
    return names;
  } catch (err) {
    if (err instanceof EngineError) throw new PrivateModelError(err.message);
    throw err;
  }
}

/** kohya (lora_unet_…, .lora_down/.lora_up) or diffusers/PEFT (.lora_A/.lora_B, .lora.down, _lora.up) factor names. */
const LORA_TENSOR = /^lora_|\.lora_(up|down|A|B)(\.default)?\.weight$|\.(lora|lora_linear_layer)\.(up|down)\.weight$|_lora\.(up|down)\.weight$/;
const looksLikeLora = (names: readonly string[]): boolean => names.some((n) => LORA_TENSOR.test(n));
const looksLikeCheckpoint = (names: readonly string[]): boolean => names.some((n) => n.startsWith('model.diffusion_model.'));

let sdxlTargets: LoraTargets | undefined;
/** SDXL base's layers, from its configs alone: what every SDXL checkpoint's LoRAs must fit. */
function sdxlBaseTargets(): LoraTargets {
  sdxlTargets ??= loraTargetsFromConfigs({
    unet: SDXL_BASE_UNET_CONFIG, textEncoder: SDXL_BASE_TEXT_ENCODER_CONFIG, textEncoder2: SDXL_BASE_TEXT_ENCODER_2_CONFIG,
  });
  return sdxlTargets;
}

/**
 * What `source` is (the kind given, or guessed from its header), after checking it is one: throws
 * PrivateModelError with what is wrong.
 */
export function checkPrivateModel(source: string, kind?: PrivateKind): { kind: PrivateKind; folder: boolean } {
  if (!existsSync(source)) throw new PrivateModelError(`${source} does not exist`);
  const st = statSync(source);
  if (st.isDirectory()) {
    if (kind === 'lora') throw new PrivateModelError(`${source} is a folder: a LoRA is one .safetensors file`);
    if (!existsSync(join(source, 'model_index.json'))) {
      throw new PrivateModelError(`${source} is a folder without model_index.json: a checkpoint folder is a diffusers SDXL pipeline (model_index.json, unet/, vae/, …)`);
    }
    return { kind: 'checkpoint', folder: true };
  }
  if (!st.isFile() || st.size === 0) throw new PrivateModelError(`${source} is empty or not a regular file`);
  const names = tensorNames(source, source);
  const lora = looksLikeLora(names);
  const checkpoint = looksLikeCheckpoint(names);
  const chosen = kind ?? (lora && !checkpoint ? 'lora' : checkpoint && !lora ? 'checkpoint' : undefined);
  if (!chosen) throw new PrivateModelError(`cannot tell from its tensors whether ${source} is a LoRA or a checkpoint: pass --kind lora or --kind checkpoint`);
  try {
    if (chosen === 'checkpoint') checkSdxlKeys(names, source);
    else {
      if (checkpoint && !lora) throw new PrivateModelError(`${source} is a model checkpoint (model.diffusion_model.* tensors), not a LoRA: use --kind checkpoint`);
      readLora(source, sdxlBaseTargets(), { label: source }).close();
    }
  } catch (err) {
    if (err instanceof EngineError) throw new PrivateModelError(err.code === 'lora_incompatible' ? `${err.message} (checked against SDXL base's layers)` : err.message);
    throw err;
  }
  return { kind: chosen, folder: false };
}

/** The id a file gets by default: its name without the extension (a folder: its name). */
export function defaultModelId(source: string): string {
  const name = basename(source.replace(/\/+$/, ''));
  return statSync(source).isDirectory() ? name : name.replace(/\.[^.]*$/, '');
}

export interface AddOptions {
  kind?: PrivateKind;
  /** Default: defaultModelId(source). */
  id?: string;
  /** Overwrite a model of that id (either form, for a checkpoint). */
  replace?: boolean;
}

/** Copies `source` into the project's private folder (see the header); returns what is there now. */
export async function addPrivateModel(home: string, projectId: number, source: string, opts: AddOptions = {}): Promise<PrivateModel & { replaced: boolean }> {
  const { kind, folder } = checkPrivateModel(source, opts.kind);
  const id = opts.id ?? defaultModelId(source);
  if (!MODEL_ID.test(id)) {
    throw new PrivateModelError(`"${id}" cannot be a model id: use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.' (--id ID)`);
  }
  const dir = privateModelDir(home, kind, projectId);
  if (!dir) throw new PrivateModelError(`project id ${projectId} is not a store id`);
  const file = join(dir, `${id}.safetensors`);
  const dest = folder ? join(dir, id) : file;
  const existing = [file, ...(kind === 'checkpoint' ? [join(dir, id)] : [])].filter((p) => existsSync(p));
  if (existing.length > 0 && !opts.replace) {
    throw new PrivateModelError(`this project already has a private ${kind === 'lora' ? 'LoRA' : 'checkpoint'} "${id}" (${existing.join(', ')}): pass --replace to overwrite it`);
  }
  await mkdir(dir, { recursive: true });
  const tag = randomBytes(6).toString('hex');
  const temp = join(dir, `.${id}.partial-${tag}`);
  const retired: string[] = [];
  try {
    if (folder) await cp(source, temp, { recursive: true, errorOnExist: true, force: false });
    else await copyFile(source, temp);
    // The other form of a checkpoint goes first (a file would win over a folder), then the new one
    // takes its name in one rename.
    for (const old of existing) {
      if (old === dest && !folder) continue; // a file is replaced by the rename itself
      const away = join(dir, `.${id}.old-${tag}-${retired.length}`);
      await rename(old, away);
      retired.push(away);
    }
    await rename(temp, dest);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
  for (const away of retired) await rm(away, { recursive: true, force: true });
  return { projectId, kind, id, path: dest, folder, bytes: treeBytes(dest), replaced: existing.length > 0 };
}

/**
 * Files in the old shared layout, which no Run reads any more: models/loras/private/*.safetensors,
 * models/checkpoints/private/*.safetensors and diffusers folders directly there. Paths relative to the home.
 */
export function oldLayoutModels(home: string): string[] {
  const out: string[] = [];
  for (const kind of PRIVATE_KINDS) {
    const rel = join('models', MODEL_DIRS[kind], 'private');
    const dir = join(home, rel);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      const st = statSync(join(dir, name));
      if (st.isFile()) out.push(join(rel, name));
      else if (kind === 'checkpoint' && st.isDirectory() && existsSync(join(dir, name, 'model_index.json'))) out.push(`${join(rel, name)}/`);
    }
  }
  return out;
}

/** The one start-up warning about the old layout, or undefined when there is nothing in it. */
export function oldLayoutWarning(home: string): string | undefined {
  const old = oldLayoutModels(home);
  if (old.length === 0) return undefined;
  const shown = old.slice(0, 5).join(', ') + (old.length > 5 ? ` and ${old.length - 5} more` : '');
  return `${old.length} private model${old.length === 1 ? '' : 's'} in the old shared folders ${old.length === 1 ? 'is' : 'are'} no longer used ` +
    `(private models now belong to one project): ${shown} in ${home}. Give each to its project with ` +
    '`likeness models private add --project NAME FILE`, then delete the old copy.';
}
