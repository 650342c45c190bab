/**
 * The validated parameters of a wiro/instant-id-controlnet-lora Run, read as the pipeline needs
 * them: which checkpoint, which LoRAs and ControlNets at which scales, the images, the numbers.
 * Only params produced by validateRun for this tool are accepted; anything else is a programming
 * error and throws.
 */
import { SCHEDULERS, type SchedulerName } from './instant-id-controlnet-lora.js';
import type { ControlMapKind } from '../engine/pipelines/instantid-inputs.js';
import type { FileRef, OptionSpec, ParamValue, RunParams, ToolDefinition } from './types.js';

/** A model from Wiro's catalog ids, or one the project uploaded itself. */
export interface ModelChoice {
  source: 'catalog' | 'private';
  id: string;
}

export type LoraChoice =
  | { source: 'catalog'; id: string; label: string; scale: number; triggerwords: readonly string[] }
  | { source: 'private'; id: string; scale: number }
  | { source: 'url'; url: string; scale: number };

export interface ControlNetChoice {
  id: string;
  label: string;
  scale: number;
  /** What makes its control map (the option's data). */
  preprocessor: ControlMapKind;
}

export interface InstantIdInputs {
  /** null: the server's default SDXL checkpoint. A private checkpoint wins over a catalog one. */
  checkpoint: ModelChoice | null;
  /** All LoRAs applied together: catalog ones in the order sent, then the private one, then the URL. */
  loras: LoraChoice[];
  controlnets: ControlNetChoice[];
  faceImage: FileRef;
  /** Our extension; null: the face photo supplies the pose. */
  poseImage: FileRef | null;
  prompt: string;
  negativePrompt: string;
  steps: number;
  guidanceScale: number;
  ipAdapterScale: number;
  /** Our extension (IdentityNet conditioning scale). */
  identitynetScale: number;
  samples: number;
  seed: bigint;
  scheduler: SchedulerName;
  /** Our extension; null: follows the pose image (or the face photo). */
  width: number | null;
  height: number | null;
}

function fail(id: string, expected: string): never {
  throw new Error(`instant-id params: ${id} is not ${expected}; were they produced by validateRun for this tool?`);
}

function text(values: Record<string, ParamValue>, id: string): string {
  const v = values[id];
  return typeof v === 'string' ? v : fail(id, 'a string');
}

function num(values: Record<string, ParamValue>, id: string): number {
  const v = values[id];
  return typeof v === 'number' ? v : fail(id, 'a number');
}

function optionalNum(values: Record<string, ParamValue>, id: string): number | null {
  const v = values[id];
  return v === null || v === undefined ? null : typeof v === 'number' ? v : fail(id, 'a number or null');
}

function ids(values: Record<string, ParamValue>, id: string): readonly string[] {
  const v = values[id];
  return Array.isArray(v) && v.every((x): x is string => typeof x === 'string') ? v : fail(id, 'a list of ids');
}

function file(values: Record<string, ParamValue>, id: string): FileRef | null {
  const v = values[id];
  if (v === null || v === undefined) return null;
  return typeof v === 'object' && !Array.isArray(v) && 'source' in v ? v : fail(id, 'a file reference');
}

function options(tool: ToolDefinition, id: string): readonly OptionSpec[] {
  const input = tool.inputs.find((i) => i.id === id);
  return input && (input.type === 'select' || input.type === 'multiselect') ? input.options : fail(id, 'a select input');
}

/** The option's first generate setting is its scale (every seed option has at most one). */
function scaleOf(option: OptionSpec, settings: Record<string, number>): number {
  const setting = option.generatesettings?.[0];
  return setting ? (settings[setting.id] ?? Number(setting.defaultvalue)) : 1;
}

function chosen(tool: ToolDefinition, values: Record<string, ParamValue>, id: string): OptionSpec[] {
  const all = options(tool, id);
  return ids(values, id).map((v) => all.find((o) => o.value === v) ?? fail(id, `a list of known ids (${v})`));
}

export function instantIdInputs(tool: ToolDefinition, params: RunParams): InstantIdInputs {
  const { values, settings } = params;

  const catalogModel = text(values, 'selectedModel');
  const privateModel = text(values, 'selectedModelPrivate');
  const checkpoint: ModelChoice | null =
    privateModel !== '' ? { source: 'private', id: privateModel } : catalogModel !== '' ? { source: 'catalog', id: catalogModel } : null;

  const loras: LoraChoice[] = chosen(tool, values, 'selectedLoraModel').map((o) => ({
    source: 'catalog',
    id: o.value,
    label: o.label,
    scale: scaleOf(o, settings),
    triggerwords: o.triggerwords ?? [],
  }));
  const privateLora = text(values, 'selectedLoraModelPrivate');
  if (privateLora !== '') loras.push({ source: 'private', id: privateLora, scale: 1 });
  const loraUrl = text(values, 'selectedLoraModelPrivateUrl').trim();
  if (loraUrl !== '') loras.push({ source: 'url', url: loraUrl, scale: 1 });

  const controlnets = chosen(tool, values, 'selectedControlnetModel').map((o): ControlNetChoice => ({
    id: o.value,
    label: o.label,
    scale: scaleOf(o, settings),
    preprocessor: o.preprocessor ?? fail('selectedControlnetModel', `an option with a preprocessor (${o.value} has none in the tool's data)`),
  }));

  const scheduler = text(values, 'scheduler');
  const faceImage = file(values, 'inputImage') ?? fail('inputImage', 'present');
  return {
    checkpoint,
    loras,
    controlnets,
    faceImage,
    poseImage: file(values, 'inputPoseImage'),
    prompt: text(values, 'prompt'),
    negativePrompt: text(values, 'negativePrompt'),
    steps: num(values, 'steps'),
    guidanceScale: num(values, 'scale'),
    ipAdapterScale: num(values, 'ip_adapter_scale'),
    identitynetScale: num(values, 'identitynet_scale'),
    samples: num(values, 'samples'),
    seed: BigInt(text(values, 'seed')),
    scheduler: SCHEDULERS.find((s) => s === scheduler) ?? fail('scheduler', 'a known scheduler'),
    width: optionalNum(values, 'width'),
    height: optionalNum(values, 'height'),
  };
}
