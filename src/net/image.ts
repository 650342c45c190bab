/**
 * Checks and decodes images from strangers.
 *
 * Magic bytes come first, so an HTML error page or a zip is refused with a message saying what it
 * is, and only formats we mean to support ever reach a decoder (no SVG: it is a document, not a
 * photo). Dimensions are then read from the header and compared with the pixel limit before any
 * pixel is decoded, so a small file declaring 30000×30000 costs nothing.
 */
import sharp, { type Metadata } from 'sharp';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif' | 'avif' | 'tiff';

export type ImageErrorCode = 'image_not_image' | 'image_unsupported' | 'image_too_large' | 'image_corrupt' | 'image_empty';

export class ImageError extends Error {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImageError';
  }
}

export interface ImageLimits {
  /** Most pixels (width × height, upright) accepted. */
  maxPixels?: number;
  /** Largest file accepted, in bytes. */
  maxBytes?: number;
  /** How messages name the image, e.g. "inputImage". */
  label?: string;
}

export interface ImageInfo {
  format: ImageFormat;
  /** Upright dimensions (EXIF orientation applied), i.e. what decodeImageRGB returns. */
  width: number;
  height: number;
}

export interface DecodedImage {
  /** HWC, RGB, 8 bits per channel, upright. */
  data: Uint8Array;
  width: number;
  height: number;
}

/** 50 MP: beyond any face photo's needs, and ~150 MB decoded as RGB. */
export const DEFAULT_MAX_PIXELS = 50_000_000;
export const DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024;

function startsWith(bytes: Uint8Array, ascii: string, at = 0): boolean {
  if (bytes.length < at + ascii.length) return false;
  for (let i = 0; i < ascii.length; i++) if (bytes[at + i] !== ascii.charCodeAt(i)) return false;
  return true;
}

/** The image format the bytes start with, or undefined. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | 'heic' | undefined {
  if (startsWith(bytes, '\x89PNG\r\n\x1a\n')) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (startsWith(bytes, 'GIF87a') || startsWith(bytes, 'GIF89a')) return 'gif';
  if (startsWith(bytes, 'RIFF') && startsWith(bytes, 'WEBP', 8)) return 'webp';
  if (startsWith(bytes, 'II*\0') || startsWith(bytes, 'MM\0*')) return 'tiff';
  if (startsWith(bytes, 'ftyp', 4)) {
    const brand = String.fromCharCode(...bytes.subarray(8, 12));
    if (brand === 'avif' || brand === 'avis') return 'avif';
    if (['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1'].includes(brand)) return 'heic';
  }
  return undefined;
}

/** A guess at what non-image bytes are, to tell the user what they actually sent. */
function describeNonImage(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 512)).toString('latin1').trimStart().toLowerCase();
  if (head.startsWith('<!doctype html') || head.startsWith('<html') || /<(head|body)[\s>]/.test(head)) {
    return 'an HTML page (link to the image file itself, not to a page that shows it)';
  }
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'an SVG drawing (send a PNG or JPEG photo)';
  if (startsWith(bytes, 'PK\x03\x04')) return 'a zip archive';
  if (startsWith(bytes, '%PDF')) return 'a PDF document';
  if (startsWith(bytes, '\x1f\x8b')) return 'a gzip archive';
  if (head.startsWith('{') || head.startsWith('[')) return 'JSON text';
  if (startsWith(bytes, 'BM')) return 'a BMP image, which is not supported (send PNG or JPEG)';
  const printable = bytes.subarray(0, 512).every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  return printable ? 'plain text' : 'not a recognised image format';
}

function limitsOf(opts: ImageLimits): { maxPixels: number; maxBytes: number; label: string } {
  return {
    maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
    maxBytes: opts.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES,
    label: opts.label ?? 'the image',
  };
}

/**
 * Checks that `bytes` are a supported image within the limits, reading only the header.
 * Throws ImageError.
 */
export async function checkImage(bytes: Uint8Array, opts: ImageLimits = {}): Promise<ImageInfo> {
  const { maxPixels, maxBytes, label } = limitsOf(opts);
  if (bytes.length === 0) throw new ImageError('image_empty', `${label} is empty (0 bytes)`);
  if (bytes.length > maxBytes) {
    throw new ImageError('image_too_large', `${label} is ${mb(bytes.length)}, over the ${mb(maxBytes)} limit; send a smaller image`);
  }
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    throw new ImageError('image_not_image', `${label} is not an image: it looks like ${describeNonImage(bytes)}. Send a PNG, JPEG or WebP file`);
  }
  if (format === 'heic') {
    throw new ImageError('image_unsupported', `${label} is a HEIC/HEIF photo, which Likeness cannot decode; convert it to JPEG or PNG`);
  }
  let meta: Metadata;
  try {
    // metadata() parses the header only; the pixel limit is checked by us below, before decoding.
    meta = await sharp(bytes, { limitInputPixels: false, failOn: 'error' }).metadata();
  } catch (err) {
    throw corrupt(label, format, err);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw corrupt(label, format, new Error('no dimensions in the header'));
  // Animated images: sharp reports and decodes only the first frame unless asked for all.
  const pixels = width * height;
  if (pixels > maxPixels) {
    throw new ImageError(
      'image_too_large',
      `${label} is ${width}×${height} pixels (${mp(pixels)}), over the ${mp(maxPixels)} limit; send a smaller image`,
    );
  }
  return { format, width, height };
}

/**
 * Decodes an image to upright 8-bit RGB (HWC), as the face and control pipelines expect: EXIF
 * orientation applied (as diffusers' load_image does with exif_transpose), alpha dropped (as
 * PIL's convert('RGB') and cv2.imread do), grey and palette images expanded to three channels.
 */
export async function decodeImageRGB(bytes: Uint8Array, opts: ImageLimits = {}): Promise<DecodedImage> {
  const info = await checkImage(bytes, opts);
  const { maxPixels, label } = limitsOf(opts);
  try {
    // limitInputPixels again, as a guard in the decoder itself should the header check be fooled.
    // failOn 'error' rather than 'warning': phone JPEGs with harmless warnings must still load.
    // ignoreIcc: PIL and cv2 (what InstantID and insightface read images with) ignore embedded colour
    // profiles; converting them moves face crops by up to 10 grey levels against the references.
    const { data, info: out } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error', autoOrient: true, ignoreIcc: true })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (out.channels !== 3) throw new Error(`decoded ${out.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: out.width, height: out.height };
  } catch (err) {
    throw corrupt(label, info.format, err);
  }
}

function corrupt(label: string, format: string, err: unknown): ImageError {
  const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new ImageError('image_corrupt', `${label} looks like ${format.toUpperCase()} but could not be read (${why}); re-save or re-export it`, {
    cause: err,
  });
}

function mb(n: number): string {
  return `${Math.round((n / (1024 * 1024)) * 10) / 10} MB`;
}

function mp(n: number): string {
  return `${Math.round(n / 100_000) / 10} MP`;
}
