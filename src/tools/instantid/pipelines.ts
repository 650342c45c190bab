// Warm InstantID pipelines, reused across tasks (the tool is "persistent"): a small LRU keyed by
// (checkpoint, InstantID parts, extra ControlNets, LoRA set + scales). An evicted pipeline is disposed
// before the next one loads, so at most `capacity` models are held. Compiled graphs live in the
// on-disk cache ($LIKENESS_HOME/cache/onnx), so a pipeline evicted and wanted again loads without
// compiling. LoRAs patch the UNet and both text encoders, never IdentityNet or the other ControlNets
// (instantid.md §10): as run-time branches of one slotted pipeline per model (engine/lora/runtime.ts;
// a set or scale change is setLoras(), no rebuild, nothing written), or — for what branches cannot
// carry (DoRA, LoCon convolutions) — fused into the weights as they are read (engine/lora/apply.ts),
// one pipeline and compile-cache entry per (set, scales).
import { graphChoicesFor } from '../../engine/onnx/provider.js';
import { lorasFor, loraCacheKey, withLoras, type AppliedLora } from '../../engine/lora/apply.js';
import { runtimeLoraSupport } from '../../engine/lora/runtime.js';
import type { LoraComponent } from '../../engine/formats/lora.js';
import { InstantIdPipeline, type InstantIdFiles, type InstantIdLoadOptions } from '../../engine/pipelines/instantid.js';
import { openInstantIdParts, type InstantIdParts, type NetFiles } from '../../engine/pipelines/instantid-load.js';

export interface PipelineSpec {
  files: InstantIdFiles;
  loras: readonly AppliedLora[];
}

/**
 * The cache key: paths of every part, then — for a fused pipeline — each LoRA's content id and scale
 * in the order applied. A slotted pipeline (LoRAs as run-time branches) serves every LoRA set.
 */
export function pipelineKey(spec: PipelineSpec, slotted = false): string {
  if (slotted) return JSON.stringify({ ...spec.files, loraSlots: true });
  const loras = spec.loras.filter((l) => l.scale !== 0).map((l) => [l.lora.id, l.scale]);
  return JSON.stringify({ ...spec.files, loras });
}

/** Whether branches can carry every delta of these LoRAs (no DoRA, no convolution), judged from the files alone. */
export function branchable(loras: readonly AppliedLora[]): boolean {
  return (['unet', 'text_encoder', 'text_encoder_2'] as const).every((c) => runtimeLoraSupport(lorasFor(c, loras)).ok);
}

function patched(part: NetFiles, component: LoraComponent, loras: readonly AppliedLora[]): NetFiles {
  const scaled = lorasFor(component, loras);
  if (scaled.length === 0) return part;
  const used = loras.filter((l) => l.lora.deltas[component].length > 0).map((l) => ({ id: l.lora.id, scale: l.scale }));
  return { ...part, weights: withLoras(part.weights, scaled), weightsHash: loraCacheKey(part.weightsHash, used) };
}

/** The parts with the LoRAs merged into the UNet and both text encoders. */
export function withLoraParts(parts: InstantIdParts, loras: readonly AppliedLora[]): InstantIdParts {
  if (loras.length === 0) return parts;
  return {
    ...parts,
    unet: patched(parts.unet, 'unet', loras),
    textEncoder: patched(parts.textEncoder, 'text_encoder', loras),
    textEncoder2: patched(parts.textEncoder2, 'text_encoder_2', loras),
  };
}

interface Entry {
  key: string;
  pipeline: InstantIdPipeline;
}

export class PipelineCache {
  private readonly entries: Entry[] = []; // least recently used first

  constructor(private readonly options: InstantIdLoadOptions, private readonly capacity = 1) {}

  /**
   * A loaded pipeline for the spec, its LoRAs applied; `loaded` says whether it was loaded now
   * (false: warm). LoRAs go in as run-time branches when they can (a LoRA change on a warm pipeline
   * loads nothing), fused otherwise.
   */
  async get(spec: PipelineSpec): Promise<{ pipeline: InstantIdPipeline; loaded: boolean }> {
    if (graphChoicesFor(this.options.executionProvider).loraBranches && branchable(spec.loras)) {
      const got = await this.entry(pipelineKey(spec, true), spec, true);
      got.pipeline.setLoras(spec.loras);
      return got;
    }
    return this.entry(pipelineKey(spec), spec, false);
  }

  private async entry(key: string, spec: PipelineSpec, slotted: boolean): Promise<{ pipeline: InstantIdPipeline; loaded: boolean }> {
    const at = this.entries.findIndex((e) => e.key === key);
    if (at >= 0) {
      const [entry] = this.entries.splice(at, 1);
      this.entries.push(entry!);
      return { pipeline: entry!.pipeline, loaded: false };
    }
    while (this.entries.length >= Math.max(1, this.capacity)) await this.entries.shift()!.pipeline.dispose().catch(() => undefined);
    const { parts, close } = await openInstantIdParts(spec.files);
    try {
      const pipeline = slotted
        ? await InstantIdPipeline.fromParts(parts, { ...this.options, loraSlots: true })
        : await InstantIdPipeline.fromParts(withLoraParts(parts, spec.loras), this.options);
      this.entries.push({ key, pipeline });
      return { pipeline, loaded: true };
    } finally {
      close();
    }
  }

  get size(): number {
    return this.entries.length;
  }

  async dispose(): Promise<void> {
    const all = this.entries.splice(0);
    await Promise.all(all.map((e) => e.pipeline.dispose().catch(() => undefined)));
  }
}
