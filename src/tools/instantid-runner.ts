// The engine behind wiro/instant-id-controlnet-lora: a ToolRunner for the service's worker.
//   preprocess (task_preprocess_*): checkpoint and parts resolved, LoRAs fetched and matched, face
//     photo (and pose photo) decoded and analysed, output size, IdentityNet keypoint image, each extra
//     ControlNet's map (canny, depth, openpose — its option's preprocessor; preprocessors.ts).
//     Any problem a user can act on throws TaskInputError → task_error, before a model runs.
//   run (task_start … task_output): the warm pipeline for (checkpoint, parts, ControlNets, LoRAs) —
//     loaded once and reused — runs InstantID's `_full` pipeline (LPW prompts, face-region mask) with
//     per-step progress and the Kill signal.
//   postprocess (task_postprocess_start): the images are encoded and staged as 0.png, 1.png, …
// The per-task state between the two phases is kept here by task id and released when run ends (or
// when the next task's preprocess finds it abandoned, e.g. after a Kill between the phases).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { openSdxlModel } from '../engine/formats/diffusers-folder.js';
import { loraTargetsOfModel, type LoraTargets } from '../engine/formats/lora-keymap.js';
import { parsePythonJson } from '../engine/formats/pyjson.js';
import { checkMemoryPlan, memoryLimit, planInstantIdTask } from '../engine/memory-plan.js';
import { resultPng } from '../engine/pipelines/instantid.js';
import { controlNetConfigAt } from '../engine/pipelines/instantid-controlnet-file.js';
import { loadTokenizers } from '../engine/pipelines/sdxl-components.js';
import type { ExecutionProvider } from '../engine/onnx/index.js';
import { DEFAULT_MAX_LORA_BYTES, LoraCache } from '../service/lora-cache.js';
import { TaskInputError, type RunContext, type ToolRunner } from '../service/runner.js';
import { promptWithTriggerWords, type TriggerWordMode } from './catalog.js';
import { instantIdControlnetLora } from './instant-id-controlnet-lora.js';
import { instantIdInputs, type InstantIdInputs } from './instant-id-inputs.js';
import type { RunParams, ToolDefinition } from './types.js';
import { loadTaskLoras, type TaskLoras } from './instantid/loras.js';
import {
  resolveCheckpoint, resolveControlNet, resolveFaceModels, resolveInstantIdParts, type ModelPaths, type ResolvedCheckpoint,
} from './instantid/models.js';
import { PipelineCache } from './instantid/pipelines.js';
import { FaceModels, asInputError, fieldLabel, prepareImages, type PreparedImages } from './instantid/prepare-images.js';
import { PreprocessorModels, preprocessorDir, type ModelPreprocessor } from './instantid/preprocessors.js';

export interface InstantIdRunnerOptions extends ModelPaths {
  tool?: ToolDefinition;
  /** ONNX Runtime intra-op threads per session. */
  threads?: number;
  executionProvider?: ExecutionProvider;
  /** Warm pipelines kept (LRU). Default 1. */
  pipelines?: number;
  /** resize_img's max side (default 1024, as the multi-ControlNet demo / HF Space; app.py uses 1280). */
  maxSide?: number;
  /** Bytes a task's planned peak may reach; default LIKENESS_MEMORY_LIMIT or the host's memory less a margin. */
  memoryLimit?: number;
  /** Largest LoRA download (default 2 GB). */
  maxLoraBytes?: number;
  /** Bound on the URL-LoRA cache. */
  loraCacheBytes?: number;
  /** Non-public addresses the LoRA fetcher may reach (LIKENESS_FETCH_ALLOW). */
  fetchAllow?: readonly string[];
  /** Accept torch-pickle LoRAs from URLs (read only through the safe unpickler). Default false. */
  allowPickleLoras?: boolean;
  triggerWords?: TriggerWordMode;
  /** "Enhance face region" (the `_full` pipeline's control mask). Default true, as the demo. */
  enhanceFaceRegion?: boolean;
  /** Receives each task's phase times (benchmarks). */
  onTimings?(t: PhaseTimes): void;
}

/** Seconds per phase of one task. */
export interface PhaseTimes {
  prepare: number;
  faceAnalysis: number;
  load: number;
  warm: boolean;
  text: number;
  steps: number[];
  decode: number;
  png: number;
}

interface Prepared {
  inputs: InstantIdInputs;
  checkpoint: ResolvedCheckpoint;
  parts: { identityNet: string; ipAdapter: string };
  controlNets: string[];
  images: PreparedImages;
  loras: TaskLoras;
  times: { prepare: number; faceAnalysis: number };
  /** Set by run, consumed by postprocess. */
  done?: { result: Awaited<ReturnType<PipelineRun>>; times: Omit<PhaseTimes, 'png'> };
}

type PipelineRun = Awaited<ReturnType<PipelineCache['get']>>['pipeline']['run'];

const secs = (since: number): number => (performance.now() - since) / 1000;

function readConfig(path: string): Record<string, unknown> {
  return parsePythonJson(readFileSync(join(path, 'config.json'), 'utf8')) as Record<string, unknown>;
}

/** A ControlNet built for another UNet fails to run; say which part does not fit, before anything loads. */
function checkFits(unet: Record<string, unknown>, net: Record<string, unknown>, what: string, model: string): void {
  const same = (k: string): boolean => JSON.stringify(unet[k]) === JSON.stringify(net[k]);
  if (!same('block_out_channels') || !same('cross_attention_dim')) {
    throw new TaskInputError('model_mismatch',
      `${what} does not fit ${model}: it was made for a UNet with block_out_channels ${JSON.stringify(net.block_out_channels)} and ` +
      `cross_attention_dim ${JSON.stringify(net.cross_attention_dim)}, the checkpoint has ${JSON.stringify(unet.block_out_channels)} and ` +
      `${JSON.stringify(unet.cross_attention_dim)} (an SDXL checkpoint needs SDXL ControlNets; the smoke set's parts fit only the smoke model)`);
  }
}

export class InstantIdRunner implements ToolRunner {
  private readonly tool: ToolDefinition;
  private readonly faces: FaceModels;
  private readonly preprocessors: PreprocessorModels;
  private readonly pipelines: PipelineCache;
  private readonly loraCache: LoraCache;
  private readonly prepared = new Map<number, Prepared>();

  constructor(private readonly o: InstantIdRunnerOptions) {
    this.tool = o.tool ?? instantIdControlnetLora;
    this.faces = new FaceModels(o.threads);
    this.preprocessors = new PreprocessorModels({ cacheDir: join(o.home, 'cache', 'onnx'), ...(o.threads !== undefined ? { threads: o.threads } : {}) });
    this.pipelines = new PipelineCache({
      cacheDir: join(o.home, 'cache', 'onnx'),
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
      ...(o.executionProvider ? { executionProvider: o.executionProvider } : {}),
    }, o.pipelines ?? 1);
    this.loraCache = new LoraCache({
      dir: join(o.home, 'cache', 'loras'),
      maxFileBytes: o.maxLoraBytes ?? DEFAULT_MAX_LORA_BYTES,
      ...(o.loraCacheBytes !== undefined ? { maxTotalBytes: o.loraCacheBytes } : {}),
      allow: [...(o.fetchAllow ?? [])],
      allowPickle: o.allowPickleLoras === true,
    });
  }

  /** For a queued task, while another runs: its LoRA URL into the LoRA cache, so preprocess finds it there. */
  async prefetch(params: unknown, signal: AbortSignal): Promise<void> {
    for (const lora of instantIdInputs(this.tool, params as RunParams).loras) {
      if (lora.source === 'url') await this.loraCache.warm(lora.url, { signal });
    }
  }

  async preprocess(ctx: RunContext): Promise<void> {
    for (const [id, stale] of this.prepared) {
      if (id !== ctx.taskId) this.release(id, stale);
    }
    const started = performance.now();
    const inputs = instantIdInputs(this.tool, ctx.params as RunParams);
    const checkpoint = resolveCheckpoint(this.o, this.tool, inputs.checkpoint, ctx.projectId);
    const parts = resolveInstantIdParts(this.o, checkpoint);
    const controlNets = inputs.controlnets.map((c) => resolveControlNet(this.o.home, this.tool, c.id));
    let loras: TaskLoras | undefined;
    try {
      const model = openSdxlModel(checkpoint.path);
      let targets: LoraTargets;
      try {
        const unet = model.unet.config;
        checkFits(unet, readConfig(parts.identityNet), `the IdentityNet ${parts.identityNet}`, checkpoint.label);
        controlNets.forEach((p, i) => checkFits(unet, controlNetConfigAt(p), `ControlNet ${inputs.controlnets[i]!.id} (${p})`, checkpoint.label));
        targets = loraTargetsOfModel(model);
        if (checkpoint.tokenizerDir) loadTokenizers(model, checkpoint.tokenizerDir); // a single file carries none: fail now, not at load
      } finally {
        model.close();
      }
      if (checkpoint.smoke) ctx.log('checkpoint: the smoke model set (random weights: it draws noise, not pictures)');
      ctx.log(inputs.controlnets.length
        ? `ControlNets: ${inputs.controlnets.map((c) => `${c.id} ${c.label} (scale ${c.scale})`).join(', ')}`
        : 'ControlNets: none besides the IdentityNet (selectedControlnetModel is empty; absent, it defaults to canny)');
      loras = await loadTaskLoras(inputs.loras, {
        home: this.o.home, tool: this.tool, projectId: ctx.projectId, targets, cache: this.loraCache, allowPickle: this.o.allowPickleLoras === true, signal: ctx.signal, log: (l) => ctx.log(l),
      });
      const mapDirs = new Map<ModelPreprocessor, string>();
      for (const c of inputs.controlnets) {
        if (c.preprocessor === 'canny' || mapDirs.has(c.preprocessor)) continue;
        const found = preprocessorDir(this.o.home, c.preprocessor, checkpoint.smoke);
        if (found.random) ctx.log(`${c.preprocessor} preprocessor: the smoke set's RANDOM weights (${found.dir}); its maps are noise`);
        mapDirs.set(c.preprocessor, found.dir);
      }
      const makers = await this.preprocessors.makers(mapDirs).catch((err: unknown) => { throw asInputError(err); });
      const faceStart = performance.now();
      const faceModels = resolveFaceModels(this.o, checkpoint.smoke);
      if (faceModels.random) ctx.log(`face recognition: the smoke set's RANDOM recognizer (${faceModels.recognizer}); install antelopev2 for real identities`);
      const analyzer = await this.faces.get(faceModels).catch((err: unknown) => {
        throw asInputError(err, checkpoint.smoke ? ' For the smoke set, `likeness models smoke --detector FILE` copies any SCRFD .onnx with keypoints in.' : '');
      });
      const face = ctx.inputs.inputImage;
      if (!face) throw new TaskInputError('input_missing', 'inputImage: no face photo arrived');
      const pose = ctx.inputs.inputPoseImage;
      const images = await prepareImages(analyzer, {
        face: { file: face, label: fieldLabel('inputImage', inputs.faceImage) },
        pose: pose ? { file: pose, label: fieldLabel('inputPoseImage', inputs.poseImage) } : null,
        width: inputs.width, height: inputs.height,
        controlNets: inputs.controlnets.map((c) => ({ id: c.id, preprocessor: c.preprocessor })),
        enhanceFaceRegion: this.o.enhanceFaceRegion !== false,
      }, { maxSide: this.o.maxSide ?? 1024, minSide: 1024, signal: ctx.signal }, makers);
      for (const note of images.notes) ctx.log(note);
      const prepared = images.inputs;
      ctx.log(`output ${prepared.width}×${prepared.height}, face box [${prepared.faceBox.map((v) => Math.round(v)).join(', ')}]`);
      // the memory plan: a task that cannot fit is refused here, before any model loads
      const plan = planInstantIdTask(
        { model: checkpoint.path, identityNet: parts.identityNet, ipAdapter: parts.ipAdapter, controlNets },
        { width: prepared.kpsImage.width, height: prepared.kpsImage.height, samples: inputs.samples, guidanceScale: inputs.guidanceScale, loras: loras.applied },
      );
      const limit = this.o.memoryLimit ?? memoryLimit();
      checkMemoryPlan(plan, limit);
      ctx.log(`memory plan: about ${(plan.peakBytes / 2 ** 30).toFixed(1)} GB at peak (limit ${(limit / 2 ** 30).toFixed(1)} GB)`);
      this.prepared.set(ctx.taskId, {
        inputs, checkpoint, parts, controlNets, images, loras,
        times: { prepare: secs(started), faceAnalysis: secs(faceStart) },
      });
    } catch (err) {
      loras?.close();
      throw asInputError(err);
    }
  }

  async run(ctx: RunContext): Promise<void> {
    const p = this.prepared.get(ctx.taskId);
    if (!p) throw new Error('the task was not preprocessed (internal error)');
    try {
      const { inputs } = p;
      const prepared = p.images.inputs;
      const loadStart = performance.now();
      const { pipeline, loaded } = await this.pipelines.get({
        files: {
          model: p.checkpoint.path, ...(p.checkpoint.tokenizerDir ? { tokenizerDir: p.checkpoint.tokenizerDir } : {}),
          identityNet: p.parts.identityNet, ipAdapter: p.parts.ipAdapter, controlNets: p.controlNets,
        },
        loras: p.loras.applied,
      }).catch((err: unknown) => { throw asInputError(err); });
      const load = secs(loadStart);
      if (loaded) ctx.log(`loaded the pipeline in ${load.toFixed(1)} s`);
      const marks: { text?: number; steps: number[]; decode?: number } = { steps: [] };
      const prompt = promptWithTriggerWords(inputs.prompt, inputs.loras, this.o.triggerWords ?? 'first');
      if (prompt !== inputs.prompt) ctx.log(`trigger words added to the prompt: ${prompt.slice(0, prompt.length - inputs.prompt.length).replace(/, $/, '')}`);
      const t0 = performance.now();
      const result = await pipeline.run({
        faceEmbedding: prepared.faceEmbedding,
        kpsImage: prepared.kpsImage,
        controlImages: prepared.controlImages ?? [],
        prompt,
        negativePrompt: inputs.negativePrompt,
        promptMode: 'lpw',
        steps: inputs.steps,
        guidanceScale: inputs.guidanceScale,
        ipAdapterScale: inputs.ipAdapterScale,
        identitynetScale: inputs.identitynetScale,
        controlnetScales: inputs.controlnets.map((c) => c.scale),
        ...(prepared.controlMask ? { controlMask: prepared.controlMask } : {}),
        width: prepared.width,
        height: prepared.height,
        samples: inputs.samples,
        seed: inputs.seed,
        scheduler: inputs.scheduler,
        signal: ctx.signal,
        onProgress: (step, total) => ctx.progress({ stepCurrent: step, stepTotal: total }),
        trace: (name) => {
          const now = performance.now();
          if (name === 'prompt_embeds') marks.text = now;
          else if (/^step\d+\.latents$/.test(name)) marks.steps.push(now);
          else if (name === 'image') marks.decode = now;
        },
      });
      const decoded = performance.now();
      const textEnd = marks.text ?? t0;
      const steps = marks.steps.map((t, i) => (t - (i === 0 ? textEnd : marks.steps[i - 1]!)) / 1000);
      p.done = {
        result,
        times: {
          prepare: p.times.prepare, faceAnalysis: p.times.faceAnalysis, load, warm: !loaded,
          text: (textEnd - t0) / 1000, steps, decode: ((marks.decode ?? decoded) - (marks.steps.at(-1) ?? textEnd)) / 1000,
        },
      };
    } catch (err) {
      this.release(ctx.taskId, p);
      throw err;
    }
  }

  async postprocess(ctx: RunContext): Promise<void> {
    const p = this.prepared.get(ctx.taskId);
    if (!p?.done) throw new Error('the task has no generated images to encode (internal error)');
    try {
      const { result, times: t } = p.done;
      const pngStart = performance.now();
      for (let i = 0; i < p.inputs.samples; i++) await ctx.writeOutput(`${i}.png`, await resultPng(result, i), 'image/png');
      const times: PhaseTimes = { ...t, png: secs(pngStart) };
      ctx.log(`seed ${result.seed}; times: face analysis ${times.faceAnalysis.toFixed(2)} s, text ${times.text.toFixed(2)} s, ` +
        `${times.steps.length} steps ${(times.steps.reduce((a, b) => a + b, 0)).toFixed(2)} s, decode ${times.decode.toFixed(2)} s, png ${times.png.toFixed(2)} s`);
      this.o.onTimings?.(times);
    } finally {
      this.release(ctx.taskId, p);
    }
  }

  private release(taskId: number, p: Prepared): void {
    p.loras.close();
    this.prepared.delete(taskId);
  }

  /** Frees the warm pipelines and face models (server shutdown, tests). */
  async dispose(): Promise<void> {
    for (const [id, p] of this.prepared) this.release(id, p);
    await this.pipelines.dispose();
    await this.faces.dispose();
    await this.preprocessors.dispose();
  }
}
