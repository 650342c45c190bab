// Weight-file read throughput: SafetensorsFile over a ~1 GB file of 10-50 MB tensors, against a plain
// sequential fs read of the same file. Run: node --import tsx bench/engine-core-formats.ts
// The file is written to os.tmpdir() and deleted afterwards. Both reads run with the file in the page
// cache (it was just written), so this measures the reader's overhead, not the disk.
import { closeSync, openSync, readSync, rmSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../src/engine/formats/safetensors.js';
import { writeSafetensors } from '../src/engine/formats/safetensors-write.js';
import type { TensorToWrite } from '../src/engine/formats/safetensors-write.js';
import { toFloat32 } from '../src/engine/formats/dtype.js';

const TARGET_BYTES = 1024 ** 3;
const MB = 1024 * 1024;
const ROUNDS = 5;

/** Tensor sizes between 10 and 50 MB (float32), deterministic, adding up to ~1 GB. */
function tensorPlan(): [string, number][] {
  const plan: [string, number][] = [];
  let total = 0;
  let seed = 12345;
  while (total < TARGET_BYTES) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const elements = Math.round(((10 + (seed / 2 ** 31) * 40) * MB) / 4);
    plan.push([`block.${plan.length}.weight`, elements]);
    total += elements * 4;
  }
  return plan;
}

function time(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function plainRead(path: string, buffer: Uint8Array): void {
  const fd = openSync(path, 'r');
  let position = 0;
  for (;;) {
    const n = readSync(fd, buffer, 0, buffer.length, position);
    if (n === 0) break;
    position += n;
  }
  closeSync(fd);
}

function plainReadFreshBuffers(path: string, sizes: number[]): void {
  const fd = openSync(path, 'r');
  let position = 0;
  for (const size of sizes) {
    const buffer = new Uint8Array(size);
    position += readSync(fd, buffer, 0, size, position);
  }
  closeSync(fd);
}

function readAll(path: string, convert: boolean): void {
  const file = SafetensorsFile.open(path);
  for (const name of file.names()) (convert ? file.readFloat32(name) : file.read(name));
  file.close();
}

function readAllInto(path: string, target: Uint8Array): void {
  const file = SafetensorsFile.open(path);
  for (const name of file.names()) file.readInto(name, target);
  file.close();
}

async function main(): Promise<void> {
  const dir = tmpdir();
  const free = statfsSync(dir);
  if (free.bavail * free.bsize < 2 * TARGET_BYTES) throw new Error(`need 2 GB free in ${dir}`);
  const path = join(dir, `likeness-bench-${process.pid}.safetensors`);
  const plan = tensorPlan();
  try {
    const tensors = plan.map(([name, elements]): [string, TensorToWrite] =>
      [name, { dtype: 'F32', shape: [elements], data: () => new Float32Array(elements).fill(0.5) }]);
    const writeStart = process.hrtime.bigint();
    await writeSafetensors(path, tensors);
    const writeSeconds = Number(process.hrtime.bigint() - writeStart) / 1e9;
    const bytes = statSync(path).size;
    const sizes = plan.map(([, elements]) => elements * 4);
    // Reused buffers are touched once up front, so no run pays first-touch page faults for them.
    const tensorSized = new Uint8Array(Math.max(...sizes)).fill(1);
    const small = new Uint8Array(4 * MB).fill(1);
    // Each reader row is compared with the plain fs read that does the same work: bytes landing in fresh
    // memory per tensor (what a loader that keeps its tensors pays) or streamed through one buffer.
    const fsFresh = 'fs readSync: a fresh buffer per tensor';
    const fsReused = 'fs readSync: one reused tensor-sized buffer';
    const reads: [string, () => void, string | undefined][] = [
      [fsFresh, () => plainReadFreshBuffers(path, sizes), undefined],
      [fsReused, () => plainRead(path, tensorSized), undefined],
      ['fs readSync: one reused 4 MB buffer (cache-resident, upper bound)', () => plainRead(path, small), undefined],
      ['SafetensorsFile.read (fresh memory per tensor)', () => readAll(path, false), fsFresh],
      ['SafetensorsFile.readFloat32 (F32 tensors)', () => readAll(path, true), fsFresh],
      ['SafetensorsFile.readInto (one reused buffer)', () => readAllInto(path, tensorSized), fsReused],
    ];
    const best = new Map<string, number>(reads.map(([label]) => [label, Infinity]));
    plainRead(path, small); // warm the page cache
    for (let round = 0; round < ROUNDS; round++) {
      for (const [label, read] of reads) best.set(label, Math.min(best.get(label)!, time(read)));
    }
    const halves = new Uint16Array(64 * MB).fill(0x3c00);
    const f16Seconds = Math.min(...[0, 1, 2].map(() => time(() => toFloat32('F16', halves))));
    const mbps = (seconds: number, n = bytes): string => `${(n / MB / seconds).toFixed(0)} MB/s`;
    console.log(`file: ${(bytes / MB).toFixed(0)} MB, ${plan.length} F32 tensors of 10-50 MB; best of ${ROUNDS}, page cache warm\n`);
    console.log('| read | time | throughput | vs the matching fs read |');
    console.log('| --- | --- | --- | --- |');
    for (const [label, , baseline] of reads) {
      const seconds = best.get(label)!;
      const ratio = baseline ? `${(best.get(baseline)! / seconds).toFixed(2)}x` : 'baseline';
      console.log(`| ${label} | ${seconds.toFixed(3)} s | ${mbps(seconds)} | ${ratio} |`);
    }
    console.log(`\nwrite (writeSafetensors, lazy tensors): ${writeSeconds.toFixed(2)} s, ${mbps(writeSeconds)}`);
    console.log(`F16 → F32 conversion (toFloat32): ${mbps(f16Seconds, halves.byteLength)} of F16 input`);
  } finally {
    rmSync(path, { force: true });
  }
}

await main();
