// likeness preprocess openpose IMAGE -o OUT.png — writes the pose map ControlNet 458 would be fed, so a
// person can look at it before running a task. One entry of the preprocess verb (preprocess.ts).
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { EngineError } from '../engine/errors.js';
import {
  DEFAULT_DETECT_RESOLUTION, DEFAULT_IMAGE_RESOLUTION, OPENPOSE_BODY_FILE, OPENPOSE_DOWNLOAD, OPENPOSE_LICENCE, OpenposeDetector,
} from '../engine/control/openpose/index.js';
import { encodePng } from '../engine/pipelines/denoise-math.js';
import { ImageError, decodeImageRGB, type DecodedImage } from '../net/image.js';
import { fail } from './args.js';
import type { PreprocessEntry } from './preprocess-maps.js';

type Values = Record<string, string | boolean | undefined>;

interface MapResult {
  data: Uint8Array;
  width: number;
  height: number;
  /** One line for the user (what was found). */
  summary: string;
}

interface Preprocessor {
  summary: string;
  /** Options beyond the common ones (name → parseArgs spec and help line). */
  options: Record<string, { type: 'string' | 'boolean'; help: string }>;
  run(image: DecodedImage, values: Values, ctx: { home: string; threads?: number }): Promise<MapResult>;
}

function positiveInt(values: Values, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 64 || n > 4096) throw new UsageError(`--${name} must be a whole number from 64 to 4096`);
  return n;
}

class UsageError extends Error {}

const PREPROCESSORS: Record<string, Preprocessor> = {
  openpose: {
    summary: `OpenPose body skeleton as controlnet_aux draws it (body only: no hands, no face)`,
    options: {
      weights: { type: 'string', help: `body_pose_model.pth (default $LIKENESS_HOME/${OPENPOSE_BODY_FILE})` },
      'detect-resolution': { type: 'string', help: `short side the pose is detected at, rounded to 64s (default ${DEFAULT_DETECT_RESOLUTION})` },
      'image-resolution': { type: 'string', help: `short side of the map written, rounded to 64s (default ${DEFAULT_IMAGE_RESOLUTION})` },
    },
    async run(image, values, ctx) {
      const weights = typeof values.weights === 'string' ? resolve(values.weights) : join(ctx.home, OPENPOSE_BODY_FILE);
      const detectResolution = positiveInt(values, 'detect-resolution', DEFAULT_DETECT_RESOLUTION);
      const imageResolution = positiveInt(values, 'image-resolution', DEFAULT_IMAGE_RESOLUTION);
      const detector = await OpenposeDetector.open(weights, {
        cacheDir: join(ctx.home, 'cache', 'onnx'),
        ...(ctx.threads !== undefined ? { session: { intraOpThreads: ctx.threads } } : {}),
      });
      try {
        const map = await detector.detect(image, { detectResolution, imageResolution });
        return { ...map, summary: `${map.people} ${map.people === 1 ? 'person' : 'people'} found` };
      } finally {
        await detector.dispose();
      }
    },
  },
};

function help(): string {
  const lines = [
    'usage:',
    '  likeness preprocess KIND IMAGE -o OUT.png [--home DIR] [--threads N] [KIND options]',
    '',
    'Writes the control map the tool would feed that ControlNet, computed from IMAGE (the pose image or',
    'the face photo), as a PNG.',
    '',
    'KIND:',
  ];
  for (const [name, p] of Object.entries(PREPROCESSORS)) {
    lines.push(`  ${name}  ${p.summary}`);
    for (const [opt, o] of Object.entries(p.options)) lines.push(`    --${opt}${o.type === 'string' ? ' VALUE' : ''}  ${o.help}`);
  }
  lines.push('', `openpose needs ${OPENPOSE_BODY_FILE} under $LIKENESS_HOME (default ./data): ${OPENPOSE_DOWNLOAD}`, `(${OPENPOSE_LICENCE}).`);
  lines.push('Exit status: 0 map written, 2 usage, image or model errors.');
  return lines.join('\n');
}

async function run(args: string[]): Promise<number> {
  const kindOptions = Object.fromEntries(Object.values(PREPROCESSORS).flatMap((p) => Object.entries(p.options).map(([k, o]) => [k, { type: o.type }])));
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        home: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...kindOptions,
      },
    });
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${help()}`);
  }
  const { positionals } = parsed;
  const values = parsed.values as Values;
  const [kind, imagePath, ...extra] = positionals;
  if (values.help || !kind) {
    console.log(help());
    return values.help ? 0 : 2;
  }
  const pre = PREPROCESSORS[kind];
  if (!pre) return fail(`unknown preprocessor "${kind}" (known: ${Object.keys(PREPROCESSORS).join(', ')})\n\n${help()}`);
  if (!imagePath || extra.length > 0) return fail(`preprocess ${kind} takes one image\n\n${help()}`);
  if (typeof values.out !== 'string') return fail('give the output file with -o OUT.png');
  for (const [name, p] of Object.entries(PREPROCESSORS)) {
    if (name === kind) continue;
    for (const opt of Object.keys(p.options)) {
      if (values[opt] !== undefined && !(opt in pre.options)) return fail(`--${opt} is an option of ${name}, not of ${kind}`);
    }
  }
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 0)) return fail('--threads must be a whole number');
  const home = loadConfig(typeof values.home === 'string' ? { home: values.home } : {}).home;
  try {
    const image = await decodeImageRGB(await readFile(imagePath), { label: imagePath });
    const started = Date.now();
    const map = await pre.run(image, values, { home, ...(threads !== undefined ? { threads } : {}) });
    await writeFile(values.out, await encodePng(map.data, map.width, map.height));
    console.log(`${values.out}: ${kind} map ${map.width}×${map.height} from ${imagePath} (${image.width}×${image.height}), ${map.summary}, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (err) {
    if (err instanceof EngineError || err instanceof ImageError || err instanceof UsageError || err instanceof RangeError) return fail(err.message);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fail(`cannot read ${imagePath}: no such file`);
    throw err;
  }
}

export const OPENPOSE_ENTRY: PreprocessEntry = {
  name: 'openpose',
  summary: PREPROCESSORS.openpose!.summary + ', for ControlNet 458',
  run: (args) => run(['openpose', ...args]),
};
