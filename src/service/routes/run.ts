// POST /v1/Run/:owner/:tool — validate against the tool's schema, store uploads, queue the task; once per
// signed nonce and per Idempotency-Key (replay.ts).
// JSON or multipart/form-data; a file input arrives as the file ({id}) or a URL ({id}Url). A rejected
// request queues nothing and leaves no file behind.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServiceContext, ServiceTool, UploadedFileInfo } from '../context.js';
import { toolKey } from '../context.js';
import { ApiError } from '../http.js';
import { hexId, randomToken } from '../ids.js';
import type { FileRecord } from '../store/types.js';
import { fileUrl } from '../tasks/serialize.js';
import type { Dispatcher } from '../server.js';
import { answerOnce, fingerprint, idempotencyKeyOf } from '../replay.js';
import { redactPaths } from '../redact.js';

interface Upload extends UploadedFileInfo {
  id: string;
  bytes: Uint8Array;
}

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif' };

/** Multipart failures that are the client's: a clear 4xx, never a 500 with a stack. */
function multipartError(err: unknown, ctx: ServiceContext, part: string | undefined): never {
  if (err instanceof ApiError) throw err;
  const e = err as { code?: string; message?: string };
  if (e.code === 'FST_REQ_FILE_TOO_LARGE') {
    throw new ApiError(0, `Request files [${part ?? 'file'}] is larger than ${ctx.config.maxImageBytes} bytes (LIKENESS_MAX_IMAGE_BYTES).`, 413);
  }
  if (e.code === 'FST_FILES_LIMIT' || e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FIELDS_LIMIT') throw err; // 413 in the error handler
  throw new ApiError(0, `The multipart body is malformed (${String(e.message ?? err).slice(0, 200)}): send multipart/form-data with one part per field and a closing boundary.`, 400);
}

function tooLong(field: string, limit: number): ApiError {
  return new ApiError(0, `Request parameter [${field}] is longer than ${limit} bytes (LIKENESS_MAX_FIELD_BYTES).`, 413);
}

/** Only the fields the tool declares survive; strings are bounded; nothing else is validated or stored. */
function declaredOnly(raw: Record<string, unknown>, tool: ServiceTool, maxFieldBytes: number): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const field of tool.fields) {
    if (!Object.hasOwn(raw, field)) continue;
    const value = raw[field];
    const strings = Array.isArray(value) ? value : [value];
    for (const v of strings) if (typeof v === 'string' && Buffer.byteLength(v) > maxFieldBytes) throw tooLong(field, maxFieldBytes);
    body[field] = value;
  }
  return body;
}

async function readRequest(req: FastifyRequest, tool: ServiceTool, ctx: ServiceContext): Promise<{ body: Record<string, unknown>; uploads: Upload[] }> {
  const maxField = ctx.config.maxFieldBytes;
  if (!req.isMultipart()) {
    const b = req.body ?? {};
    if (typeof b !== 'object' || Array.isArray(b)) throw new ApiError(0, 'Request parameters are invalid.');
    return { body: declaredOnly(b as Record<string, unknown>, tool, maxField), uploads: [] };
  }
  const declared = new Set(tool.fields);
  const body: Record<string, unknown> = {};
  const uploads: Upload[] = [];
  let current: string | undefined;
  try {
    for await (const part of req.parts({ limits: { fieldSize: maxField } })) {
      current = part.fieldname;
      if (part.type === 'field') {
        if (part.valueTruncated) throw tooLong(part.fieldname, maxField);
        if (!declared.has(part.fieldname)) continue; // undeclared: dropped, never stored
        const value = typeof part.value === 'string' ? part.value : String(part.value);
        const prev = body[part.fieldname];
        body[part.fieldname] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
        continue;
      }
      if (!tool.fileInputs.includes(part.fieldname)) {
        part.file.resume(); // not an input of this tool: drained, not kept
        continue;
      }
      const bytes = await part.toBuffer();
      if (bytes.length === 0) continue; // `-F inputImage=` with nothing attached
      if (uploads.some((u) => u.id === part.fieldname)) {
        throw new ApiError(0, `Request files [${part.fieldname}] was sent more than once: send one file per file input.`, 400);
      }
      let checked: { contentType: string };
      try {
        checked = await ctx.net.checkImage(bytes);
      } catch (err) {
        throw new ApiError(0, `Request files [${part.fieldname}] ${(err as Error).message}`);
      }
      uploads.push({ id: part.fieldname, bytes, filename: part.filename, contentType: checked.contentType, size: bytes.length });
    }
  } catch (err) {
    multipartError(err, ctx, current);
  }
  return { body, uploads };
}

export function runRoutes(ctx: ServiceContext, dispatcher: Dispatcher) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.post<{ Params: { owner: string; tool: string } }>('/v1/Run/:owner/:tool', { config: { auth: true } }, async (req, reply) => {
      const tool = ctx.tools.get(toolKey(req.params.owner, req.params.tool));
      if (!tool) throw new ApiError(1, 'slug-owner-project-not-exist');
      const idempotencyKey = idempotencyKeyOf(req.headers);
      const { body, uploads } = await readRequest(req, tool, ctx);
      const print = fingerprint(`run:${toolKey(tool.facts.owner, tool.facts.slug)}`, body, uploads.map((u) => ({ field: u.id, bytes: u.bytes })));
      const acting = req.acting();
      return answerOnce(reply, { ...acting, request: { ...acting.request, idempotencyKey } }, print, () => queue(body, uploads, tool, req));
    });

    /** Validates and queues: what a Run does the first time (replays get its answer, see replay.ts). */
    async function queue(body: Record<string, unknown>, uploads: Upload[], tool: ServiceTool, req: FastifyRequest) {
      const validation = tool.validate(body, Object.fromEntries(uploads.map((u) => [u.id, u])), { projectId: req.apiKey!.projectId });
      if (!validation.ok) {
        return { result: false, errors: validation.errors.map((e) => ({ code: e.code, message: redactPaths(e.message, ctx.config.home) })) };
      }

      const notes: string[] = [...(validation.notes ?? [])];
      let callbackUrl = typeof body.callbackUrl === 'string' ? body.callbackUrl.trim() : '';
      if (callbackUrl && !/^https?:\/\/[^\s]+$/i.test(callbackUrl)) {
        notes.push(`callbackUrl ignored: "${callbackUrl.slice(0, 80)}" is not an http(s) URL.`);
        callbackUrl = '';
      }

      const now = Date.now();
      const parameters: Record<string, unknown> = { ...body };
      const recordBytes = Buffer.byteLength(JSON.stringify(parameters)) + Buffer.byteLength(JSON.stringify(validation.params ?? null));
      if (recordBytes > ctx.config.maxTaskRecordBytes) {
        throw new ApiError(0, `The Run's parameters take ${recordBytes} bytes, over the ${ctx.config.maxTaskRecordBytes}-byte limit of a task record (LIKENESS_MAX_TASK_RECORD_BYTES).`, 413);
      }
      const inputs: Omit<FileRecord, 'taskId'>[] = [];
      const folder = hexId();
      try {
        for (const u of uploads) {
          const name = `${u.id}-${randomToken(7).toLowerCase()}.${EXTENSIONS[u.contentType] ?? 'bin'}`;
          const path = `uploads/${folder}/${name}`;
          await ctx.files.put(path, u.bytes);
          const record = {
            id: hexId(), projectId: req.apiKey!.projectId, role: 'input' as const, name, contentType: u.contentType,
            size: u.bytes.length, path, accessKey: randomToken(30), addedAt: now, modifiedAt: now,
          };
          inputs.push(record);
          parameters[u.id] = fileUrl(ctx.config.publicUrl, record);
        }
        const task = await ctx.store.createTask(
          {
            projectId: req.apiKey!.projectId,
            tool: toolKey(tool.facts.owner, tool.facts.slug),
            parameters,
            params: validation.params,
            callbackUrl,
            cps: tool.cps,
            debugoutput: notes.map((n) => `${n}\n`).join(''),
            maxActive: ctx.config.maxActivePerProject,
          },
          inputs,
        );
        dispatcher.wake();
        return { errors: [], taskid: String(task.id), socketaccesstoken: task.socketToken, result: true };
      } catch (err) {
        await ctx.files.remove(`uploads/${folder}`);
        throw err;
      }
    }
  };
}
