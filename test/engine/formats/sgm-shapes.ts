// Tensor shapes of an SGM-layout SDXL base UNet (names without model.diffusion_model.), generated
// from the architecture: 320/640/1280 channels, 2 layers per level, transformer depths 0/2/10,
// 2048-wide context, 2816 ADM inputs. Only shapes: enough to test the key map and config inference.
export function sdxlUnetShapes(): Map<string, number[]> {
  const channels = [320, 640, 1280];
  const depths = [0, 2, 10];
  const layers = 2;
  const context = 2048;
  const c0 = channels[0]!;
  const temb = 4 * c0;
  const s = new Map<string, number[]>();
  const pair = (name: string, weight: number[], bias = true): void => {
    s.set(`${name}.weight`, weight);
    if (bias) s.set(`${name}.bias`, [weight[0]!]);
  };
  const resnet = (p: string, cin: number, c: number): void => {
    pair(`${p}.in_layers.0`, [cin]);
    pair(`${p}.in_layers.2`, [c, cin, 3, 3]);
    pair(`${p}.emb_layers.1`, [c, temb]);
    pair(`${p}.out_layers.0`, [c]);
    pair(`${p}.out_layers.3`, [c, c, 3, 3]);
    if (cin !== c) pair(`${p}.skip_connection`, [c, cin, 1, 1]);
  };
  const transformer = (p: string, c: number, depth: number): void => {
    pair(`${p}.norm`, [c]);
    pair(`${p}.proj_in`, [c, c]);
    pair(`${p}.proj_out`, [c, c]);
    for (let t = 0; t < depth; t++) {
      const b = `${p}.transformer_blocks.${t}`;
      for (const a of ['attn1', 'attn2']) {
        for (const q of ['to_q', 'to_k', 'to_v']) pair(`${b}.${a}.${q}`, [c, a === 'attn2' && q !== 'to_q' ? context : c], false);
        pair(`${b}.${a}.to_out.0`, [c, c]);
      }
      pair(`${b}.ff.net.0.proj`, [8 * c, c]);
      pair(`${b}.ff.net.2`, [c, 4 * c]);
      for (const n of ['norm1', 'norm2', 'norm3']) pair(`${b}.${n}`, [c]);
    }
  };
  pair('time_embed.0', [temb, c0]);
  pair('time_embed.2', [temb, temb]);
  pair('label_emb.0.0', [temb, 2816]);
  pair('label_emb.0.2', [temb, temb]);
  pair('input_blocks.0.0', [c0, 4, 3, 3]);
  let i = 1;
  let cin = c0;
  const skips = [c0];
  channels.forEach((c, b) => {
    for (let j = 0; j < layers; j++, i++) {
      resnet(`input_blocks.${i}.0`, cin, c);
      if (depths[b]! > 0) transformer(`input_blocks.${i}.1`, c, depths[b]!);
      cin = c;
      skips.push(c);
    }
    if (b < channels.length - 1) {
      pair(`input_blocks.${i++}.0.op`, [c, c, 3, 3]);
      skips.push(c);
    }
  });
  const last = channels[channels.length - 1]!;
  resnet('middle_block.0', last, last);
  transformer('middle_block.1', last, depths[depths.length - 1]!);
  resnet('middle_block.2', last, last);
  let o = 0;
  cin = last;
  [...channels].reverse().forEach((c, u) => {
    const depth = depths[channels.length - 1 - u]!;
    for (let j = 0; j <= layers; j++, o++) {
      resnet(`output_blocks.${o}.0`, cin + skips.pop()!, c);
      if (depth > 0) transformer(`output_blocks.${o}.1`, c, depth);
      cin = c;
    }
    if (u < channels.length - 1) pair(`output_blocks.${o - 1}.${depth > 0 ? 2 : 1}.conv`, [c, c, 3, 3]);
  });
  pair('out.0', [c0]);
  pair('out.2', [4, c0, 3, 3]);
  return s;
}
