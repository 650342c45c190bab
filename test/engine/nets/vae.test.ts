// The VAE (diffusers AutoencoderKL): the golden, then the behaviours a pipeline relies on —
// any latent size and batch, the logvar clamp, upcasting, and the errors bad weights give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadCase } from '../../../src/engine/golden/case.js';
import { evaluateCase, formatResult } from '../../../src/engine/golden/run.js';
import { openWeights } from '../../../src/engine/formats/weights.js';
import { EngineError } from '../../../src/engine/errors.js';
import {
  buildVaeDecoder, loadVaeDecoder, loadVaeEncoder, parseVaeConfig, vaeComputeType, vaeScaleFactor, type VaeWeights,
} from '../../../src/engine/nets/vae.js';
import type { HostTensor } from '../../../src/engine/onnx/index.js';
import { golden } from '../../helpers/paths.js';
import {
  assertClose, attention, binary, conv2d, f32, groupNorm, linear, map, nd, randn, resize, sigmoid, transpose, type Nd,
} from '../../helpers/reference-ops.js';

const vaeCase = loadCase(golden('vae'));
const config = vaeCase.config;
const THREADS = { intraOpThreads: 1 };

function withWeights<T>(fn: (w: VaeWeights) => Promise<T>): Promise<T> {
  const file = openWeights(vaeCase.file('weights.safetensors'));
  return fn(file).finally(() => file.close());
}

/** A view of `inner` with some tensors changed. */
function patched(inner: VaeWeights, patch: Record<string, { shape?: number[]; data?: (d: Float32Array) => Float32Array }>): VaeWeights {
  return {
    has: (n) => inner.has(n),
    info: (n) => ({ ...inner.info(n), ...(patch[n]?.shape ? { shape: patch[n]!.shape! } : {}) }),
    readFloat32: (n) => (patch[n]?.data ? patch[n]!.data!(inner.readFloat32(n)) : inner.readFloat32(n)),
  };
}

function pseudoRandom(dims: number[], seed: number): HostTensor<'float32'> {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    data[i] = (s / 2147483648) * 2 - 1;
  }
  return { dtype: 'float32', dims, data };
}

test('the vae golden (decode and encode) passes', async () => {
  const r = await evaluateCase(golden('vae'));
  assert.equal(r.status, 'PASS', formatResult(r, true));
});

test('the decoder takes any latent size and batch: [2, 4, 5, 7] → [2, 3, 40, 56], each item as if decoded alone', async () => {
  await withWeights(async (weights) => {
    const decoder = await loadVaeDecoder({ config, weights }, THREADS);
    try {
      const both = await decoder.decode(pseudoRandom([2, 4, 5, 7], 3));
      assert.deepEqual(both.dims, [2, 3, 40, 56]);
      const second = { dtype: 'float32' as const, dims: [1, 4, 5, 7], data: pseudoRandom([2, 4, 5, 7], 3).data.slice(140) };
      const alone = await decoder.decode(second);
      const half = both.data.subarray(3 * 40 * 56);
      for (let i = 0; i < alone.data.length; i++) assert.ok(Math.abs(alone.data[i]! - half[i]!) < 1e-5);
    } finally {
      await decoder.dispose();
    }
  });
});

test('the encoder clamps logvar to [-30, 20] and gives std = exp(logvar / 2)', async () => {
  await withWeights(async (base) => {
    // quant_conv's logvar half pushed far out: +1000 on two channels, -1000 on the other two.
    const weights = patched(base, {
      'quant_conv.bias': { data: (d) => d.map((v, i) => (i < 4 ? v : i < 6 ? 1000 : -1000)) },
    });
    const encoder = await loadVaeEncoder({ config, weights }, THREADS);
    try {
      const { logvar, std, mean } = await encoder.encode(pseudoRandom([1, 3, 16, 24], 5));
      assert.deepEqual(mean.dims, [1, 4, 2, 3]);
      const per = 2 * 3;
      for (let i = 0; i < logvar.data.length; i++) {
        assert.equal(logvar.data[i], i < 2 * per ? 20 : -30);
        assert.ok(Math.abs(std.data[i]! - Math.exp(logvar.data[i]! / 2)) <= 1e-6 * Math.exp(10));
      }
    } finally {
      await encoder.dispose();
    }
  });
});

test('mid-block attention weights stored as 1×1 conv kernels [C, C, 1, 1] are read as Linear weights', async () => {
  await withWeights(async (base) => {
    const latent = pseudoRandom([1, 4, 3, 3], 7);
    const plain = await loadVaeDecoder({ config, weights: base }, THREADS);
    const asConv = await loadVaeDecoder({
      config,
      weights: patched(base, Object.fromEntries(['to_q', 'to_k', 'to_v', 'to_out.0'].map((p) => [`decoder.mid_block.attentions.0.${p}.weight`, { shape: [16, 16, 1, 1] }]))),
    }, THREADS);
    try {
      assert.deepEqual((await asConv.decode(latent)).data, (await plain.decode(latent)).data);
    } finally {
      await plain.dispose();
      await asConv.dispose();
    }
  });
});

test('a missing or mis-shaped weight is an EngineError naming the tensor', async () => {
  await withWeights(async (base) => {
    const vae = parseVaeConfig(config);
    const without: VaeWeights = { has: (n) => n !== 'decoder.conv_out.bias' && base.has(n), info: (n) => base.info(n), readFloat32: (n) => base.readFloat32(n) };
    assert.throws(() => buildVaeDecoder(without, vae), (e: unknown) => e instanceof EngineError && /decoder\.conv_out\.bias/.test(e.message));
    const wrong = patched(base, { 'decoder.conv_in.weight': { shape: [16, 8, 3, 3] } });
    assert.throws(() => buildVaeDecoder(wrong, vae), (e: unknown) => e instanceof EngineError && /decoder\.conv_in\.weight.*\[16, 8, 3, 3\].*\[16, 4, 3, 3\]/.test(e.message));
  });
});

test('config: diffusers defaults fill what config.json leaves out; the scale factor follows the levels', () => {
  const c = parseVaeConfig({ block_out_channels: [32, 64], norm_num_groups: 8 });
  assert.equal(c.layersPerBlock, 1);
  assert.equal(c.latentChannels, 4);
  assert.equal(c.scalingFactor, 0.18215);
  assert.equal(c.forceUpcast, true);
  assert.equal(vaeScaleFactor(c), 2);
  assert.equal(vaeScaleFactor(parseVaeConfig(config)), 8);
  assert.equal(parseVaeConfig(config).scalingFactor, 0.13025);
});

test('config: float16 is honoured only without force_upcast, as diffusers upcasts the SDXL VAE', () => {
  assert.equal(vaeComputeType(parseVaeConfig({ ...config, force_upcast: true }), 'float16'), 'float32');
  assert.equal(vaeComputeType(parseVaeConfig({ ...config, force_upcast: false }), 'float16'), 'float16');
});

test('config: unsupported block types, activations and group counts are refused with the reason', () => {
  const refuses = (raw: Record<string, unknown>, pattern: RegExp): void => {
    assert.throws(() => parseVaeConfig(raw), (e: unknown) => e instanceof EngineError && pattern.test(e.message));
  };
  refuses({ ...config, down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'] }, /down_block_types/);
  refuses({ ...config, act_fn: 'gelu' }, /act_fn/);
  refuses({ ...config, norm_num_groups: 3 }, /groups/);
  refuses({ ...config, _class_name: 'AutoencoderTiny' }, /AutoencoderTiny/);
});

// ---- an unseen configuration against a float64 forward pass written from diffusers' modules ----

/** 2 levels, one resnet per level, 2 groups, 3 latent channels, no quant convs: unlike the golden. */
const UNSEEN = {
  in_channels: 2, out_channels: 2, block_out_channels: [4, 8], layers_per_block: 1, norm_num_groups: 2,
  latent_channels: 3, use_quant_conv: false, use_post_quant_conv: false, scaling_factor: 0.5,
};

/** Weights made on first use, so the reference forward pass also enumerates what the graph needs. */
class RandomWeights {
  readonly tensors = new Map<string, Nd>();
  private seed = 11;
  get(name: string, shape: number[]): Nd {
    let t = this.tensors.get(name);
    if (!t) {
      const r = randn(shape, this.seed++, shape.length === 1 ? 0.1 : 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1)));
      t = name.includes('norm') && name.endsWith('.weight') ? map(r, (x) => 1 + x) : r;
      this.tensors.set(name, t);
    }
    return t;
  }
  source(): VaeWeights {
    const f = new Map([...this.tensors].map(([k, v]) => [k, f32(v)]));
    return {
      has: (n) => f.has(n),
      info: (n) => ({ dtype: 'F32', shape: [...this.tensors.get(n)!.shape] }),
      readFloat32: (n) => f.get(n)!,
    };
  }
}

function refVae(w: RandomWeights, cfg: typeof UNSEEN): { decode(z: Nd): Nd; encode(x: Nd): Nd } {
  const silu = (x: Nd): Nd => map(x, (v) => v * sigmoid(v));
  const add = (a: Nd, b: Nd): Nd => binary(a, b, (p, q) => p + q);
  const conv = (x: Nd, name: string, cin: number, cout: number, k: number, stride = 1, padding = k === 3 ? 1 : 0): Nd =>
    conv2d(x, w.get(`${name}.weight`, [cout, cin, k, k]), w.get(`${name}.bias`, [cout]), { stride, padding });
  const gn = (x: Nd, name: string, c: number): Nd => groupNorm(x, w.get(`${name}.weight`, [c]), w.get(`${name}.bias`, [c]), cfg.norm_num_groups, 1e-6);
  const resnet = (x: Nd, name: string, cin: number, cout: number): Nd => {
    let h = conv(silu(gn(x, `${name}.norm1`, cin)), `${name}.conv1`, cin, cout, 3);
    h = conv(silu(gn(h, `${name}.norm2`, cout)), `${name}.conv2`, cout, cout, 3);
    return add(cin === cout ? x : conv(x, `${name}.conv_shortcut`, cin, cout, 1), h);
  };
  const attn = (x: Nd, name: string, c: number): Nd => {
    const [b, , h, wd] = x.shape as [number, number, number, number];
    const seq = transpose({ shape: [b, c, h * wd], data: gn(x, `${name}.group_norm`, c).data }, [0, 2, 1]);
    const lin = (t: Nd, p: string): Nd => linear(t, w.get(`${name}.${p}.weight`, [c, c]), w.get(`${name}.${p}.bias`, [c]));
    const o = lin(attention(lin(seq, 'to_q'), lin(seq, 'to_k'), lin(seq, 'to_v'), 1), 'to_out.0');
    return add({ shape: x.shape, data: transpose(o, [0, 2, 1]).data }, x);
  };
  const boc = cfg.block_out_channels;
  const last = boc[boc.length - 1]!;
  const mid = (x: Nd, name: string): Nd =>
    resnet(attn(resnet(x, `${name}.resnets.0`, last, last), `${name}.attentions.0`, last), `${name}.resnets.1`, last, last);
  return {
    decode(z) {
      let h = mid(conv(z, 'decoder.conv_in', cfg.latent_channels, last, 3), 'decoder.mid_block');
      let c = last;
      boc.slice().reverse().forEach((out, i) => {
        for (let j = 0; j <= cfg.layers_per_block; j++, c = out) h = resnet(h, `decoder.up_blocks.${i}.resnets.${j}`, c, out);
        if (i < boc.length - 1) h = conv(resize(h, h.shape[2]! * 2, h.shape[3]! * 2, 'nearest'), `decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
      });
      return conv(silu(gn(h, 'decoder.conv_norm_out', boc[0]!)), 'decoder.conv_out', boc[0]!, cfg.out_channels, 3);
    },
    encode(x) {
      let h = conv(x, 'encoder.conv_in', cfg.in_channels, boc[0]!, 3);
      let c = boc[0]!;
      boc.forEach((out, i) => {
        for (let j = 0; j < cfg.layers_per_block; j++, c = out) h = resnet(h, `encoder.down_blocks.${i}.resnets.${j}`, c, out);
        if (i < boc.length - 1) {
          const [n, ch, hh, ww] = h.shape as [number, number, number, number];
          const padded = nd([n, ch, hh + 1, ww + 1]); // F.pad(h, (0, 1, 0, 1))
          for (let q = 0; q < n * ch; q++) for (let y = 0; y < hh; y++) for (let xx = 0; xx < ww; xx++) {
            padded.data[(q * (hh + 1) + y) * (ww + 1) + xx] = h.data[(q * hh + y) * ww + xx]!;
          }
          h = conv(padded, `encoder.down_blocks.${i}.downsamplers.0.conv`, out, out, 3, 2, 0);
        }
      });
      h = silu(gn(mid(h, 'encoder.mid_block'), 'encoder.conv_norm_out', last));
      return conv(h, 'encoder.conv_out', last, 2 * cfg.latent_channels, 3); // moments: mean | logvar
    },
  };
}

test('an unseen config (2 levels, 1 layer, 2 groups, 3 latent channels, no quant convs) matches a float64 reference', async () => {
  const w = new RandomWeights();
  const ref = refVae(w, UNSEEN);
  const z = randn([1, 3, 3, 5], 101);
  const x = randn([1, 2, 6, 10], 102);
  const expectedImage = ref.decode(z);
  const moments = ref.encode(x);
  const weights = w.source();
  const decoder = await loadVaeDecoder({ config: UNSEEN, weights }, THREADS);
  const encoder = await loadVaeEncoder({ config: UNSEEN, weights }, THREADS);
  try {
    const image = await decoder.decode({ dtype: 'float32', dims: z.shape, data: f32(z) });
    assert.deepEqual(image.dims, [1, 2, 6, 10]);
    assertClose(image.data, expectedImage, { atol: 1e-4, rtol: 1e-4 }, 'decoded');
    const dist = await encoder.encode({ dtype: 'float32', dims: x.shape, data: f32(x) });
    assert.deepEqual(dist.mean.dims, [1, 3, 3, 5]);
    const half = moments.data.length / 2;
    assertClose(dist.mean.data, moments.data.subarray(0, half), { atol: 1e-4, rtol: 1e-4 }, 'mean');
    assertClose(dist.logvar.data, moments.data.subarray(half).map((v) => Math.min(20, Math.max(-30, v))), { atol: 1e-4, rtol: 1e-4 }, 'logvar');
  } finally {
    await decoder.dispose();
    await encoder.dispose();
  }
});
