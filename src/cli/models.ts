// likeness models smoke — writes the smoke model set: a tiny SDXL-architecture model with random
// weights in the diffusers layout, plus InstantID's parts of the same toy sizes, so that every path
// runs in seconds on a CPU. It draws noise.
// likeness models private add|ls — a project's private models (models-private.ts).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { EngineError } from '../engine/errors.js';
import { SMOKE_MODEL_DIR, writeSmokeModel } from '../engine/smoke.js';
import { SMOKE_FACE_DIR, writeSmokeInstantIdSet } from '../engine/smoke-instantid.js';
import { fail, parseVerb } from './args.js';

const HELP = `usage:
  likeness models smoke [--home DIR] [--seed N] [--detector FILE] [--size toy|mid|full]
  likeness models smoke --out DIR [--seed N]
  likeness models private add --project NAME|ID FILE [--kind lora|checkpoint] [--id ID] [--replace] [--json]
  likeness models private ls [--project NAME|ID] [--json]
      a project's own checkpoints and LoRAs: \`likeness models private --help\`

Writes the smoke model set: a tiny SDXL-architecture model (UNet, VAE, both CLIP text encoders,
tokenizers, scheduler config) with RANDOM weights, in the diffusers folder layout, and InstantID's
parts at the same toy sizes: an IdentityNet, an ip-adapter (Resampler + IP-Adapter attention, as
ip-adapter.safetensors), a canny ControlNet (catalog 454), a kohya LoRA (catalog 622) and a tiny
RANDOM face recognition graph. Every part of the engine and the service's InstantID tool runs on it
in seconds on a CPU, but it draws noise, not pictures: install real weights to make images.

The face DETECTOR is not included (insightface's models are licensed for non-commercial research use
only): --detector FILE copies an SCRFD .onnx with keypoints (e.g. buffalo_sc's det_500m.onnx, or
antelopev2's scrfd_10g_bnkps.onnx) into the set; without it, install antelopev2 in
$LIKENESS_HOME/models/antelopev2/.

Written under $LIKENESS_HOME (default ./data): the model and its InstantID parts in ${SMOKE_MODEL_DIR}
(replaced), the catalog ControlNet and LoRA in models/controlnet/ and models/loras/ (only where those
slots are empty). --out DIR writes only the SDXL model, to DIR. The same --seed (default 0) writes
identical files.

--size mid|full writes a REHEARSAL set instead, for trying real scale without downloads: full is
SDXL base 1.0's own sizes (UNet 2.6 B parameters, both CLIP encoders, VAE; about 6.9 GB in F16) with
a full-size IdentityNet, canny ControlNet, InstantID's real Resampler and rank-32 kohya LoRAs in the
catalog slots 622 and 480; mid is the same with the UNet at about 1/10. Random weights still, in the
diffusers folder layout; it replaces catalog files only where an earlier smoke set wrote them.`;

export async function run(args: string[]): Promise<number> {
  if (args[0] === 'private') return (await import('./models-private.js')).runPrivate(args.slice(1));
  const parsed = parseVerb(args, {
    out: { type: 'string' },
    seed: { type: 'string' },
    home: { type: 'string' },
    detector: { type: 'string' },
    size: { type: 'string' },
  }, HELP);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals, action } = parsed;
  const extra = positionals.slice(1);
  if (action !== 'smoke' || extra.length > 0) return fail(`unknown models command "${positionals.join(' ')}"\n\n${HELP}`);
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) return fail('--seed must be a whole number from 0 to 4294967295');
  if (values.out && values.detector) return fail('--detector goes with the whole set in $LIKENESS_HOME, not with --out');
  const size = values.size ?? 'toy';
  if (size !== 'toy' && size !== 'mid' && size !== 'full') return fail(`--size ${size}: use toy (the default), mid or full`);
  if (values.out && size !== 'toy') return fail('--size goes with the whole set in $LIKENESS_HOME, not with --out');
  const detector = values.detector ? resolve(values.detector) : undefined;
  if (detector && !existsSync(detector)) return fail(`--detector ${detector} does not exist`);
  const home = loadConfig(values.home ? { home: values.home } : {}).home;
  try {
    const started = Date.now();
    const took = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
    if (values.out) {
      const out = resolve(values.out);
      await writeSmokeModel(out, { seed });
      console.log(`wrote the smoke SDXL model to ${out} in ${took()}`);
      console.log('It has random weights: it draws noise, not pictures. Try it with:');
      console.log(`  likeness generate --model ${out} --prompt "a photo of a cat" --steps 4 --out ./out`);
      return 0;
    }
    const set = await writeSmokeInstantIdSet(home, { seed, size, ...(detector ? { detector } : {}) });
    console.log(`wrote the smoke model set to ${set.model} in ${took()} (random weights: it draws noise, not pictures)`);
    console.log(`  InstantID parts: ${set.identityNet}, ${set.ipAdapter}`);
    console.log(`  face recognition: ${set.recognizer} (a RANDOM graph, not a face model)`);
    for (const c of set.catalog) console.log(`  catalog: ${c}`);
    console.log(set.detector
      ? `  face detector: ${set.detector}`
      : `  no face detector copied: pass --detector FILE, or install antelopev2 in ${join(home, 'models', 'antelopev2')} (the service looks there, then in ${join(home, SMOKE_FACE_DIR)})`);
    console.log(`Try it: likeness serve --home ${home}, then Run with a face photo, "width": 64, "height": 64, "steps": 2.`);
    console.log(`Or text-to-image: likeness generate --model ${set.model} --prompt "a photo of a cat" --steps 4 --out ./out`);
    return 0;
  } catch (err) {
    if (err instanceof EngineError) return fail(err.message);
    throw err;
  }
}
