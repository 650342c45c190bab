// Golden kind `autoencoder_kl`: diffusers AutoencoderKL built from the case's config and weights.
// 'decoded' = vae.decode(latent).sample; 'latent_mean' / 'latent_logvar' / 'latent_std' =
// vae.encode(image).latent_dist. Whichever of those outputs the case lists are checked.
import type { GoldenCase, Tolerance } from '../case.js';
import { compareClose, type Check } from '../compare.js';
import { openWeights } from '../../formats/weights.js';
import type { SafetensorsFile } from '../../formats/safetensors.js';
import { loadVaeDecoder, loadVaeEncoder, type VaeSource } from '../../nets/vae.js';
import type { HostTensor } from '../../onnx/index.js';

const ENCODER_OUTPUTS = { latent_mean: 'mean', latent_logvar: 'logvar', latent_std: 'std' } as const;

function input(io: SafetensorsFile, name: string): HostTensor<'float32'> {
  return { dtype: 'float32', dims: [...io.info(name).shape], data: io.readFloat32(name) };
}

/** Runs the VAE of `vae` on the case io's inputs and judges the listed outputs (shared with sdxl_single_file). */
export async function checkVaeOutputs(vae: VaeSource, io: SafetensorsFile, outputs: readonly string[], tol: Tolerance, prefix = ''): Promise<Check[]> {
  const checks: Check[] = [];
  if (outputs.includes('decoded')) {
    const decoder = await loadVaeDecoder(vae, { intraOpThreads: 1 });
    try {
      const sample = await decoder.decode(input(io, 'latent'));
      checks.push(compareClose(`${prefix}decoded`, sample.data, io.readFloat32('decoded'), tol));
    } finally {
      await decoder.dispose();
    }
  }
  const wanted = Object.entries(ENCODER_OUTPUTS).filter(([name]) => outputs.includes(name));
  if (wanted.length > 0) {
    const encoder = await loadVaeEncoder(vae, { intraOpThreads: 1 });
    try {
      const dist = await encoder.encode(input(io, 'image'));
      for (const [name, field] of wanted) checks.push(compareClose(`${prefix}${name}`, dist[field].data, io.readFloat32(name), tol));
    } finally {
      await encoder.dispose();
    }
  }
  const known = new Set<string>(['decoded', ...Object.keys(ENCODER_OUTPUTS)]);
  for (const name of outputs.filter((o) => !known.has(o))) {
    checks.push({ name: `${prefix}${name}`, maxAbsError: Infinity, allowed: 0, pass: false, note: 'output not known to the autoencoder_kl evaluator' });
  }
  return checks;
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const files = (c.json.files ?? {}) as Record<string, unknown>;
  const weightsPath = c.file(typeof files.weights === 'string' ? files.weights : 'weights.safetensors');
  const outputs = Array.isArray(c.json.outputs) ? (c.json.outputs as unknown[]).filter((o): o is string => typeof o === 'string') : [];
  const weights = openWeights(weightsPath);
  try {
    return await checkVaeOutputs({ config: c.config, weights }, c.io(), outputs, c.tolerance);
  } finally {
    weights.close();
  }
}
