// The one download of a task's URL input, used by the worker's preprocess (fetchInputs) and by the
// prefetcher (prefetch.ts) alike, so a prefetched input is exactly what preprocess would have fetched.
import { readFile } from 'node:fs/promises';
import type { ServiceContext } from './context.js';
import { ownFileRef } from './routes/file.js';
import { TaskInputError } from './runner.js';
import type { TaskRecord } from './store/types.js';

export interface FetchedInput {
  bytes: Uint8Array;
  contentType: string;
}

/** How messages name input `id`: "{id}Url" when the client sent the URL under that name. */
export function inputLabel(task: TaskRecord, id: string, url: string): string {
  return task.parameters[`${id}Url`] === url ? `${id}Url` : id;
}

/** True for a URL that would be downloaded from the network (not one of this server's own file links). */
export function isRemoteUrl(ctx: ServiceContext, url: string): boolean {
  return /^https?:\/\//i.test(url) && !ownFileRef(url, ctx.config.publicUrl);
}

/** A file of this server's, by the access key and name in its URL; only the task's own project's files. */
async function ownFile(ctx: ServiceContext, task: TaskRecord, ref: { accessKey: string; name: string }, label: string, url: string): Promise<FetchedInput> {
  const file = (await ctx.store.findUpload(ref.accessKey, ref.name)) ?? (await ctx.store.findFile(ref.accessKey, ref.name));
  if (!file || file.projectId !== task.projectId) {
    throw new TaskInputError('url_fetch', `${label} ${url.slice(0, 200)} is not a file of this project on this server (it may have been deleted): upload it again with File/Upload.`);
  }
  try {
    return { bytes: await readFile(ctx.files.localPath(file.path)), contentType: file.contentType };
  } catch {
    throw new TaskInputError('url_fetch', `${label} ${url.slice(0, 200)} was deleted: upload it again with File/Upload.`);
  }
}

/**
 * Input `id`'s bytes from `url`: our own `/v1/File/` link is read from the store (no fetch, no fetch-allow
 * needed), anything else goes through the guarded fetcher. A user's problem throws TaskInputError with the
 * message debugerror shows; when `signal` is aborted the fetcher's own abort error is thrown as is.
 */
export async function downloadUrlInput(ctx: ServiceContext, task: TaskRecord, id: string, url: string, signal: AbortSignal): Promise<FetchedInput> {
  const label = inputLabel(task, id, url);
  if (!/^https?:\/\//i.test(url)) {
    throw new TaskInputError('url_invalid', `${label} "${url.slice(0, 200)}" is not an http(s) URL: give a full URL to the image, or upload the file as ${id}.`);
  }
  const own = ownFileRef(url, ctx.config.publicUrl);
  if (own) return ownFile(ctx, task, own, label, url);
  try {
    return await ctx.net.fetchImage(url, { label, signal });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new TaskInputError('url_fetch', err instanceof Error ? err.message : String(err));
  }
}
