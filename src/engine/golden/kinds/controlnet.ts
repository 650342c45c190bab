// Golden kind `controlnet`: a diffusers ControlNetModel built from the case's config and weights,
// run at the case's conditioning_scale (and guess_mode if the case sets it); every down residual
// and the mid residual are checked. An input named like a mask is fed as the face-region mask.
import type { GoldenCase } from '../case.js';
import { compareClose, type Check } from '../compare.js';
import { caseFile, caseNames, goldenCacheDir, ioF32, ioMask, maskInputName } from '../net-io.js';
import { createControlNetRunner } from '../../nets/controlnet-runner.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { openSources } from '../../nets/sdxl-weights.js';

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const weightsPath = caseFile(c, 'weights', 'weights.safetensors');
  const scale = c.json.conditioning_scale ?? c.config.conditioning_scale ?? 1;
  if (typeof scale !== 'number') throw new Error(`${c.name}: conditioning_scale is not a number`);
  const guessMode = (c.json.guess_mode ?? c.config.guess_mode ?? false) === true;
  const inputs = new Set(caseNames(c, 'inputs'));
  const maskName = maskInputName(c);
  const opened = openSources([weightsPath]);
  try {
    const runner = await createControlNetRunner(
      { config: c.config, weights: opened.source, weightsHash: await weightsHashOf([weightsPath]) },
      { cacheDir: goldenCacheDir(), session: { intraOpThreads: 1 }, guessMode, mask: maskName !== undefined },
    );
    try {
      const r = await runner.run({
        sample: ioF32(c, 'sample'),
        timestep: ioF32(c, 'timestep'),
        encoderHiddenStates: ioF32(c, 'encoder_hidden_states'),
        controlnetCond: ioF32(c, 'controlnet_cond'),
        ...(inputs.has('text_embeds') ? { textEmbeds: ioF32(c, 'text_embeds') } : {}),
        ...(inputs.has('time_ids') ? { timeIds: ioF32(c, 'time_ids') } : {}),
        conditioningScale: scale,
        ...(maskName ? { mask: ioMask(c, maskName) } : {}),
      });
      const checks: Check[] = [];
      for (const name of caseNames(c, 'outputs')) {
        const down = /^down_block_res_sample_(\d+)$/.exec(name);
        const actual = down ? r.down[Number(down[1])] : name === 'mid_block_res_sample' ? r.mid : undefined;
        if (!actual) {
          checks.push({ name, maxAbsError: Infinity, allowed: 0, pass: false, note: 'the ControlNet has no such output' });
          continue;
        }
        checks.push(compareClose(name, actual.data, c.io().readFloat32(name), c.tolerance));
      }
      if (caseNames(c, 'outputs').filter((n) => n.startsWith('down_block_res_sample_')).length !== r.down.length) {
        checks.push({ name: 'down residual count', maxAbsError: Infinity, allowed: 0, pass: false, note: `we produce ${r.down.length}` });
      }
      return checks;
    } finally {
      await runner.dispose();
    }
  } finally {
    opened.close();
  }
}
