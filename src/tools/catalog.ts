/**
 * The model catalog on disk: which local files Wiro's catalog ids (and a project's private ids)
 * stand for, whether they are installed, and the trigger words a LoRA adds to the prompt.
 *
 * Where models live, under $LIKENESS_HOME/models/:
 *   checkpoints/<name>.safetensors   an SDXL single-file checkpoint (A1111 / Civitai), or
 *   checkpoints/<name>/              a diffusers folder (model_index.json, unet/, vae/, …)
 *   loras/<name>.safetensors         a LoRA file (kohya or diffusers format)
 *   controlnet/<name>/               a diffusers ControlNet folder (config.json + weights), or
 *   controlnet/<name>.safetensors    its weights file alone (config beside it as <name>.json, else read from the shapes)
 * <name> is the option's generate-setting id when it has one (that is Wiro's own slug for the model,
 * and the field that carries its scale), else the last part of its label with spaces as '-':
 *   LoRAs       622 Vintage-Creepy-Creatures · 480 Minimalist-Flat-Icons-v1.0 · 938 Roman-Everything-SDXL
 *               1146 Graphic-Novel-Illustration · 1229 Vintage-Golden-Age-Illustration-SDXL
 *   ControlNets 454 controlnet-canny-sdxl-1.0 · 455 controlnet-depth-sdxl-1.0 · 458 controlnet-openpose-sdxl-1.0
 *   checkpoints 554 Moxie-Diffusion-XL-v1.91 · 1088 Samaritan-CGI · 422 BriXL-v5.0 · 995 Suzannes-XL-Mix · 1094 Tornado
 * The catalog id itself also works as the name (loras/622.safetensors), for operators who prefer ids.
 *
 * Private models (selectedModelPrivate, selectedLoraModelPrivate) belong to one project:
 *   checkpoints/private/<projectId>/<id>.safetensors (or <id>/, a diffusers folder)
 *   loras/private/<projectId>/<id>.safetensors
 * <projectId> is the project's id in the store (a decimal number), so no project can name another's
 * folder; the operator adds them with `likeness models private add --project NAME FILE`. A private id
 * that is not in the Run's project — in another project, never added, or malformed — gets one message
 * (privateModelMissing) that names no path and tells nothing of other projects. Files directly in
 * <kind dir>/private/ are the old shared layout: no longer read (`likeness serve` warns about them).
 * Messages show catalog locations relative to the home ($LIKENESS_HOME/models/…), never absolute.
 *
 * Trigger words. Wiro's options carry `triggerwords`: the phrases a LoRA was trained on, main one
 * first (622: "creepy creature", "creepy creature drawing", "monster"); they are alternatives to
 * copy, not a sentence. The catalog implies a prompt should hold one for the style to show, so by
 * default the first phrase of each selected catalog LoRA is put before the prompt, unless the prompt
 * already holds one of that LoRA's phrases. 'all' puts every phrase; 'none' leaves the prompt alone.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { redactPaths } from '../service/redact.js';
import type { LoraChoice } from './instant-id-inputs.js';
import type { AvailabilityCheck, CatalogKind, InputSpec, OptionSpec, ToolDefinition } from './types.js';

export const MODEL_DIRS: Readonly<Record<CatalogKind, string>> = { checkpoint: 'checkpoints', lora: 'loras', controlnet: 'controlnet' };

const KIND_WORDS: Readonly<Record<CatalogKind, string>> = { checkpoint: 'checkpoint', lora: 'LoRA', controlnet: 'ControlNet' };

/** A model id usable as a file name: no path separator, no leading dot (so never '.', '..' or a hidden file). */
export const MODEL_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** A model a Run may name, and where it may be installed (first existing candidate wins). */
export interface CatalogModel {
  kind: CatalogKind;
  id: string;
  /** The catalog label ('WizardWhitebeard/Vintage-Creepy-Creatures'); the id for private models. */
  label: string;
  private: boolean;
  /** Absolute paths, in the order looked at (none for a private id without a valid project). */
  candidates: string[];
  /** $LIKENESS_HOME, to show candidates relative to it. */
  home: string;
}

/**
 * The folder name of a project's private models: its store id (a non-negative integer) in decimal;
 * undefined for anything else, so that no value can become a path outside the private folder.
 */
export function projectFolder(projectId: unknown): string | undefined {
  return typeof projectId === 'number' && Number.isSafeInteger(projectId) && projectId >= 0 ? String(projectId) : undefined;
}

/** Where a project's private models of `kind` live; undefined for an unusable project id. */
export function privateModelDir(home: string, kind: 'checkpoint' | 'lora', projectId: number): string | undefined {
  const folder = projectFolder(projectId);
  return folder === undefined ? undefined : join(home, 'models', MODEL_DIRS[kind], 'private', folder);
}

/** The id as a message shows it: bounded, control characters dropped (it is the client's own text). */
function shownId(value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, '');
  return clean.length > 128 ? `${clean.slice(0, 128)}…` : clean;
}

/**
 * The one message for a private id the Run's project does not have: the same whether another project
 * has it, nobody ever added it, or it is no usable id at all. It names no path.
 */
export function privateModelMissing(inputId: string, kind: CatalogKind, value: string): string {
  return `Request parameter [${inputId}] ${shownId(value)} is not a private ${KIND_WORDS[kind]} of this project: ` +
    "the server's operator adds it with `likeness models private add --project <your project> FILE`";
}

/** The file name an option's model is installed under (without extension). */
export function modelName(option: OptionSpec): string {
  const setting = option.generatesettings?.[0]?.id;
  const raw = setting ?? option.label.split('/').pop() ?? option.value;
  const name = raw.trim().replace(/\s+/g, '-').replace(/[^A-Za-z0-9._-]/g, '');
  return name === '' || name.startsWith('.') ? option.value : name;
}

function candidatesFor(dir: string, kind: CatalogKind, names: readonly string[]): string[] {
  return names.flatMap((name) => {
    const file = join(dir, `${name}.safetensors`);
    const folder = join(dir, name);
    if (kind === 'lora') return [file];
    if (kind === 'controlnet') return [folder, file];
    return [file, folder];
  });
}

function catalogInput(tool: ToolDefinition, inputId: string): (InputSpec & { type: 'select' | 'multiselect'; catalog: CatalogKind }) | undefined {
  const input = tool.inputs.find((i) => i.id === inputId);
  if (!input || (input.type !== 'select' && input.type !== 'multiselect') || !input.catalog) return undefined;
  return input as InputSpec & { type: 'select' | 'multiselect'; catalog: CatalogKind };
}

/**
 * The model that `value` names in the tool's catalog input `inputId`, with its install candidates
 * under `home`; undefined when the input is not a catalog input or the id is unusable as a name.
 */
export function catalogModel(
  home: string, tool: ToolDefinition, inputId: string, value: string, projectId?: number,
): CatalogModel | undefined {
  const input = catalogInput(tool, inputId);
  if (!input || !MODEL_ID.test(value)) return undefined;
  const kind = input.catalog;
  const dir = join(home, 'models', MODEL_DIRS[kind]);
  if (isPrivateInput(input)) {
    // A private id belongs to the Run's project; without a (valid) project it is nowhere.
    const folder = projectFolder(projectId);
    const candidates = folder === undefined ? [] : candidatesFor(join(dir, 'private', folder), kind, [value]);
    return { kind, id: value, label: value, private: true, candidates, home };
  }
  const option = input.options.find((o) => o.value === value);
  if (!option) return undefined;
  const names = [...new Set([modelName(option), value])];
  return { kind, id: value, label: option.label, private: false, candidates: candidatesFor(dir, kind, names), home };
}

/** A select whose ids are a project's private models (selectedModelPrivate, selectedLoraModelPrivate). */
function isPrivateInput(input: InputSpec): boolean {
  return input.type === 'select' && input.openOptions === true;
}

/** The installed path of a model, or undefined. A folder counts only with its config (a partial copy does not). */
export function locateModel(model: CatalogModel): string | undefined {
  return model.candidates.find((path) => {
    if (!existsSync(path)) return false;
    const st = statSync(path);
    if (st.isFile()) return st.size > 0;
    if (!st.isDirectory()) return false;
    return existsSync(join(path, model.kind === 'controlnet' ? 'config.json' : 'model_index.json'));
  });
}

/** What to tell a user whose selected model is not installed. */
export function notInstalledMessage(inputId: string, model: CatalogModel): string {
  if (model.private) return privateModelMissing(inputId, model.kind, model.id);
  const layout = model.kind === 'controlnet'
    ? `its diffusers folder (config.json and weights), or its diffusers weights file as ${model.candidates[1] ?? 'a .safetensors beside it'},`
    : model.kind === 'checkpoint'
    ? 'its .safetensors file (or diffusers folder)' : 'its .safetensors file';
  // Shown relative to the home, as every message a client reads is (redact.ts).
  return redactPaths(`Request parameter [${inputId}] ${model.id} (${model.label}) is not installed on this server: ` +
    `the operator installs it by saving ${layout} as ${model.candidates[0]}`, model.home);
}

/**
 * The availability hook for validateRun: every selected catalog model must be installed under `home`,
 * and every private one in the Run's project (`scope.projectId`). Pass it as
 * `validateRun(tool, body, files, { availability: createAvailability(home, tool), projectId })`.
 */
export function createAvailability(home: string, tool: ToolDefinition): AvailabilityCheck {
  return (inputId, value, scope) => {
    const input = catalogInput(tool, inputId);
    if (!input) return undefined;
    const model = catalogModel(home, tool, inputId, value, scope?.projectId);
    if (isPrivateInput(input)) return model && locateModel(model) !== undefined ? undefined : privateModelMissing(inputId, input.catalog, value);
    if (!model) return `Request parameter [${inputId}] ${value} is not a model id this server knows`;
    return locateModel(model) === undefined ? notInstalledMessage(inputId, model) : undefined;
  };
}

/** Every catalog model of the tool with its expected location (for docs, `likeness models`, and tests). */
export function catalogModels(home: string, tool: ToolDefinition): CatalogModel[] {
  return tool.inputs.flatMap((input) => {
    if ((input.type !== 'select' && input.type !== 'multiselect') || !input.catalog) return [];
    return input.options.map((o) => catalogModel(home, tool, input.id, o.value)).filter((m): m is CatalogModel => m !== undefined);
  });
}

export type TriggerWordMode = 'first' | 'all' | 'none';

const clean = (phrase: string): string => phrase.trim().replace(/^[,\s]+|[,\s]+$/g, '');

/** The prompt with the selected catalog LoRAs' trigger words put before it (see the header). */
export function promptWithTriggerWords(prompt: string, loras: readonly LoraChoice[], mode: TriggerWordMode = 'first'): string {
  if (mode === 'none') return prompt;
  const lower = prompt.toLowerCase();
  const added: string[] = [];
  for (const lora of loras) {
    if (lora.source !== 'catalog') continue;
    const phrases = lora.triggerwords.map(clean).filter((p) => p !== '');
    if (phrases.length === 0 || phrases.some((p) => lower.includes(p.toLowerCase()))) continue;
    for (const p of mode === 'all' ? phrases : phrases.slice(0, 1)) {
      if (!added.some((a) => a.toLowerCase() === p.toLowerCase())) added.push(p);
    }
  }
  if (added.length === 0) return prompt;
  return prompt.trim() === '' ? added.join(', ') : `${added.join(', ')}, ${prompt}`;
}
