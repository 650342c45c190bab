// Files: GET /v1/File/:accesskey/:name serves uploaded inputs, File/Upload uploads and task outputs — public
// like Wiro's CDN links (the 30-character access key in the path is what makes a link unguessable).
// POST /v1/File/Upload (multipart `file`, as WiroKit and Wiro-MCP send it) stores an image for the project and
// answers Wiro's {result, errors, list:[{id, name, contenttype, size, parentid, url, addedtime, accesskey}]};
// Run takes that URL as an input without fetching it (the worker reads its own files). POST /v1/File/Delete
// {id} removes an upload; uploads are otherwise kept, as task files are until Task/InputOutputDelete.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServiceContext } from '../context.js';
import { ApiError, failure } from '../http.js';
import { hexId, randomToken } from '../ids.js';
import { answerOnce, fingerprint } from '../replay.js';
import type { UploadRecord } from '../store/types.js';
import { fileUrl } from '../tasks/serialize.js';

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif', 'image/avif': 'avif', 'image/tiff': 'tiff' };

/** A file name of our making from the client's: safe characters only, the extension its content has. */
export function uploadName(clientName: string | undefined, contentType: string): string {
  const ext = EXTENSIONS[contentType] ?? 'bin';
  const base = (clientName ?? '').replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60);
  return `${base || 'upload'}.${ext}`;
}

const seconds = (ms: number): string => String(Math.floor(ms / 1000));

export function serializeUpload(u: UploadRecord, publicUrl: string): Record<string, unknown> {
  return {
    id: u.id, name: u.name, contenttype: u.contentType, size: String(u.size), parentid: '', uuid: '',
    url: fileUrl(publicUrl, u), addedtime: seconds(u.addedAt), modifiedtime: seconds(u.addedAt), accesskey: u.accessKey,
  };
}

async function readUpload(req: FastifyRequest): Promise<{ fields: Record<string, string>; file?: { bytes: Buffer; filename: string } }> {
  if (!req.isMultipart()) {
    throw new ApiError(0, 'File/Upload takes multipart/form-data with the image in a part named "file" (curl -F file=@photo.jpg).', 400);
  }
  const fields: Record<string, string> = {};
  let file: { bytes: Buffer; filename: string } | undefined;
  for await (const part of req.parts()) {
    if (part.type === 'field') {
      fields[part.fieldname] = typeof part.value === 'string' ? part.value : String(part.value);
      continue;
    }
    const bytes = await part.toBuffer();
    if (part.fieldname !== 'file') continue;
    if (file) throw new ApiError(0, 'File/Upload takes one file per request (one part named "file").', 400);
    file = { bytes, filename: part.filename };
  }
  return file ? { fields, file } : { fields };
}

export function fileRoutes(ctx: ServiceContext) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.get<{ Params: { accesskey: string; name: string } }>('/v1/File/:accesskey/:name', async (req, reply) => {
      const { accesskey, name } = req.params;
      const valid = /^[A-Za-z0-9]{20,64}$/.test(accesskey);
      const file = valid ? (await ctx.store.findFile(accesskey, name)) ?? (await ctx.store.findUpload(accesskey, name)) : undefined;
      const size = file && (await ctx.files.size(file.path));
      if (!file || size === undefined) return reply.code(404).send(failure([{ code: 1, message: 'File not found (it may have been deleted).' }]));
      return reply
        .header('content-type', file.contentType)
        .header('content-length', size)
        .header('x-content-type-options', 'nosniff')
        .header('content-disposition', `inline; filename="${file.name.replace(/[^\w.-]/g, '_')}"`)
        .header('cache-control', 'private, max-age=86400, immutable')
        .send(ctx.files.read(file.path));
    });

    app.post('/v1/File/Upload', { config: { auth: true } }, async (req, reply) => {
      const { fields, file } = await readUpload(req);
      const print = fingerprint('File/Upload', fields, file ? [{ field: 'file', bytes: file.bytes }] : []);
      return answerOnce(reply, req.acting(), print, async () => {
        if (!file || file.bytes.length === 0) throw new ApiError(0, 'Request files [file] required: send the image as a multipart part named "file".');
        let checked: { contentType: string };
        try {
          checked = await ctx.net.checkImage(file.bytes);
        } catch (err) {
          throw new ApiError(0, `Request files [file] ${(err as Error).message}. Likeness takes images only (PNG, JPEG, WebP).`);
        }
        const id = hexId();
        const name = uploadName(file.filename, checked.contentType);
        const record: UploadRecord = {
          id, projectId: req.apiKey!.projectId, name, contentType: checked.contentType, size: file.bytes.length,
          path: `uploads/files/${id}/${name}`, accessKey: randomToken(30), addedAt: Date.now(),
        };
        await ctx.files.put(record.path, file.bytes);
        try {
          await ctx.store.addUpload(record);
        } catch (err) {
          await ctx.files.remove(`uploads/files/${id}`);
          throw err;
        }
        return { result: true, errors: [], list: [serializeUpload(record, ctx.config.publicUrl)] };
      });
    });

    app.post('/v1/File/Delete', { config: { auth: true } }, async (req, reply) => {
      const b = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<string, unknown>;
      const id = String(b.id ?? b.fileid ?? '');
      return answerOnce(reply, req.acting(), fingerprint('File/Delete', b), async () => {
        const removed = /^[0-9a-f]{32}$/.test(id) ? await ctx.store.deleteUpload(req.apiKey!.projectId, id) : undefined;
        if (!removed) throw new ApiError(1, 'File not found (it may have been deleted).');
        await ctx.files.remove(`uploads/files/${removed.id}`);
        return { result: true, errors: [] };
      });
    });
  };
}

/** The access key and name of a URL that points at this server's own /v1/File/, or undefined. */
export function ownFileRef(url: string, publicUrl: string): { accessKey: string; name: string } | undefined {
  const prefix = `${publicUrl}/v1/File/`;
  if (!url.startsWith(prefix)) return undefined;
  const m = /^([A-Za-z0-9]{20,64})\/([^/?#]+)$/.exec(url.slice(prefix.length));
  if (!m) return undefined;
  try {
    return { accessKey: m[1]!, name: decodeURIComponent(m[2]!) };
  } catch {
    return undefined;
  }
}
