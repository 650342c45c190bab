// Golden kind `instantid_pipeline` (and, through the same code, `instantid_pipeline_multicontrolnet`):
// the whole InstantID pipeline on the case's tiny parts, checked at every intermediate the case
// records. Everything is read from case.json: the components (other case folders, files of this
// one; an extra ControlNet's config under its file stem), the scheduler, the Resampler's head split,
// the call (prompt, sizes, scales, guidance window, which io tensors are the control images), and
// the outputs. `maskon.*` outputs are checked on a second run with the case's control mask. An
// output the pipeline does not produce FAILS with a note; nothing is skipped.
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { GoldenCase } from '../case.js';
import { compareClose, compareExact, type Check } from '../compare.js';
import { caseNames, goldenCacheDir } from '../net-io.js';
import { parsePythonJson } from '../../formats/pyjson.js';
import { openWeights, type WeightsFile } from '../../formats/weights.js';
import { GraphBuilder, createSession, encodeModel } from '../../onnx/index.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { resizeLike } from '../../nets/sdxl-blocks.js';
import { ClipTokenizer } from '../../text/clip-tokenizer.js';
import { InstantIdPipeline, type ImageU8, type InstantIdParts, type InstantIdRunOptions, type TraceTensor } from '../../pipelines/instantid.js';
import type { NetFiles } from '../../pipelines/instantid-load.js';

const fail = (name: string, note: string): Check => ({ name, maxAbsError: Infinity, allowed: 0, pass: false, note });

/** "../unet-sdxl", "tokenizer/ (this folder)", "controlnet2.fp16.safetensors (this folder)" → the path's first word. */
function firstWord(v: unknown, what: string): string {
  if (typeof v !== 'string' || !v.trim()) throw new Error(`config.components.${what} is not a path`);
  return v.trim().split(/\s+/)[0]!;
}

function readJson(path: string): Record<string, unknown> {
  return parsePythonJson(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

/** The case's parts, opened; close() releases the files once the pipeline is loaded. */
export async function openGoldenInstantIdParts(c: GoldenCase): Promise<{ parts: InstantIdParts; close(): void }> {
  const components = (c.config.components ?? {}) as Record<string, unknown>;
  const opened: WeightsFile[] = [];
  const close = (): void => { for (const f of opened) f.close(); };
  const open = async (path: string, config: Record<string, unknown>): Promise<NetFiles> => {
    const w = openWeights(path);
    opened.push(w);
    return { config, weights: w, weightsHash: await weightsHashOf([path]) };
  };
  /** A component in another case folder: its case.json config and files.weights. */
  const folder = async (key: string): Promise<NetFiles> => {
    const dir = c.file(firstWord(components[key], key));
    const json = readJson(join(dir, 'case.json'));
    const files = (json.files ?? {}) as Record<string, unknown>;
    return open(join(dir, typeof files.weights === 'string' ? files.weights : 'weights.safetensors'), (json.config ?? {}) as Record<string, unknown>);
  };
  /** A ControlNet: a case folder, or a weight file here whose config is config[<file stem>]. */
  const controlnet = async (key: string): Promise<NetFiles> => {
    const rel = firstWord(components[key], key);
    if (!/\.(safetensors|bin)$/.test(rel)) return folder(key);
    const stem = basename(rel).split('.')[0]!;
    const config = c.config[stem];
    if (!config || typeof config !== 'object') throw new Error(`${c.name}: no config.${stem} for ${rel}`);
    return open(c.file(rel), config as Record<string, unknown>);
  };
  try {
    const netKeys = Object.keys(components).filter((k) => /^controlnet/.test(k))
      .map((k) => ({ k, index: Number(/\[(\d+)\]/.exec(k)?.[1] ?? 0) })).sort((a, b) => a.index - b.index);
    if (netKeys.length === 0 || netKeys[0]!.index !== 0) throw new Error(`${c.name}: config.components names no IdentityNet (controlnet / controlnet[0])`);
    const ipKey = Object.keys(components).find((k) => /ip|image_proj/.test(k));
    if (!ipKey) throw new Error(`${c.name}: config.components names no ip-adapter file`);
    const ipPath = c.file(firstWord(components[ipKey], ipKey));
    const ip = openWeights(ipPath);
    opened.push(ip);
    const resampler = (c.config.resampler ?? {}) as Record<string, unknown>;
    const nets = await Promise.all(netKeys.map(({ k }) => controlnet(k)));
    const parts: InstantIdParts = {
      unet: await folder('unet'),
      vae: await folder('vae'),
      textEncoder: await folder('text_encoder'),
      textEncoder2: await folder('text_encoder_2'),
      tokenizer1: ClipTokenizer.fromFolder(c.file(firstWord(components.tokenizer, 'tokenizer'))),
      tokenizer2: ClipTokenizer.fromFolder(c.file(firstWord(components.tokenizer_2, 'tokenizer_2'))),
      schedulerConfig: (c.config.scheduler ?? {}) as Record<string, unknown>,
      identityNet: nets[0]!,
      controlNets: nets.slice(1),
      ipAdapter: { weights: ip, weightsHash: await weightsHashOf([ipPath]) },
      resampler: {
        ...(typeof resampler.heads === 'number' ? { heads: resampler.heads } : {}),
        ...(typeof resampler.dim_head === 'number' ? { dimHead: resampler.dim_head } : {}),
      },
    };
    return { parts, close };
  } catch (err) {
    close();
    throw err;
  }
}

/** An io uint8 image [H, W] or [H, W, C] as ImageU8. */
export function ioImage(c: GoldenCase, name: string): ImageU8 {
  const { shape } = c.io().info(name);
  const data = c.io().read(name);
  if (!(data instanceof Uint8Array) || (shape.length !== 2 && shape.length !== 3)) throw new Error(`${c.name}: ${name} is not a uint8 image`);
  const channels = (shape[2] ?? 1) as 1 | 3 | 4;
  return { data, width: shape[1]!, height: shape[0]!, channels };
}

/** The io tensor names in `value` ("kps.png (io: kps_image_uint8)", or a list of such). */
function ioNames(value: unknown): string[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => {
    const m = typeof v === 'string' ? /io:\s*([\w.]+)/.exec(v) : null;
    if (!m) throw new Error(`cannot tell which io tensor ${JSON.stringify(v)} is`);
    return m[1]!;
  });
}

const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number') throw new Error(`config.call.${what} is not a number`);
  return v;
};
const nums = (v: unknown, what: string): number[] => (Array.isArray(v) ? v.map((x, i) => num(x, `${what}[${i}]`)) : [num(v, what)]);

/** The run options the case's `call` describes. */
export function caseRunOptions(c: GoldenCase): InstantIdRunOptions {
  const call = (c.config.call ?? {}) as Record<string, unknown>;
  const io = c.io();
  const images = ioNames(call.image).map((n) => ioImage(c, n));
  const scales = nums(call.controlnet_conditioning_scale ?? 1, 'controlnet_conditioning_scale');
  const full = /_full/.test(String(c.config.pipeline ?? '')) || c.kind === 'instantid_pipeline_multicontrolnet';
  const perNet = (v: unknown, what: string, d: number): number | number[] => (v === undefined ? d : Array.isArray(v) ? nums(v, what) : num(v, what));
  const latentsName = caseNames(c, 'inputs').find((n) => /^latents/.test(n));
  return {
    faceEmbedding: io.readFloat32(ioNames(call.image_embeds)[0]!),
    kpsImage: images[0]!,
    controlImages: images.slice(1),
    prompt: String(call.prompt ?? ''),
    negativePrompt: typeof call.negative_prompt === 'string' ? call.negative_prompt : null,
    promptMode: full ? 'lpw' : 'standard',
    steps: num(call.num_inference_steps, 'num_inference_steps'),
    guidanceScale: num(call.guidance_scale, 'guidance_scale'),
    ipAdapterScale: num(call.ip_adapter_scale, 'ip_adapter_scale'),
    identitynetScale: scales[0]!,
    controlnetScales: scales.slice(1).length ? scales.slice(1) : Array<number>(images.length - 1).fill(scales[0]!),
    controlGuidanceStart: perNet(call.control_guidance_start, 'control_guidance_start', 0),
    controlGuidanceEnd: perNet(call.control_guidance_end, 'control_guidance_end', 1),
    ...(typeof call.width === 'number' ? { width: call.width } : {}),
    ...(typeof call.height === 'number' ? { height: call.height } : {}),
    samples: typeof call.num_images_per_prompt === 'number' ? call.num_images_per_prompt : 1,
    ...(latentsName ? { latents: io.readFloat32(latentsName) } : {}),
  };
}

/** Golden name → the pipeline's trace name (per-net residuals: identitynet = net 0, controlnet<m> = net m−1). */
export function traceName(name: string): string {
  if (name === 'control_image') return 'control_image.0';
  const net = /^(step\d+)\.(identitynet|controlnet(\d+))_(.+)$/.exec(name);
  if (net) return `${net[1]}.net${net[3] ? Number(net[3]) - 1 : 0}.${net[4]}`;
  return name;
}

/**
 * The UNet's IP region mask at an h×w layer, through the same ONNX Resize (nearest, asymmetric,
 * floor) the UNet graph applies to its region_mask input; the graph does not expose it.
 */
async function ipRegionMaps(mask: ImageU8, wanted: string[]): Promise<Map<string, Float32Array>> {
  const g = new GraphBuilder({ name: 'ip-region-mask' });
  const x = g.input('mask', [1, 1, mask.height, mask.width]);
  for (const name of wanted) {
    const [, h, w] = /ip_region_mask_(\d+)x(\d+)$/.exec(name)!;
    g.output(resizeLike(g, x, g.ints([Number(h), Number(w)]), 'nearest', [1, 1, Number(h), Number(w)]), name);
  }
  const session = await createSession(await encodeModel(g.build()), { intraOpThreads: 1 });
  try {
    const plane = Float32Array.from({ length: mask.width * mask.height }, (_, p) => Math.fround(mask.data[p * mask.channels]! / 255));
    const out = await session.run({ mask: { dtype: 'float32', dims: [1, 1, mask.height, mask.width], data: plane } });
    return new Map(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
  } finally {
    await session.dispose();
  }
}

/** Compares one output; a recorded first half / first row of a CFG batch is compared with our leading rows. */
function judge(c: GoldenCase, name: string, actual: TraceTensor | undefined): Check {
  if (!actual) return fail(name, 'the pipeline produced no such intermediate');
  const io = c.io();
  const { dtype, shape } = io.info(name);
  const expectedCount = shape.reduce((a, b) => a * b, 1);
  let data = actual.data;
  let note: string | undefined;
  if (data.length !== expectedCount) {
    const rows = actual.dims[0] ?? 0;
    const sameTail = shape.length === actual.dims.length && shape.slice(1).every((d, i) => d === actual.dims[i + 1]);
    if (!sameTail || shape[0]! > rows) return fail(name, `shape [${actual.dims.join(', ')}], expected [${shape.join(', ')}]`);
    data = data.subarray(0, expectedCount) as typeof data;
    note = `first ${shape[0]} of our ${rows} batch rows`;
  }
  const check = dtype === 'I64' || dtype === 'I32'
    ? compareExact(name, data as BigInt64Array, io.read(name) as BigInt64Array)
    : data instanceof Float32Array ? compareClose(name, data, io.readFloat32(name), c.tolerance) : fail(name, 'ids where floats were expected');
  return note && check.pass ? { ...check, note } : check;
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const outputs = caseNames(c, 'outputs');
  const maskName = caseNames(c, 'inputs').find((n) => /mask/.test(n));
  const masked = outputs.filter((n) => n.startsWith('maskon.'));
  const { parts, close } = await openGoldenInstantIdParts(c);
  let pipeline: InstantIdPipeline;
  try {
    pipeline = await InstantIdPipeline.fromParts(parts, { cacheDir: goldenCacheDir(), threads: 1 });
  } finally {
    close();
  }
  try {
    const options = caseRunOptions(c);
    const runs = new Map<string, Map<string, TraceTensor>>();
    const traced = async (extra: Partial<InstantIdRunOptions>): Promise<Map<string, TraceTensor>> => {
      const seen = new Map<string, TraceTensor>();
      // Copies: the pipeline may reuse nothing, but a trace must not alias later buffers.
      await pipeline.run({ ...options, ...extra, trace: (n, t) => seen.set(n, { dims: [...t.dims], data: t.data.slice() }) });
      return seen;
    };
    runs.set('', await traced({}));
    const maskImage = masked.length > 0 && maskName ? ioImage(c, maskName) : undefined;
    if (maskImage) runs.set('maskon.', await traced({ controlMask: maskImage }));
    const ipMasks = masked.filter((n) => /ip_region_mask_\d+x\d+$/.test(n));
    const maps = maskImage && ipMasks.length ? await ipRegionMaps(maskImage, ipMasks) : new Map<string, Float32Array>();
    const checks: Check[] = [];
    for (const name of outputs) {
      const map = maps.get(name);
      if (map) {
        checks.push({ ...compareClose(name, map, c.io().readFloat32(name), c.tolerance), note: 'the UNet graph\'s nearest ONNX Resize' });
        continue;
      }
      const prefix = name.startsWith('maskon.') ? 'maskon.' : '';
      const run = runs.get(prefix);
      if (!run) {
        checks.push(fail(name, 'the case records masked outputs but names no control mask input'));
        continue;
      }
      checks.push(judge(c, name, run.get(traceName(name.slice(prefix.length)))));
    }
    return checks;
  } finally {
    await pipeline.dispose();
  }
}
