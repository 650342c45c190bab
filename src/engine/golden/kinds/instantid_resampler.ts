// Golden kind `instantid_resampler`: InstantID's Resampler built from `image_proj.*` weights. The
// config is inferred from the weight shapes (heads from the case, as the weights cannot tell the
// head split) and checked against the case's config, then image_embeds → image_prompt_tokens.
import type { GoldenCase } from '../case.js';
import { compareClose, compareExact, type Check } from '../compare.js';
import { caseFile, caseNames, goldenCacheDir, ioF32 } from '../net-io.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { createResamplerRunner } from '../../nets/resampler.js';
import { openSources, prefixedSource } from '../../nets/sdxl-weights.js';

const CONFIG_KEYS = {
  dim: 'dim', depth: 'depth', dim_head: 'dimHead', heads: 'heads', num_queries: 'numQueries',
  embedding_dim: 'embeddingDim', output_dim: 'outputDim', ff_mult: 'ffMult',
} as const;

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const weightsPath = caseFile(c, 'weights', 'weights.safetensors');
  const heads = typeof c.config.heads === 'number' ? c.config.heads : undefined;
  const dimHead = typeof c.config.dim_head === 'number' ? c.config.dim_head : undefined;
  const opened = openSources([weightsPath]);
  try {
    const weights = opened.source.has('image_proj.latents') ? prefixedSource(opened.source, 'image_proj.') : opened.source;
    const runner = await createResamplerRunner(
      { weights, weightsHash: await weightsHashOf([weightsPath]) },
      { cacheDir: goldenCacheDir(), session: { intraOpThreads: 1 }, ...(heads ? { heads } : {}), ...(dimHead ? { dimHead } : {}) },
    );
    try {
      const checks: Check[] = [];
      const keys = Object.keys(CONFIG_KEYS).filter((k) => typeof c.config[k] === 'number') as (keyof typeof CONFIG_KEYS)[];
      if (keys.length > 0) {
        const ours = keys.map((k) => runner.config[CONFIG_KEYS[k]]);
        checks.push(compareExact(`config (${keys.join(', ')})`, ours, keys.map((k) => c.config[k] as number)));
      }
      const out = await runner.run(ioF32(c, 'image_embeds'));
      for (const name of caseNames(c, 'outputs')) checks.push(compareClose(name, out.data, c.io().readFloat32(name), c.tolerance));
      return checks;
    } finally {
      await runner.dispose();
    }
  } finally {
    opened.close();
  }
}
