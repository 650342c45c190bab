/**
 * The network edge: everything Likeness fetches or posts on a stranger's behalf goes through here.
 * fetchImage is the one call the worker needs for inputImageUrl: guarded fetch, then image checks.
 */
import { IMAGE_CONTENT_TYPES, IMAGE_FETCH_POLICY, guardedFetch, type FetchOptions } from './guarded-fetch.js';
import { checkImage, type ImageInfo } from './image.js';

export { AllowList, classifyAddress, describeKind, fetchAllowFromEnv, type AddressKind } from './address.js';
export {
  FILE_DOWNLOAD_POLICY,
  FetchError,
  IMAGE_CONTENT_TYPES,
  IMAGE_FETCH_POLICY,
  displayUrl,
  guardedDownload,
  guardedFetch,
  type DownloadOptions,
  type DownloadResult,
  type FetchOptions,
  type FetchPolicy,
  type FetchResult,
  type Resolver,
} from './guarded-fetch.js';
export type { FetchErrorCode } from './fetch-error.js';
export {
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_MAX_PIXELS,
  ImageError,
  checkImage,
  decodeImageRGB,
  sniffImageFormat,
  type DecodedImage,
  type ImageErrorCode,
  type ImageFormat,
  type ImageInfo,
  type ImageLimits,
} from './image.js';
export { CALLBACK_POLICY, SIGNATURE_HEADER, deliverCallback, signCallbackBody, standardWebhookHeaders, type CallbackDelivery, type CallbackOptions } from './callback.js';

export interface FetchImageOptions extends FetchOptions {
  maxPixels?: number;
}

export interface FetchedImage {
  bytes: Buffer;
  info: ImageInfo;
  contentType: string;
  finalUrl: string;
}

/**
 * Fetches an image URL (image content types only, image size limits) and checks the bytes are a
 * supported image within the pixel limit. Throws FetchError or ImageError; both carry a code and a
 * message naming the input (opts.label, e.g. "inputImageUrl").
 */
export async function fetchImage(url: string, opts: FetchImageOptions = {}): Promise<FetchedImage> {
  const fetched = await guardedFetch(url, { accept: IMAGE_CONTENT_TYPES, ...opts });
  const info = await checkImage(fetched.bytes, {
    maxPixels: opts.maxPixels,
    maxBytes: opts.maxBytes ?? IMAGE_FETCH_POLICY.maxBytes,
    label: opts.label,
  });
  return { bytes: fetched.bytes, info, contentType: fetched.contentType, finalUrl: fetched.finalUrl };
}
