// LoRAs by URL: guarded downloads into a content-addressed cache, conditional re-fetch, LRU bound,
// validation before use, share links resolved. Loopback only (127.0.0.1 allowlisted per test).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError } from '../../src/engine/errors.js';
import { loraTargetsFromConfigs } from '../../src/engine/formats/lora-keymap.js';
import { encodeSafetensors } from '../../src/engine/formats/safetensors-write.js';
import { LoraCache, loraFromUrl, resolveLoraUrl } from '../../src/service/lora-cache.js';
import { FetchError } from '../../src/net/index.js';
import { LOOPBACK_ALLOW, startServer, type TestServer } from '../net/helpers.js';
import { dictPickle, op, pickle, tensorPickle, torchZip } from '../engine/formats/fixtures.js';
import { factors, tinyConfigs } from '../engine/lora/helpers.js';

const Q = 'lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q'; // tiny UNet: [16, 16]
const sdxlLora = (rank: number): Buffer => Buffer.from(encodeSafetensors(factors(Q, [16, 16], rank, { alpha: 1 })));
const V1 = sdxlLora(2);
const V2 = sdxlLora(3);
const SD15 = Buffer.from(encodeSafetensors([
  ...factors('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q', [320, 320], 2, { alpha: 2 }),
  ...factors('lora_te_text_model_encoder_layers_0_self_attn_q_proj', [768, 768], 2, { alpha: 2 }),
]));
const PT = Buffer.from(torchZip(pickle(op.proto(2), dictPickle([[`${Q}.lora_down.weight`, tensorPickle('FloatStorage', '0', 2, 0, [1, 2], [2, 1])]]), op.stop), { 0: new Uint8Array(8) }));

let server: TestServer;
let current = V1;
let etag = '"v1"';
const roots: string[] = [];
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

before(async () => {
  const serve = (body: () => Buffer, headers: Record<string, string> = {}) => (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...headers }).end(body());
  };
  server = await startServer({
    '/style.safetensors': (req, res) => {
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', etag, 'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT' }).end(current);
    },
    '/no-validators.safetensors': serve(() => V1),
    '/a.safetensors': serve(() => sdxlLora(4)),
    '/b.safetensors': serve(() => sdxlLora(5)),
    '/c.safetensors': serve(() => sdxlLora(6)),
    '/page.html': serve(() => Buffer.from('<!DOCTYPE html><html><body>Sign in to continue</body></html>'), { 'content-type': 'text/html' }),
    '/sd15.safetensors': serve(() => SD15),
    '/lora.pt': serve(() => PT),
  });
});

after(async () => {
  await server.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function cache(opts: Partial<ConstructorParameters<typeof LoraCache>[0]> = {}): LoraCache {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'likeness-lora-cache-'));
  roots.push(dir);
  return new LoraCache({ allow: LOOPBACK_ALLOW, ...opts, dir });
}

const bodies = (path: string): number => server.requests.filter((r) => r.path === path).length;

test('a LoRA URL is downloaded once into a file named by its sha256, with progress reported', async () => {
  const c = cache();
  const progress: number[] = [];
  const got = await c.fetch(server.url('/style.safetensors'), { onProgress: (n) => progress.push(n) });
  assert.equal(got.fromCache, false);
  assert.equal(got.sha256, sha(V1));
  assert.equal(got.path.endsWith(`${sha(V1)}.safetensors`), true);
  assert.deepEqual(readFileSync(got.path), V1);
  assert.equal(progress.at(-1), V1.length);
  got.release();
});

test('fetched again, the server says 304 (If-None-Match) and the cached file is served without a second download', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'likeness-lora-cache-'));
  const first = await cache({ dir }).fetch(server.url('/style.safetensors'));
  first.release();
  const before = server.requests.length;
  // a new cache over the same folder: the index persisted
  const again = await cache({ dir }).fetch(server.url('/style.safetensors'));
  assert.equal(again.fromCache, true);
  assert.equal(again.path, first.path);
  assert.equal(server.requests.length, before + 1);
  assert.equal(server.requests.at(-1)!.headers['if-none-match'], '"v1"');
  again.release();
});

test('when the file changed (new ETag), the new content is downloaded and cached beside the old', async () => {
  const c = cache();
  (await c.fetch(server.url('/style.safetensors'))).release();
  current = V2;
  etag = '"v2"';
  try {
    const changed = await c.fetch(server.url('/style.safetensors'));
    assert.equal(changed.fromCache, false);
    assert.equal(changed.sha256, sha(V2));
    changed.release();
  } finally {
    current = V1;
    etag = '"v1"';
  }
});

test('a server without validators is downloaded again, and the same bytes share one file', async () => {
  const c = cache();
  const a = await c.fetch(server.url('/no-validators.safetensors'));
  const n = bodies('/no-validators.safetensors');
  const b = await c.fetch(server.url('/no-validators.safetensors'));
  assert.equal(bodies('/no-validators.safetensors'), n + 1);
  assert.equal(b.path, a.path);
  a.release();
  b.release();
});

test('warm() (the prefetch of a queued task) lets that task\'s fetch use the file without asking again, once', async () => {
  const c = cache();
  const url = server.url('/no-validators.safetensors'); // no validators: every fetch would download it again
  const n = bodies('/no-validators.safetensors');
  await c.warm(url);
  assert.equal(bodies('/no-validators.safetensors'), n + 1);
  const got = await c.fetch(url);
  assert.equal(bodies('/no-validators.safetensors'), n + 1, 'the task\'s fetch made no request');
  assert.equal(got.prefetched, 'downloaded');
  assert.equal(got.sha256, sha(V1));
  got.release();
  const again = await c.fetch(url); // the warm stood in for one fetch only
  assert.equal(bodies('/no-validators.safetensors'), n + 2);
  assert.equal(again.prefetched, undefined);
  again.release();
});

test('a warm() in flight is waited for, not repeated, and an aborted one leaves the fetch to download as usual', async () => {
  const c = cache();
  const url = server.url('/a.safetensors');
  const n = bodies('/a.safetensors');
  const warming = c.warm(url);
  const got = await c.fetch(url);
  await warming;
  assert.equal(bodies('/a.safetensors'), n + 1);
  assert.equal(got.prefetched, 'downloaded');
  got.release();
  const stop = new AbortController();
  stop.abort();
  await assert.rejects(c.warm(server.url('/b.safetensors'), { signal: stop.signal }));
  const b = await c.fetch(server.url('/b.safetensors'));
  assert.equal(b.prefetched, undefined);
  b.release();
});

test('a LoRA over the size limit is refused and leaves nothing behind', async () => {
  const c = cache({ maxFileBytes: 100 });
  await assert.rejects(c.fetch(server.url('/style.safetensors')), (err: FetchError) => err.code === 'url_too_large');
  const dir = roots.at(-1)!;
  assert.deepEqual(readdirSync(dir).filter((f) => !f.startsWith('index')), []);
});

test('a private address is refused unless the operator allowlisted it', async () => {
  const c = cache({ allow: [] });
  await assert.rejects(c.fetch(server.url('/style.safetensors')), (err: FetchError) => err.code === 'url_blocked_address');
});

test('a 404 is a clear error naming the input', async () => {
  await assert.rejects(cache().fetch(server.url('/missing.safetensors')),
    (err: FetchError) => err.code === 'url_status' && /^selectedLoraModelPrivateUrl .* answered HTTP 404/.test(err.message));
});

test('a web page instead of the file is refused before anything reads it, and not cached', async () => {
  const c = cache();
  await assert.rejects(c.fetch(server.url('/page.html')),
    (err: EngineError) => err.code === 'lora_not_safetensors' && /is a web page, not the LoRA file/.test(err.message));
  assert.equal(await c.totalBytes(), 0);
  assert.deepEqual(readdirSync(roots.at(-1)!).filter((f) => f.startsWith('incoming')), []);
});

test('a torch pickle LoRA is refused unless the operator allows pickles', async () => {
  await assert.rejects(cache().fetch(server.url('/lora.pt')), (err: EngineError) => err.code === 'lora_not_safetensors' && /torch pickle/.test(err.message));
  const got = await cache({ allowPickle: true }).fetch(server.url('/lora.pt'));
  assert.equal(got.format, 'torch-zip');
  assert.ok(got.path.endsWith('.pt'));
  got.release();
});

test('an SD 1.5 LoRA by URL is refused before the model runs, naming its layers', async () => {
  const targets = loraTargetsFromConfigs(tinyConfigs());
  await assert.rejects(loraFromUrl(cache(), server.url('/sd15.safetensors'), targets),
    (err: EngineError) => err.code === 'lora_incompatible' && /SD 1\.x\/2\.x/.test(err.message) && /lora_te_text_model_encoder_layers_0_self_attn_q_proj/.test(err.message));
  const ok = await loraFromUrl(cache(), server.url('/style.safetensors'), targets);
  assert.equal(ok.lora.id, sha(V1));
  assert.equal(ok.lora.report.matched, 1);
  ok.close();
});

test('the cache stays under its size bound by evicting the least recently used file, never a pinned one', async () => {
  const size = sdxlLora(4).length; // the three files are close in size; room for two
  const c = cache({ maxTotalBytes: Math.floor(size * 2.6) });
  const a = await c.fetch(server.url('/a.safetensors'));
  const b = await c.fetch(server.url('/b.safetensors'));
  b.release();
  const c3 = await c.fetch(server.url('/c.safetensors'));
  assert.ok(existsSync(a.path), 'a is pinned (in use): kept although least recently used');
  assert.ok(!existsSync(b.path), 'b was evicted');
  assert.ok(await c.totalBytes() <= Math.floor(size * 2.6));
  a.release();
  c3.release();
});

test('share links become the file itself: Google Drive, S3, Hugging Face, Dropbox', () => {
  const drive = 'https://drive.usercontent.google.com/download?id=1AbC-d_E&export=download&confirm=t';
  assert.equal(resolveLoraUrl('https://drive.google.com/file/d/1AbC-d_E/view?usp=sharing'), drive);
  assert.equal(resolveLoraUrl('https://drive.google.com/open?id=1AbC-d_E'), drive);
  assert.equal(resolveLoraUrl('https://drive.google.com/uc?id=1AbC-d_E&export=download'), drive);
  assert.throws(() => resolveLoraUrl('https://drive.google.com/drive/folders/xyz'), (e: FetchError) => e.code === 'url_invalid');
  assert.equal(resolveLoraUrl('s3://my-bucket/loras/style v1.safetensors'), 'https://my-bucket.s3.amazonaws.com/loras/style%20v1.safetensors');
  assert.equal(resolveLoraUrl('s3://my.dotted.bucket/a.safetensors'), 'https://s3.amazonaws.com/my.dotted.bucket/a.safetensors');
  const virtualHost = 'https://my-bucket.s3.eu-west-1.amazonaws.com/a.safetensors?X-Amz-Signature=abc';
  const pathStyle = 'https://s3.eu-west-1.amazonaws.com/my-bucket/a.safetensors';
  assert.equal(resolveLoraUrl(virtualHost), virtualHost);
  assert.equal(resolveLoraUrl(pathStyle), pathStyle);
  assert.equal(resolveLoraUrl('https://huggingface.co/user/repo/blob/main/lora.safetensors'), 'https://huggingface.co/user/repo/resolve/main/lora.safetensors');
  assert.equal(resolveLoraUrl('https://www.dropbox.com/s/abc/lora.safetensors?dl=0'), 'https://www.dropbox.com/s/abc/lora.safetensors?dl=1');
  assert.equal(resolveLoraUrl('https://example.com/x.safetensors'), 'https://example.com/x.safetensors');
});

test('the InstantID runner\'s prefetch warms its LoRA cache for selectedLoraModelPrivateUrl (no model needed)', async () => {
  const { InstantIdRunner } = await import('../../src/tools/instantid-runner.js');
  const { instantIdControlnetLora } = await import('../../src/tools/instant-id-controlnet-lora.js');
  const { validateRun } = await import('../../src/tools/validate.js');
  const home = mkdtempSync(join(tmpdir(), 'likeness-lora-prefetch-'));
  roots.push(home);
  const runner = new InstantIdRunner({ home, threads: 1, fetchAllow: LOOPBACK_ALLOW });
  try {
    const url = server.url('/c.safetensors');
    const v = validateRun(instantIdControlnetLora, { prompt: 'a portrait', inputImageUrl: 'https://images.example/face.png', selectedLoraModelPrivateUrl: url });
    assert.ok(v.ok, JSON.stringify(v));
    const n = bodies('/c.safetensors');
    await runner.prefetch(v.params, new AbortController().signal);
    assert.equal(bodies('/c.safetensors'), n + 1);
    assert.deepEqual(readdirSync(join(home, 'cache', 'loras')).filter((f) => f.endsWith('.safetensors')), [`${sha(sdxlLora(6))}.safetensors`]);
  } finally {
    await runner.dispose();
  }
});
