// likeness models smoke — writes the smoke model set: a tiny SDXL-architecture model with random
// weights in the diffusers layout, so that every path runs in seconds on a CPU. It draws noise.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { EngineError } from '../engine/errors.js';
import { SMOKE_MODEL_DIR, writeSmokeModel } from '../engine/smoke.js';
import { fail } from './args.js';

const HELP = `usage:
  likeness models smoke [--out DIR] [--seed N]

Writes the smoke model set: a tiny SDXL-architecture model (UNet, VAE, both CLIP text encoders,
tokenizers, scheduler config) with RANDOM weights, in the diffusers folder layout. Every part of the
engine runs on it in seconds on a CPU, but it draws noise, not pictures: install real SDXL weights
(a diffusers folder or a single-file .safetensors checkpoint) to make images.

--out defaults to $LIKENESS_HOME/${SMOKE_MODEL_DIR} (LIKENESS_HOME defaults to ./data); what is there
is replaced. The same --seed (default 0) writes identical files.`;

export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: 'string' },
        seed: { type: 'string' },
        home: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${HELP}`);
  }
  const { values, positionals } = parsed;
  const [action, ...extra] = positionals;
  if (values.help || !action) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  if (action !== 'smoke' || extra.length > 0) return fail(`unknown models command "${positionals.join(' ')}"\n\n${HELP}`);
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) return fail('--seed must be a whole number from 0 to 4294967295');
  const out = resolve(values.out ?? join(loadConfig(values.home ? { home: values.home } : {}).home, SMOKE_MODEL_DIR));
  try {
    const started = Date.now();
    await writeSmokeModel(out, { seed });
    console.log(`wrote the smoke model set to ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log('It has random weights: it draws noise, not pictures. Try it with:');
    console.log(`  likeness generate --model ${out} --prompt "a photo of a cat" --steps 4 --out ./out`);
    return 0;
  } catch (err) {
    if (err instanceof EngineError) return fail(err.message);
    throw err;
  }
}
