// Golden kind `instantid_ip_unet`: the UNet with InstantID's IPAttnProcessor on every attn2. The
// UNet config is the case's own (`config.unet` as a dict) or the referenced case's; the IP layers
// come from the real ip-adapter.bin through the safe unpickler (files.ip_adapter_bin), else from
// files.weights. Also checked: the index → attn2 mapping we derive, and the unpickled tensors'
// sha256 where the case records them. An input named like a mask is fed as the region mask.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadCase, type GoldenCase } from '../case.js';
import { compareClose, compareExact, type Check } from '../compare.js';
import { caseFile, caseNames, goldenCacheDir, ioF32, ioMask, maskInputName } from '../net-io.js';
import { weightsHashOf } from '../../nets/net-session.js';
import { openSources } from '../../nets/sdxl-weights.js';
import { attn2Modules, parseUNetConfig } from '../../nets/unet-config.js';
import { createUnetRunner, ipAdapterSource } from '../../nets/unet-runner.js';

/** config.unet: a dict, or text naming another case ("same as ../unet-sdxl/case.json config"). */
function unetConfig(c: GoldenCase, baseWeights: string): unknown {
  const raw = c.config.unet;
  if (raw && typeof raw === 'object') return raw;
  const named = typeof raw === 'string' ? /(\S*case\.json)/.exec(raw)?.[1] : undefined;
  const caseDir = named ? dirname(c.file(named)) : dirname(baseWeights);
  if (!existsSync(join(caseDir, 'case.json'))) throw new Error(`${c.name}: cannot find the UNet config (config.unet = ${JSON.stringify(raw)})`);
  const ref = loadCase(caseDir);
  ref.close();
  return ref.config;
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number') throw new Error(`config.${what} must be a number`);
  return v;
}

export async function evaluate(c: GoldenCase): Promise<Check[]> {
  const files = (c.json.files ?? {}) as Record<string, unknown>;
  const basePath = caseFile(c, 'base_weights');
  const ipPath = typeof files.ip_adapter_bin === 'string' ? caseFile(c, 'ip_adapter_bin') : caseFile(c, 'weights');
  const rawConfig = unetConfig(c, basePath);
  const resampler = (c.config.resampler ?? {}) as Record<string, unknown>;
  const numTokens = num(c.config.num_tokens ?? resampler.num_queries ?? 16, 'num_tokens');
  const scale = num(c.config.scale ?? c.config.ip_adapter_scale, 'scale');
  const maskName = maskInputName(c);
  const checks: Check[] = [];

  const mapping = c.json.ip_adapter_index_to_processor as Record<string, string> | undefined;
  if (mapping) {
    const ours = attn2Modules(parseUNetConfig(rawConfig)).map((m, n) => `${2 * n + 1}:${m}.processor`);
    const theirs = Object.entries(mapping).sort(([a], [b]) => Number(a) - Number(b)).map(([k, m]) => `${k}:${m}`);
    const differ = ours.length === theirs.length ? ours.filter((m, i) => m !== theirs[i]).length : Math.max(ours.length, theirs.length);
    checks.push({ ...compareExact('ip_adapter_index_to_processor', [differ], [0]), ...(differ ? { note: `ours ${ours.join(', ')}` } : {}) });
  }

  const base = openSources([basePath]);
  const ip = openSources([ipPath]);
  try {
    const recorded = ((c.json.ip_adapter_bin ?? {}) as { tensors?: Record<string, { sha256_le_bytes?: string }> }).tensors ?? {};
    const hashed = Object.entries(recorded).filter(([name, t]) => t.sha256_le_bytes && ip.source.has(name));
    if (typeof files.ip_adapter_bin === 'string' && hashed.length > 0) {
      const bad = hashed.filter(([name, t]) => {
        const d = ip.source.read(name);
        return createHash('sha256').update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).digest('hex') !== t.sha256_le_bytes;
      });
      checks.push({ ...compareExact('ip-adapter.bin tensors (sha256)', [bad.length], [0]), ...(bad.length ? { note: bad.map(([n]) => n).join(', ') } : {}) });
    }
    const runner = await createUnetRunner({
      config: rawConfig,
      weights: base.source,
      weightsHash: await weightsHashOf([basePath]),
      ipAdapter: { weights: ipAdapterSource(ip.source, ipPath), weightsHash: await weightsHashOf([ipPath]), numTokens, regionMask: maskName !== undefined },
    }, { cacheDir: goldenCacheDir(), session: { intraOpThreads: 1 } });
    try {
      const inputs = new Set(caseNames(c, 'inputs'));
      const out = await runner.run({
        sample: ioF32(c, 'sample'),
        timestep: ioF32(c, 'timestep'),
        encoderHiddenStates: ioF32(c, 'encoder_hidden_states'),
        ...(inputs.has('text_embeds') ? { textEmbeds: ioF32(c, 'text_embeds') } : {}),
        ...(inputs.has('time_ids') ? { timeIds: ioF32(c, 'time_ids') } : {}),
        ipAdapterScale: scale,
        ...(maskName ? { regionMask: ioMask(c, maskName) } : {}),
      });
      for (const name of caseNames(c, 'outputs')) checks.push(compareClose(name, out.data, c.io().readFloat32(name), c.tolerance));
    } finally {
      await runner.dispose();
    }
  } finally {
    base.close();
    ip.close();
  }
  return checks;
}
