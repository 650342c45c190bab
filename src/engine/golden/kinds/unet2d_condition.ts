// Golden kind `unet2d_condition`: a diffusers UNet2DConditionModel built from the case's config and
// weights. Every output is checked: `output` from the plain inputs, and any output whose name
// mentions residuals (`output_with_residuals`) with the case's ControlNet residual inputs fed too.
import type { GoldenCase } from '../case.js';
import { compareClose, type Check } from '../compare.js';
import { caseFile, caseNames, goldenCacheDir, ioF32 } from '../net-io.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { openSources } from '../../nets/sdxl-weights.js';
import { createUnetRunner, type UnetStepInputs } from '../../nets/unet-runner.js';

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const weightsPath = caseFile(c, 'weights', 'weights.safetensors');
  const inputs = new Set(caseNames(c, 'inputs'));
  const downNames = [...inputs].filter((n) => /^down_block_additional_residual_\d+$/.test(n))
    .sort((a, b) => Number(a.split('_').pop()) - Number(b.split('_').pop()));
  const withResiduals = downNames.length > 0 && inputs.has('mid_block_additional_residual');
  const opened = openSources([weightsPath]);
  try {
    const runner = await createUnetRunner(
      { config: c.config, weights: opened.source, weightsHash: await weightsHashOf([weightsPath]) },
      { cacheDir: goldenCacheDir(), controlResiduals: withResiduals, session: { intraOpThreads: 1 } },
    );
    try {
      const base: UnetStepInputs = {
        sample: ioF32(c, 'sample'),
        timestep: ioF32(c, 'timestep'),
        encoderHiddenStates: ioF32(c, 'encoder_hidden_states'),
        ...(inputs.has('text_embeds') ? { textEmbeds: ioF32(c, 'text_embeds') } : {}),
        ...(inputs.has('time_ids') ? { timeIds: ioF32(c, 'time_ids') } : {}),
      };
      const checks: Check[] = [];
      for (const name of caseNames(c, 'outputs')) {
        const residual = /residual/.test(name);
        if (residual && !withResiduals) throw new Error(`${name} needs residual inputs the case does not list`);
        const x: UnetStepInputs = residual
          ? { ...base, controlResiduals: { down: downNames.map((n) => ioF32(c, n)), mid: ioF32(c, 'mid_block_additional_residual') } }
          : base;
        const out = await runner.run(x);
        checks.push(compareClose(name, out.data, c.io().readFloat32(name), c.tolerance));
      }
      return checks;
    } finally {
      await runner.dispose();
    }
  } finally {
    opened.close();
  }
}
