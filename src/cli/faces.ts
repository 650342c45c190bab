// likeness faces detect IMAGE — run the face detector on a photo and print what it found, so anyone
// can check detection (and the "no face" error) on their own photos before running InstantID.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../config.js';
import { EngineError } from '../engine/errors.js';
import { FaceAnalyzer, minimumFaceSize, selectFace } from '../engine/face/analysis.js';
import { DEFAULT_DET_SIZE } from '../engine/face/scrfd.js';
import type { Detection } from '../engine/face/types.js';
import { ImageError, decodeImageRGB } from '../net/image.js';
import { fail, parseVerb } from './args.js';
import { resolveFaceModels } from '../tools/instantid/models.js';

const DEFAULT_DETECTOR = join('models', 'antelopev2', 'scrfd_10g_bnkps.onnx');

const HELP = `usage:
  likeness faces detect IMAGE [--detector FILE] [--det-size N] [--no-retry] [--json]

Detects faces as InstantID's face analysis does (insightface SCRFD, threshold 0.5, NMS 0.4) and
prints each face's box (x1, y1, x2, y2), score and 5 keypoints (left eye, right eye, nose, left and
right mouth corner, as seen in the image) in the photo's own pixels, highest score first. The face
InstantID would use (the largest) is marked. If nothing is found at --det-size (default 640), smaller
sizes are tried as ComfyUI_InstantID does, unless --no-retry.

--detector defaults to $LIKENESS_HOME/${DEFAULT_DETECTOR} (LIKENESS_HOME defaults to ./data), else the
detector \`likeness models smoke --detector FILE\` copied into the smoke set — the one a Run would use. Any SCRFD
ONNX with keypoints works (antelopev2 scrfd_10g_bnkps, buffalo det_10g / det_2.5g / det_500m).
Exit status: 0 faces found, 1 none found, 2 usage or model errors.`;

interface FaceJson {
  box: number[];
  score: number;
  kps: number[][];
  chosen: boolean;
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

export async function run(args: string[]): Promise<number> {
  const parsed = parseVerb(args, {
    detector: { type: 'string' },
    'det-size': { type: 'string' },
    'no-retry': { type: 'boolean' },
    json: { type: 'boolean' },
    home: { type: 'string' },
    threads: { type: 'string' },
  }, HELP);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals, action } = parsed;
  const [, imagePath, ...extra] = positionals;
  if (action !== 'detect') return fail(`unknown action "${action}"\n\n${HELP}`);
  if (!imagePath || extra.length > 0) return fail(`faces detect takes one image\n\n${HELP}`);
  const detSize = values['det-size'] === undefined ? DEFAULT_DET_SIZE : Number(values['det-size']);
  if (!Number.isInteger(detSize) || detSize < 32 || detSize % 32 !== 0) return fail('--det-size must be a positive multiple of 32');
  const threads = values.threads === undefined ? undefined : Number(values.threads);
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 0)) return fail('--threads must be a whole number');
  // The detector a Run would use: antelopev2's, else the one `models smoke --detector` copied in.
  const detector = values.detector ?? resolveFaceModels({ home: loadConfig(values.home ? { home: values.home } : {}).home }, true).detector;

  let analyzer: FaceAnalyzer | undefined;
  try {
    const image = await decodeImageRGB(await readFile(imagePath), { label: imagePath });
    analyzer = await FaceAnalyzer.load({
      detector, detSize,
      ...(values['no-retry'] ? { retrySizes: [] } : {}),
      ...(threads !== undefined ? { intraOpThreads: threads } : {}),
    });
    const found = await analyzer.detect(image);
    const tried = found.faces.length > 0 || found.detSize === detSize ? `${found.detSize}` : `${detSize} down to ${found.detSize}`;
    const chosen = found.faces.length > 0 ? selectFace(found.faces, 'largest', image) : -1;
    const faces: FaceJson[] = found.faces.map((f, i) => toJson(f, i === chosen));
    if (values.json) {
      // One face per line: readable, and still one JSON document.
      const head = JSON.stringify({ image: imagePath, width: image.width, height: image.height, detSize: faces.length ? found.detSize : null, detector });
      const list = faces.map((f) => `  ${JSON.stringify(f)}`).join(',\n');
      console.log(`${head.slice(0, -1)},"faces":[${faces.length ? `\n${list}\n` : ''}]}`);
    } else {
      printText(imagePath, image, tried, faces);
    }
    return faces.length > 0 ? 0 : 1;
  } catch (err) {
    if (err instanceof EngineError || err instanceof ImageError) return fail(err.message);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fail(`cannot read ${imagePath}: no such file`);
    throw err;
  } finally {
    await analyzer?.dispose();
  }
}

function toJson(d: Detection, chosen: boolean): FaceJson {
  return {
    box: d.box.map((v) => round(v, 2)),
    score: round(d.score, 4),
    kps: d.kps.map(([x, y]) => [round(x, 2), round(y, 2)]),
    chosen,
  };
}

function printText(path: string, image: { width: number; height: number }, sizes: string, faces: FaceJson[]): void {
  console.log(`${path}: ${image.width}×${image.height}, ${faces.length} face${faces.length === 1 ? '' : 's'} (detection size ${sizes})`);
  if (faces.length === 0) {
    console.log(`no face found: faces smaller than about ${minimumFaceSize(image)} px across are missed at this photo size`);
    return;
  }
  faces.forEach((f, i) => {
    const kps = f.kps.map(([x, y]) => `(${x}, ${y})`).join(' ');
    console.log(`${f.chosen ? '*' : ' '} ${String(i).padStart(2)}  score ${f.score.toFixed(3)}  box [${f.box.join(', ')}]  kps ${kps}`);
  });
  if (faces.length > 1) console.log('* = the face InstantID would use (the largest)');
}
