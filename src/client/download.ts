// Saving a task's outputs. Names come from the server (or whoever answers in its place), so each is
// reduced to a plain file name inside the target folder: no separators, no "..", no control characters,
// no reserved device names, bounded length, and never two outputs on one path.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Transport } from './transport.js';
import type { DownloadedFile, TaskOutput, WiroTask } from './types.js';

const EXTENSIONS: Record<string, string> = {
  'image/png': '.png',
  'image/jpeg': '.jpg',
  'image/webp': '.webp',
  'image/gif': '.gif',
  'application/json': '.json',
  'text/plain': '.txt',
};

const MAX_NAME = 150;

/** A file name safe to create in any folder; `fallback` when nothing usable is left of `name`. */
export function safeFileName(name: string, fallback: string): string {
  const last = name.split(/[\\/]/).pop() ?? '';
  let out = last
    .normalize('NFC')
    .replace(/[^\p{L}\p{N}._\- ]/gu, '_')
    .replace(/^[.\s]+/, '')
    .replace(/[.\s]+$/, '');
  if (/^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i.test(out)) out = `_${out}`;
  if (!/[\p{L}\p{N}]/u.test(out)) out = fallback;
  if (out.length > MAX_NAME) {
    const ext = extname(out).slice(0, 16);
    out = out.slice(0, MAX_NAME - ext.length) + ext;
  }
  return out;
}

function nameFor(output: TaskOutput, index: number): string {
  let name = output.name;
  if (!name) {
    try {
      name = decodeURIComponent(new URL(output.url).pathname.split('/').pop() ?? '');
    } catch {
      name = '';
    }
  }
  return safeFileName(name, `output-${index}${EXTENSIONS[output.contenttype] ?? ''}`);
}

/** `name`, or `name-2.ext`, `name-3.ext`… when an earlier output of this task took it. */
function unique(name: string, taken: Set<string>): string {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  let candidate = name;
  for (let n = 2; taken.has(candidate.toLowerCase()); n++) candidate = `${stem}-${n}${ext}`;
  taken.add(candidate.toLowerCase());
  return candidate;
}

export async function downloadOutputs(transport: Transport, task: Pick<WiroTask, 'outputs'>, dir: string, signal?: AbortSignal): Promise<DownloadedFile[]> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  const taken = new Set<string>();
  const saved: DownloadedFile[] = [];
  for (const [i, output] of task.outputs.entries()) {
    const path = join(root, unique(nameFor(output, i), taken));
    if (!path.startsWith(root + sep)) throw new Error(`refusing to write output "${output.name}" outside ${root}`);
    const res = await transport.get(output.url, signal);
    if (!res.body) throw new Error(`GET ${output.url} answered with no body`);
    // Written beside the target and renamed, so an interrupted download never looks complete.
    const partial = `${path}.part`;
    let bytes = 0;
    const counted = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>).on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    try {
      await pipeline(counted, createWriteStream(partial), { signal });
      await rename(partial, path);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    saved.push({ output, path, bytes });
  }
  return saved;
}
