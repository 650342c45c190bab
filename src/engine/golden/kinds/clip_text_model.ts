// Golden kind `clip_text_model`: transformers CLIPTextModel / CLIPTextModelWithProjection. The graph
// is built from the case's config and weights, fed the case's input_ids, and every output the case
// stores is compared: last_hidden_state, hidden_states_penultimate, pooler_output, text_embeds
// (with the projection) and pooled_index (exactly).
import type { GoldenCase } from '../case.js';
import { compareClose, compareExact, type Check } from '../compare.js';
import { loadClipTextEncoder, type ClipTextOutput, type ClipTextOutputs } from '../../nets/clip-text.js';

/** Golden tensor name → what the encoder returns for it. */
const OUTPUTS: readonly { golden: string; graph: ClipTextOutput; field: keyof ClipTextOutputs }[] = [
  { golden: 'last_hidden_state', graph: 'last_hidden_state', field: 'lastHidden' },
  { golden: 'hidden_states_penultimate', graph: 'penultimate', field: 'penultimate' },
  { golden: 'pooler_output', graph: 'pooled', field: 'pooled' },
  { golden: 'text_embeds', graph: 'text_embeds', field: 'textEmbeds' },
];

function caseFile(c: GoldenCase, role: string, fallback: string): string {
  const files = c.json['files'];
  const named = files && typeof files === 'object' ? (files as Record<string, unknown>)[role] : undefined;
  return c.file(typeof named === 'string' ? named : fallback);
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const io = c.io();
  const stored = new Set(io.names());
  const expected = OUTPUTS.filter((o) => stored.has(o.golden));
  const withProjection = stored.has('text_embeds') || /WithProjection/.test(String(c.config['_class_name'] ?? ''));
  const graphOutputs: ClipTextOutput[] = expected.map((o) => o.graph);
  if (stored.has('pooled_index')) graphOutputs.push('pooled_index');

  const [batch, seqLen] = io.info('input_ids').shape;
  const encoder = await loadClipTextEncoder(caseFile(c, 'weights', 'weights.safetensors'), c.config, {
    withProjection, outputs: graphOutputs, intraOpThreads: 1, interOpThreads: 1,
  });
  try {
    const out = await encoder.encode(io.read('input_ids') as BigInt64Array, batch!, seqLen!);
    const checks: Check[] = expected.map((o) => {
      const actual = out[o.field] as Float32Array | undefined;
      return actual
        ? compareClose(o.golden, actual, io.readFloat32(o.golden), c.tolerance)
        : { name: o.golden, maxAbsError: Infinity, allowed: 0, pass: false, note: 'the encoder did not produce it' };
    });
    if (stored.has('pooled_index')) checks.push(compareExact('pooled_index', out.pooledIndex ?? [], io.read('pooled_index') as BigInt64Array));
    return checks;
  } finally {
    await encoder.dispose();
  }
}
