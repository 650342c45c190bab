// ONNX Runtime's own copy of a cached model, with its pre-packed weights, for the CPU provider.
//
// Where a cached open's time went (issue 11 item 4, measured on the mid set, 2 cores): not reading,
// not graph optimisation, but pre-packing — at session creation the CPU provider re-lays every constant
// MatMul/Gemm weight into its kernels' blocked layout, on the heap. CLIP-G (2.66 GB) opened in 12.7 s
// with packing, 1.1 s with `session.disable_prepacking` (its weights then stay memory-mapped and
// untouched), but unpacked kernels pack on every call: a UNet step ran 2–9 % slower, a text encode 30 %.
// ORT can instead save the optimised graph with the packed weights in an external file
// (`session.save_external_prepacked_constant_initializers`) and memory-map them on the next open:
// CLIP-G then opens in 2.3–2.7 s, the mid UNet in 2.7–3.1 s, resident memory 0.11 GB at open, and the
// kernels read packed weights as before.
//
// At full size it is another matter (bench/unet-open.ts, the 2.57 B-parameter UNet, 10.3 GB): the copy
// halved the open (84 → 41 s and 65 → 28 s, two runs) but each 512² CFG-pair call ran 11–30 % slower
// (11.8–15.8 s against 10.6–11.3 s; the first call pays the page faults of 10 GB of mapped weights); on
// the mid nets (≤ 2.7 GB) calls were unchanged. So by default ('auto') only entries under 4 GiB get a copy.
//
// So the first CPU open of such a cache entry also writes `ort-cpu-<tag>/` inside the entry (model.onnx +
// weights.bin, written under a temporary name and renamed into place), and later opens use it with
// graph optimisation off (it is optimised already). <tag> hashes what the packed layout depends on:
// the ONNX Runtime version, the CPU (model and instruction-set flags) and the optimisation level; a
// different host or an upgrade writes a copy of its own. The copy holds the original weights as well
// as the packed ones, so it costs about twice the entry's size on disk (the cache bound counts it);
// LIKENESS_ORT_PACKED_COPY=on gives every entry a copy, off none (pack at every open).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

/** Name prefix of the copies inside a cache entry; temporaries start with PACKED_TMP_PREFIX. */
export const PACKED_PREFIX = 'ort-cpu-';
export const PACKED_TMP_PREFIX = '.ort-tmp-';

export type PackedCopyMode = 'auto' | 'on' | 'off';

/** Below this many bytes of plain model, 'auto' keeps a packed copy (see the header for the measurements). */
export const AUTO_MAX_BYTES = 4 * 2 ** 30;

/** LIKENESS_ORT_PACKED_COPY: auto (default: entries under 4 GiB), on (every entry) or off. */
export function packedCopyMode(env: NodeJS.ProcessEnv = process.env): PackedCopyMode {
  const raw = (env.LIKENESS_ORT_PACKED_COPY ?? '').trim().toLowerCase();
  if (raw === '' || raw === 'auto') return 'auto';
  if (raw === 'on' || raw === '1' || raw === 'true') return 'on';
  if (raw === 'off' || raw === '0' || raw === 'false') return 'off';
  throw new Error(`LIKENESS_ORT_PACKED_COPY=${JSON.stringify(env.LIKENESS_ORT_PACKED_COPY)}: use auto, on or off`);
}

/** Whether copies are kept at all (auto or on). */
export function packedCopyEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return packedCopyMode(env) !== 'off';
}

/** The plain model's bytes in a cache entry: its files, not the copies' folders. */
function plainBytes(entryDir: string): number {
  let n = 0;
  for (const d of readdirSync(entryDir, { withFileTypes: true })) {
    if (d.isFile()) n += statSync(join(entryDir, d.name)).size;
  }
  return n;
}

let hostTag: string | undefined;

function ortVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return (require('onnxruntime-node/package.json') as { version?: string }).version ?? '?';
  } catch {
    return '?';
  }
}

function cpuFlags(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    return /^flags\s*:(.*)$/m.exec(info)?.[1]?.trim() ?? '';
  } catch {
    return '';
  }
}

/** What the packed layout depends on, hashed: ORT version, architecture, CPU model and flags, optimisation level. */
export function packedCopyTag(graphOptimizationLevel = 'all'): string {
  hostTag ??= createHash('sha256').update(JSON.stringify([ortVersion(), process.arch, cpus()[0]?.model ?? '?', cpuFlags()])).digest('hex');
  return createHash('sha256').update(`${hostTag}/${graphOptimizationLevel}`).digest('hex').slice(0, 16);
}

/** The folder a cache entry's copies live in (the entry itself), or undefined when it gets none. */
export function packedCopyHome(entryDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const mode = packedCopyMode(env);
  if (mode === 'off' || !existsSync(join(entryDir, 'key.json'))) return undefined; // not a cache entry: nowhere to keep a copy
  if (mode === 'auto' && plainBytes(entryDir) >= AUTO_MAX_BYTES) return undefined;
  return entryDir;
}
