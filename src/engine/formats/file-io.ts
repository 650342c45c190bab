// Positioned reads that either fill the whole buffer or report how far they got.
import { readSync } from 'node:fs';

/** readSync takes at most 2 GiB - 1 per call; stay well below. */
const MAX_CHUNK = 1 << 30;

/** Reads into `target` from `position` until it is full or the file ends; returns the bytes read. */
export function readFully(fd: number, target: Uint8Array, position: number): number {
  let done = 0;
  while (done < target.byteLength) {
    const want = Math.min(MAX_CHUNK, target.byteLength - done);
    const n = readSync(fd, target, done, want, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Reads exactly `length` bytes at `position` into fresh (8-byte aligned) memory, or calls `onShort`. */
export function readExact(fd: number, length: number, position: number, onShort: (got: number) => never): Uint8Array {
  const out = new Uint8Array(length);
  const got = readFully(fd, out, position);
  if (got !== length) onShort(got);
  return out;
}
