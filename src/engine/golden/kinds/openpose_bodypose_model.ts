// Golden kind `openpose_bodypose_model`: the OpenPose body network built from weights under the
// released body_pose_model.pth names, its widths inferred from the shapes (checked against the case's
// config.layers where it lists them), then input → (paf, heatmap).
import type { GoldenCase } from '../case.js';
import { compareClose, compareExact, type Check } from '../compare.js';
import { caseFile, caseNames, goldenCacheDir, ioF32 } from '../net-io.js';
import { createBodyNetRunner, type BodyNetConfig } from '../../control/openpose/body-net.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { openSources } from '../../nets/sdxl-weights.js';

/** config.layers rows [module.name, in, out, k, stride, pad] (ReLU / pool rows are skipped) vs the inferred shapes. */
function layerCheck(c: GoldenCase, cfg: BodyNetConfig): Check | undefined {
  const layers = Array.isArray(c.config.layers) ? (c.config.layers as unknown[]) : [];
  const ours: number[] = [];
  const theirs: number[] = [];
  for (const row of layers) {
    if (!Array.isArray(row) || row.length !== 6 || typeof row[0] !== 'string') continue;
    const name = row[0].split('.').slice(1).join('.');
    const conv = cfg.convs[name];
    theirs.push(Number(row[1]), Number(row[2]), Number(row[3]));
    ours.push(conv?.in ?? -1, conv?.out ?? -1, conv?.kernel ?? -1);
  }
  return theirs.length ? compareExact('config.layers (in, out, kernel of every conv)', ours, theirs) : undefined;
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const weightsPath = caseFile(c, 'weights', 'weights.safetensors');
  const opened = openSources([weightsPath]);
  try {
    const runner = await createBodyNetRunner(
      { weights: opened.source, weightsHash: await weightsHashOf([weightsPath]) },
      { cacheDir: goldenCacheDir(), session: { intraOpThreads: 1 } },
    );
    try {
      const checks: Check[] = [];
      const layers = layerCheck(c, runner.config);
      if (layers) checks.push(layers);
      const out = await runner.run(ioF32(c, caseNames(c, 'inputs')[0] ?? 'input'));
      const io = c.io();
      for (const name of caseNames(c, 'outputs')) {
        const actual = /heat/i.test(name) ? out.heatmap : /paf/i.test(name) ? out.paf : undefined;
        if (!actual) {
          checks.push({ name, maxAbsError: Infinity, allowed: 0, pass: false, note: 'not an output of the body network (paf or heatmap)' });
          continue;
        }
        const dims = io.info(name).shape;
        if (dims.join() !== actual.dims.join()) {
          checks.push({ name, maxAbsError: Infinity, allowed: 0, pass: false, note: `shape [${actual.dims.join(', ')}], expected [${dims.join(', ')}]` });
          continue;
        }
        checks.push(compareClose(name, actual.data, io.readFloat32(name), c.tolerance));
      }
      return checks;
    } finally {
      await runner.dispose();
    }
  } finally {
    opened.close();
  }
}
