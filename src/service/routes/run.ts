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

interface Upload extends UploadedFileInfo {
  id: string;
  bytes: Uint8Array;
}

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif' };

async function readRequest(req: FastifyRequest, tool: ServiceTool, ctx: ServiceContext): Promise<{ body: Record<string, unknown>; uploads: Upload[] }> {
  if (!req.isMultipart()) {
    const b = req.body ?? {};
    if (typeof b !== 'object' || Array.isArray(b)) throw new ApiError(0, 'Request parameters are invalid.');
    return { body: b as Record<string, unknown>, uploads: [] };
  }
  const body: Record<string, unknown> = {};
  const uploads: Upload[] = [];
  for await (const part of req.parts()) {
    if (part.type === 'field') {
      const value = typeof part.value === 'string' ? part.value : String(part.value);
      const prev = body[part.fieldname];
      body[part.fieldname] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
      continue;
    }
    const bytes = await part.toBuffer();
    if (!tool.fileInputs.includes(part.fieldname)) continue; // not an input of this tool
    if (bytes.length === 0) continue; // `-F inputImage=` with nothing attached
    let checked: { contentType: string };
    try {
      checked = await ctx.net.checkImage(bytes);
    } catch (err) {
      throw new ApiError(0, `Request files [${part.fieldname}] ${(err as Error).message}`);
    }
    uploads.push({ id: part.fieldname, bytes, filename: part.filename, contentType: checked.contentType, size: bytes.length });
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
      const validation = tool.validate(body, Object.fromEntries(uploads.map((u) => [u.id, u])));
      if (!validation.ok) return { result: false, errors: validation.errors };

      const notes: string[] = [...(validation.notes ?? [])];
      let callbackUrl = typeof body.callbackUrl === 'string' ? body.callbackUrl.trim() : '';
      if (callbackUrl && !/^https?:\/\/[^\s]+$/i.test(callbackUrl)) {
        notes.push(`callbackUrl ignored: "${callbackUrl.slice(0, 80)}" is not an http(s) URL.`);
        callbackUrl = '';
      }

      const now = Date.now();
      const parameters: Record<string, unknown> = { ...body };
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
