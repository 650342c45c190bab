// Which files a wiro/instant-id-controlnet-lora task runs on, under $LIKENESS_HOME/models:
//   checkpoint   selectedModelPrivate (the task's project's own, checkpoints/private/<projectId>/) /
//                selectedModel through the catalog; none chosen → the server's default (a configured
//                path, else the smoke model set when it is there)
//   InstantID    instantid/ControlNetModel/ + instantid/ip-adapter.bin (InstantX/InstantID's layout);
//                the smoke model runs with the smoke set's own parts (smoke/instantid/)
//   face models  antelopev2/scrfd_10g_bnkps.onnx + antelopev2/glintr100.onnx; the smoke model falls
//                back to the smoke set's random recognizer (and its detector copy) when antelopev2 is absent
//   ControlNets  the catalog (controlnet/<name>/)
// Every missing file is a TaskInputError that names it and says how to install it.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TaskInputError } from '../../service/runner.js';
import { SMOKE_MODEL_DIR } from '../../engine/smoke.js';
import { SMOKE_FACE_DIR, SMOKE_INSTANTID_DIR, SMOKE_RECOGNIZER } from '../../engine/smoke-instantid.js';
import { TOKENIZER_STORE } from '../../engine/pipelines/sdxl-components.js';
import { catalogModel, locateModel, notInstalledMessage, privateModelMissing } from '../catalog.js';
import type { ModelChoice } from '../instant-id-inputs.js';
import type { ToolDefinition } from '../types.js';

export const NON_COMMERCIAL = 'licensed for non-commercial research use only';

/** Operator settings; every path may be left out to use the layout above. */
export interface ModelPaths {
  /** $LIKENESS_HOME */
  home: string;
  /** The SDXL checkpoint used when a Run names none (file or diffusers folder). */
  defaultModel?: string;
  /** SCRFD detector .onnx (default $home/models/antelopev2/scrfd_10g_bnkps.onnx). */
  detector?: string;
  /** ArcFace recognizer .onnx (default $home/models/antelopev2/glintr100.onnx). */
  recognizer?: string;
  /** Folder holding ControlNetModel/ and ip-adapter.bin (default $home/models/instantid). */
  instantIdDir?: string;
}

export interface ResolvedCheckpoint {
  path: string;
  /** The smoke model set (random weights): its own InstantID parts and face-model fallback apply. */
  smoke: boolean;
  /** tokenizer/ + tokenizer_2/ for a single-file checkpoint (the model store's copy). */
  tokenizerDir?: string;
  label: string;
}

export interface InstantIdPartPaths {
  identityNet: string;
  ipAdapter: string;
}

export interface FaceModelPaths {
  detector: string;
  recognizer: string;
  /** The recognizer is the smoke set's random graph: say so in debugoutput. */
  random: boolean;
}

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();
const smokeDir = (home: string): string => join(home, SMOKE_MODEL_DIR);

export function isSmokeModel(home: string, path: string): boolean {
  return resolve(path) === resolve(smokeDir(home));
}

function checkpointAt(home: string, path: string, label: string): ResolvedCheckpoint {
  const store = join(home, TOKENIZER_STORE);
  return { path, smoke: isSmokeModel(home, path), label, ...(!isDir(path) ? { tokenizerDir: store } : {}) };
}

/** A private model of the project, or the one "not a private … of this project" error for anything else. */
function locatePrivate(home: string, tool: ToolDefinition, inputId: string, kind: 'checkpoint' | 'lora', id: string, projectId: number | undefined): string {
  const model = catalogModel(home, tool, inputId, id, projectId);
  const path = model ? locateModel(model) : undefined;
  if (!path) throw new TaskInputError('model_missing', privateModelMissing(inputId, kind, id));
  return path;
}

/**
 * The checkpoint of a Run (validation has already checked catalog ids are installed); a private one
 * only from `projectId`'s folder (none without a project).
 */
export function resolveCheckpoint(paths: ModelPaths, tool: ToolDefinition, choice: ModelChoice | null, projectId?: number): ResolvedCheckpoint {
  const { home } = paths;
  if (choice?.source === 'private') {
    const path = locatePrivate(home, tool, 'selectedModelPrivate', 'checkpoint', choice.id, projectId);
    return checkpointAt(home, path, `selectedModelPrivate ${choice.id}`);
  }
  if (choice) {
    const inputId = 'selectedModel';
    const model = catalogModel(home, tool, inputId, choice.id);
    if (!model) throw new TaskInputError('model_unknown', `Request parameter [${inputId}] ${choice.id} is not a model id this server knows`);
    const path = locateModel(model);
    if (!path) throw new TaskInputError('model_missing', notInstalledMessage(inputId, model));
    return checkpointAt(home, path, `${inputId} ${choice.id} (${model.label})`);
  }
  if (paths.defaultModel) {
    if (!existsSync(paths.defaultModel)) {
      throw new TaskInputError('model_missing', `the server's default SDXL checkpoint ${paths.defaultModel} does not exist: the operator fixes the configured path`);
    }
    return checkpointAt(home, paths.defaultModel, `the default checkpoint ${paths.defaultModel}`);
  }
  const smoke = smokeDir(home);
  if (existsSync(join(smoke, 'model_index.json'))) return checkpointAt(home, smoke, 'the smoke model set (random weights)');
  throw new TaskInputError('model_missing',
    'No SDXL checkpoint was selected and this server has no default one: choose selectedModel, or the operator installs a ' +
    `checkpoint (LIKENESS_DEFAULT_MODEL, or the catalog under ${join(home, 'models', 'checkpoints')}), or runs \`likeness models smoke\` ` +
    'for the random-weight smoke set (it draws noise).');
}

/** IdentityNet and ip-adapter for a checkpoint. */
export function resolveInstantIdParts(paths: ModelPaths, checkpoint: ResolvedCheckpoint): InstantIdPartPaths {
  const dir = paths.instantIdDir ?? (checkpoint.smoke ? join(paths.home, SMOKE_INSTANTID_DIR) : join(paths.home, 'models', 'instantid'));
  const identityNet = join(dir, 'ControlNetModel');
  if (!existsSync(join(identityNet, 'config.json'))) {
    throw new TaskInputError('model_missing',
      `InstantID's IdentityNet is not installed: save the ControlNetModel folder of InstantX/InstantID (config.json and ` +
      `diffusion_pytorch_model.safetensors) as ${identityNet}. InstantID's weights are ${NON_COMMERCIAL}.`);
  }
  const ipAdapter = ['ip-adapter.bin', 'ip-adapter.safetensors'].map((f) => join(dir, f)).find((p) => existsSync(p));
  if (!ipAdapter) {
    throw new TaskInputError('model_missing',
      `InstantID's ip-adapter.bin is not installed: save ip-adapter.bin of InstantX/InstantID as ${join(dir, 'ip-adapter.bin')} ` +
      `(a safetensors copy may be saved as ip-adapter.safetensors instead). InstantID's weights are ${NON_COMMERCIAL}.`);
  }
  return { identityNet, ipAdapter };
}

function firstOnnx(dir: string, prefer: readonly string[]): string | undefined {
  if (!isDir(dir)) return undefined;
  const found = prefer.map((f) => join(dir, f)).find((p) => existsSync(p));
  if (found) return found;
  const other = readdirSync(dir).filter((f) => f.endsWith('.onnx') && f !== SMOKE_RECOGNIZER).sort()[0];
  return other ? join(dir, other) : undefined;
}

/** The face models: configured, else antelopev2, else (for the smoke model only) the smoke set's. */
export function resolveFaceModels(paths: ModelPaths, smoke: boolean): FaceModelPaths {
  const antelope = join(paths.home, 'models', 'antelopev2');
  let detector = paths.detector ?? join(antelope, 'scrfd_10g_bnkps.onnx');
  let recognizer = paths.recognizer ?? join(antelope, 'glintr100.onnx');
  let random = false;
  const smokeFaces = join(paths.home, SMOKE_FACE_DIR);
  if (smoke && !paths.detector && !existsSync(detector)) {
    detector = firstOnnx(smokeFaces, ['scrfd_10g_bnkps.onnx', 'det_10g.onnx', 'det_2.5g.onnx', 'det_500m.onnx']) ?? detector;
  }
  if (smoke && !paths.recognizer && !existsSync(recognizer) && existsSync(join(smokeFaces, SMOKE_RECOGNIZER))) {
    recognizer = join(smokeFaces, SMOKE_RECOGNIZER);
    random = true;
  }
  return { detector, recognizer, random };
}

/** The folder of an extra ControlNet from the catalog (selectedControlnetModel). */
export function resolveControlNet(home: string, tool: ToolDefinition, id: string): string {
  const model = catalogModel(home, tool, 'selectedControlnetModel', id);
  const path = model ? locateModel(model) : undefined;
  if (!model) throw new TaskInputError('model_unknown', `Request parameter [selectedControlnetModel] ${id} is not a model id this server knows`);
  if (!path) throw new TaskInputError('model_missing', notInstalledMessage('selectedControlnetModel', model));
  return path;
}

/** The file of a catalog LoRA, or of a private one of `projectId` (none without a project). */
export function resolveLoraFile(home: string, tool: ToolDefinition, source: 'catalog' | 'private', id: string, projectId?: number): string {
  if (source === 'private') return locatePrivate(home, tool, 'selectedLoraModelPrivate', 'lora', id, projectId);
  const inputId = 'selectedLoraModel';
  const model = catalogModel(home, tool, inputId, id);
  if (!model) throw new TaskInputError('model_unknown', `Request parameter [${inputId}] ${id} is not a model id this server knows`);
  const path = locateModel(model);
  if (!path) throw new TaskInputError('model_missing', notInstalledMessage(inputId, model));
  return path;
}
