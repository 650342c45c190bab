// The parameter table of DepthAnythingForDepthEstimation for a config: the transformers names and
// shapes the graph reads (the smoke set writes these; unread ones — mask_token, fusion layer 0's
// residual_layer1 — are left out).
import type { DepthAnythingConfig } from './config.js';

export function depthAnythingWeightShapes(cfg: DepthAnythingConfig): Map<string, number[]> {
  const D = cfg.hidden;
  const F = cfg.fusionHidden;
  const m = new Map<string, number[]>();
  const bb = 'backbone.';
  m.set(`${bb}embeddings.cls_token`, [1, 1, D]);
  m.set(`${bb}embeddings.position_embeddings`, [1, 1 + cfg.posGrid * cfg.posGrid, D]);
  m.set(`${bb}embeddings.patch_embeddings.projection.weight`, [D, 3, cfg.patch, cfg.patch]);
  m.set(`${bb}embeddings.patch_embeddings.projection.bias`, [D]);
  for (let i = 0; i < Math.max(...cfg.outIndices); i++) {
    const l = `${bb}encoder.layer.${i}.`;
    for (const n of ['norm1', 'norm2']) m.set(`${l}${n}.weight`, [D]).set(`${l}${n}.bias`, [D]);
    for (const n of ['query', 'key', 'value']) m.set(`${l}attention.attention.${n}.weight`, [D, D]).set(`${l}attention.attention.${n}.bias`, [D]);
    m.set(`${l}attention.output.dense.weight`, [D, D]).set(`${l}attention.output.dense.bias`, [D]);
    m.set(`${l}layer_scale1.lambda1`, [D]).set(`${l}layer_scale2.lambda1`, [D]);
    m.set(`${l}mlp.fc1.weight`, [cfg.mlpHidden, D]).set(`${l}mlp.fc1.bias`, [cfg.mlpHidden]);
    m.set(`${l}mlp.fc2.weight`, [D, cfg.mlpHidden]).set(`${l}mlp.fc2.bias`, [D]);
  }
  if (cfg.applyLayernorm) m.set(`${bb}layernorm.weight`, [D]).set(`${bb}layernorm.bias`, [D]);
  cfg.neckHiddenSizes.forEach((n, i) => {
    const r = `neck.reassemble_stage.layers.${i}.`;
    m.set(`${r}projection.weight`, [n, D, 1, 1]).set(`${r}projection.bias`, [n]);
    const f = cfg.reassembleFactors[i]!;
    if (f > 1) m.set(`${r}resize.weight`, [n, n, f, f]).set(`${r}resize.bias`, [n]);
    else if (f < 1) m.set(`${r}resize.weight`, [n, n, 3, 3]).set(`${r}resize.bias`, [n]);
    m.set(`neck.convs.${i}.weight`, [F, n, 3, 3]);
    const fu = `neck.fusion_stage.layers.${i}.`;
    m.set(`${fu}projection.weight`, [F, F, 1, 1]).set(`${fu}projection.bias`, [F]);
    for (const rl of i === 0 ? ['residual_layer2'] : ['residual_layer1', 'residual_layer2']) {
      for (const c of ['convolution1', 'convolution2']) m.set(`${fu}${rl}.${c}.weight`, [F, F, 3, 3]).set(`${fu}${rl}.${c}.bias`, [F]);
    }
  });
  const half = Math.floor(F / 2);
  m.set('head.conv1.weight', [half, F, 3, 3]).set('head.conv1.bias', [half]);
  m.set('head.conv2.weight', [cfg.headHidden, half, 3, 3]).set('head.conv2.bias', [cfg.headHidden]);
  m.set('head.conv3.weight', [1, cfg.headHidden, 1, 1]).set('head.conv3.bias', [1]);
  return m;
}
