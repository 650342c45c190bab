// The control-map preprocessors with weights, as data: which model files each loads from
// $LIKENESS_HOME/models, where to download them, their licence, and how to open them. Canny needs no
// weights (engine/control/canny.ts). A kind whose entry is undefined is refused at validation
// (availability.ts) with its own message; adding the entry is all it takes to enable it.

import { existsSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { DEPTH_ANYTHING_DOWNLOAD, DepthEstimator } from '../../engine/control/depth/index.js';
import { OPENPOSE_BODY_FILE, OPENPOSE_DOWNLOAD, OPENPOSE_LICENCE, OpenposeDetector } from '../../engine/control/openpose/index.js';
import type { ControlMapKind, ControlMapMaker, ControlMapMakers } from '../../engine/pipelines/instantid-inputs.js';
import { SMOKE_MODEL_DIR } from '../../engine/smoke.js';
import { TaskInputError } from '../../service/runner.js';

export interface OpenOptions {
  cacheDir: string;
  threads?: number;
}

export interface LoadedPreprocessor {
  make: ControlMapMaker;
  dispose(): Promise<void>;
}

export interface PreprocessorEntry {
  /** For messages: 'Depth Anything'. */
  what: string;
  /** Folder under $LIKENESS_HOME/models (and under the smoke set, for its tiny random copy). */
  dir: string;
  /** Files that must be in it. */
  files: readonly string[];
  /** What to download. */
  download: string;
  licence: string;
  open(dir: string, options: OpenOptions): Promise<LoadedPreprocessor>;
}

export type ModelPreprocessor = Exclude<ControlMapKind, 'canny'>;

const depth: PreprocessorEntry = {
  what: 'Depth Anything (the depth preprocessor)',
  dir: 'depth-anything',
  files: DEPTH_ANYTHING_DOWNLOAD.small.files,
  download: `config.json and model.safetensors of ${DEPTH_ANYTHING_DOWNLOAD.small.repo} (the InstantID Space uses the large one, ${DEPTH_ANYTHING_DOWNLOAD.large.repo}, also loadable)`,
  licence: `${DEPTH_ANYTHING_DOWNLOAD.small.licence} (as its model card states)`,
  async open(dir, options) {
    const est = await DepthEstimator.open(dir, { cacheDir: options.cacheDir, ...(options.threads !== undefined ? { session: { intraOpThreads: options.threads } } : {}) });
    return {
      make: async (picture, signal) => {
        const map = await est.estimate(picture, signal ? { signal } : undefined);
        return { data: map.data, width: map.width, height: map.height, channels: 1 };
      },
      dispose: () => est.dispose(),
    };
  },
};

/** controlnet_aux's OpenposeDetector, body only, at its defaults (detect and image resolution 512), as the demo calls it. */
const openpose: PreprocessorEntry = {
  what: 'the OpenPose body model (the openpose preprocessor)',
  dir: dirname(relative('models', OPENPOSE_BODY_FILE)),
  files: [basename(OPENPOSE_BODY_FILE)],
  download: `body_pose_model.pth (${OPENPOSE_DOWNLOAD})`,
  licence: OPENPOSE_LICENCE,
  async open(dir, options) {
    const detector = await OpenposeDetector.open(join(dir, basename(OPENPOSE_BODY_FILE)), {
      cacheDir: options.cacheDir,
      ...(options.threads !== undefined ? { session: { intraOpThreads: options.threads } } : {}),
    });
    return {
      make: async (picture, signal) => {
        const map = await detector.detect(picture, signal ? { signal } : {});
        return { data: map.data, width: map.width, height: map.height, channels: 3 };
      },
      dispose: () => detector.dispose(),
    };
  },
};

/** undefined: not in this version (validation refuses the ControlNet). */
export const PREPROCESSORS: Readonly<Record<ModelPreprocessor, PreprocessorEntry | undefined>> = {
  depth,
  openpose,
};

/** The folder to load `kind` from: models/<dir>/, else (smoke checkpoint only) the smoke set's random copy. */
export function preprocessorDir(home: string, kind: ModelPreprocessor, smoke: boolean): { dir: string; random: boolean } {
  const entry = PREPROCESSORS[kind];
  if (!entry) throw new TaskInputError('controlnet_unsupported', `the ${kind} preprocessor is not in this version of Likeness`);
  const installed = (dir: string): boolean => entry.files.every((f) => existsSync(join(dir, f)));
  const real = join(home, 'models', entry.dir);
  if (installed(real)) return { dir: real, random: false };
  const smokeDir = join(home, SMOKE_MODEL_DIR, entry.dir);
  if (smoke && installed(smokeDir)) return { dir: smokeDir, random: true };
  throw new TaskInputError('model_missing',
    `${entry.what} is not installed: download ${entry.download} and save them as ${entry.files.map((f) => join(real, f)).join(' and ')}. ` +
    `Licence: ${entry.licence}.`);
}

/** Keeps each preprocessor loaded between tasks (the tool is persistent); a different folder replaces it. */
export class PreprocessorModels {
  private readonly loaded = new Map<ModelPreprocessor, { dir: string; model: Promise<LoadedPreprocessor> }>();

  constructor(private readonly options: OpenOptions) {}

  get(kind: ModelPreprocessor, dir: string): Promise<LoadedPreprocessor> {
    const entry = PREPROCESSORS[kind];
    if (!entry) throw new TaskInputError('controlnet_unsupported', `the ${kind} preprocessor is not in this version of Likeness`);
    const current = this.loaded.get(kind);
    if (current?.dir === dir) return current.model;
    void current?.model.then((m) => m.dispose(), () => undefined);
    const model = entry.open(dir, this.options);
    this.loaded.set(kind, { dir, model });
    model.catch(() => { if (this.loaded.get(kind)?.model === model) this.loaded.delete(kind); });
    return model;
  }

  /** Makers for the given kinds, each from its folder. */
  async makers(dirs: ReadonlyMap<ModelPreprocessor, string>): Promise<ControlMapMakers> {
    const out: ControlMapMakers = {};
    for (const [kind, dir] of dirs) out[kind] = (await this.get(kind, dir)).make;
    return out;
  }

  async dispose(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.all(all.map((l) => l.model.then((m) => m.dispose(), () => undefined)));
  }
}
