// Shared fixtures for the face tests: the real SCRFD model and photos in ../shared/assets, the
// reference alignments, and a decoder that reads pixels as cv2.imread / PIL do.
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { asset } from '../../helpers/paths.js';
import type { Affine, Box, Keypoints, RgbImage } from '../../../src/engine/face/types.js';

export const DETECTOR = asset('models/det_500m.onnx');

/**
 * Decodes as insightface's callers do (cv2.imread, PIL): the stored values, embedded ICC profile
 * ignored. src/net/image.ts's decodeImageRGB converts through the profile instead, which moves two of
 * these photos (fullbody_*.jpg carry a profile) by up to 10 grey levels.
 */
export async function decodeRaw(name: string): Promise<RgbImage> {
  const { data, info } = await sharp(readFileSync(asset(`faces/${name}`)), { ignoreIcc: true, autoOrient: true })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${name}: ${info.channels} channels`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

export async function decodeAligned(file: string): Promise<RgbImage> {
  const { data, info } = await sharp(readFileSync(asset(`aligned/${file}`))).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

export interface AlignedRef {
  box: Box;
  score: number;
  kps: Keypoints;
  M: Affine;
  aligned: string;
}

export function alignedRefs(): Record<string, AlignedRef> {
  return JSON.parse(readFileSync(asset('aligned/aligned.json'), 'utf8')) as Record<string, AlignedRef>;
}

/** Largest absolute difference between two equal-length byte arrays, and how many bytes differ. */
export function pixelDiff(a: Uint8Array, b: Uint8Array): { max: number; differing: number } {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length}`);
  let max = 0;
  let differing = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) max = d;
    if (d) differing++;
  }
  return { max, differing };
}

export function maxAbs(a: readonly number[], b: readonly number[]): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
}
