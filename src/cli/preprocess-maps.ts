// `likeness preprocess depth|canny IMAGE -o OUT.png`: the control map the InstantID tool would feed the
// depth (455) or canny (454) ControlNet for this photo, written as a PNG a person can look at. The
// photo goes through the tool's resize_img first (long side 1024, as the service), unless --as-is.
// Each entry is one preprocess kind: `likeness preprocess` (preprocess.ts) lists them.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig } from '../config.js';
import { cannyControlImage } from '../engine/control/canny.js';
import { DEPTH_ANYTHING_DOWNLOAD, DepthEstimator } from '../engine/control/depth/index.js';
import { resizeImg } from '../engine/control/resize.js';
import { EngineError } from '../engine/errors.js';
import { ImageError, decodeImageRGB } from '../net/image.js';
import { fail } from './args.js';

export interface PreprocessEntry {
  name: string;
  summary: string;
  run(args: string[]): Promise<number>;
}

const COMMON = `  -o, --out FILE     the PNG to write (required)
  --as-is            use the photo at its own size (default: resize_img as the tool does, long side --max-side)
  --max-side N       resize_img's long side (default 1024, as the service)`;

interface Parsed { image: string; out: string; asIs: boolean; maxSide: number; values: Record<string, string | boolean | undefined> }

function parse(name: string, help: string, args: string[], extra: Record<string, { type: 'string' | 'boolean' }>): Parsed | number {
  let parsed;
  try {
    parsed = parseArgs({
      args, allowPositionals: true,
      options: { out: { type: 'string', short: 'o' }, 'as-is': { type: 'boolean' }, 'max-side': { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...extra },
    });
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${help}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(help);
    return 0;
  }
  if (positionals.length !== 1 || typeof values.out !== 'string') return fail(`preprocess ${name} needs one IMAGE and -o OUT.png\n\n${help}`);
  const maxSide = values['max-side'] === undefined ? 1024 : Number(values['max-side']);
  if (!Number.isInteger(maxSide) || maxSide < 64 || maxSide > 4096) return fail('--max-side must be an integer in 64..4096');
  return { image: positionals[0]!, out: values.out, asIs: values['as-is'] === true, maxSide, values: values as Parsed['values'] };
}

async function picture(p: Parsed): Promise<{ data: Uint8Array; width: number; height: number }> {
  const img = await decodeImageRGB(new Uint8Array(await readFile(p.image)), { label: p.image });
  if (p.asIs) return img;
  return resizeImg(img.data, img.width, img.height, { maxSide: p.maxSide, minSide: 1024 });
}

async function writePng(path: string, data: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<void> {
  const img = sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels } });
  await writeFile(path, await (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer());
}

/** Errors a user can act on are one line and exit 2; others propagate. */
async function guarded(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof EngineError || err instanceof ImageError || (err as NodeJS.ErrnoException).code === 'ENOENT') return fail((err as Error).message);
    throw err;
  }
}

const DEPTH_HELP = `usage: likeness preprocess depth IMAGE -o OUT.png [--model DIR] [--threads N] [--positions MODE]
${COMMON}
  --model DIR        Depth Anything in the transformers layout: config.json + model.safetensors
                     (default $LIKENESS_HOME/models/depth-anything; download them from
                     ${DEPTH_ANYTHING_DOWNLOAD.small.repo}, ${DEPTH_ANYTHING_DOWNLOAD.small.licence})
  --threads N        ONNX Runtime intra-op threads
  --positions MODE   Dinov2's position-embedding interpolation: scale_factor (the original repo the
                     InstantID Space runs; transformers ≤ 4.45) or size (transformers ≥ 4.46); default:
                     what the config's transformers_version implies

Writes the 8-bit depth map (near = bright) the depth ControlNet (455) gets: the InstantID Space's
get_depth_map (lower bound 518, multiple of 14, min-max to 0..255).`;

const CANNY_HELP = `usage: likeness preprocess canny IMAGE -o OUT.png
${COMMON}

Writes the canny map the canny ControlNet (454) gets: cv2.Canny(100, 200) as the demo's get_canny_image.`;

export const PREPROCESS_MAPS: readonly PreprocessEntry[] = [
  {
    name: 'depth',
    summary: 'the depth map (Depth Anything) for ControlNet 455',
    run: (args) => guarded(async () => {
      const p = parse('depth', DEPTH_HELP, args, { model: { type: 'string' }, threads: { type: 'string' }, home: { type: 'string' }, positions: { type: 'string' } });
      if (typeof p === 'number') return p;
      const positions = p.values.positions;
      if (positions !== undefined && positions !== 'size' && positions !== 'scale_factor') return fail('--positions is size or scale_factor');
      const home = loadConfig(typeof p.values.home === 'string' ? { home: p.values.home } : {}).home;
      const model = typeof p.values.model === 'string' ? p.values.model : join(home, 'models', 'depth-anything');
      const threads = p.values.threads === undefined ? undefined : Number(p.values.threads);
      const img = await picture(p);
      const est = await DepthEstimator.open(model, {
        cacheDir: join(home, 'cache', 'onnx'), ...(threads ? { session: { intraOpThreads: threads } } : {}), ...(positions ? { positionInterpolation: positions } : {}),
      });
      try {
        const t0 = performance.now();
        const map = await est.estimate(img);
        await writePng(p.out, map.data, map.width, map.height, 1);
        console.log(`${p.out}: depth ${map.width}×${map.height} (network input ${map.netWidth}×${map.netHeight}, position interpolation ${est.config.positionInterpolation}) in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
      } finally {
        await est.dispose();
      }
      return 0;
    }),
  },
  {
    name: 'canny',
    summary: 'the canny edge map for ControlNet 454',
    run: (args) => guarded(async () => {
      const p = parse('canny', CANNY_HELP, args, {});
      if (typeof p === 'number') return p;
      const img = await picture(p);
      await writePng(p.out, cannyControlImage(img.data, img.width, img.height, 100, 200), img.width, img.height, 3);
      console.log(`${p.out}: canny ${img.width}×${img.height}`);
      return 0;
    }),
  },
];
