// GET /v1/File/:accesskey/:name — uploaded inputs and task outputs. Public like Wiro's CDN links: the
// 30-character access key in the path is what makes a link unguessable.
import type { FastifyInstance } from 'fastify';
import type { ServiceContext } from '../context.js';
import { failure } from '../http.js';

export function fileRoutes(ctx: ServiceContext) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.get<{ Params: { accesskey: string; name: string } }>('/v1/File/:accesskey/:name', async (req, reply) => {
      const { accesskey, name } = req.params;
      const file = /^[A-Za-z0-9]{20,64}$/.test(accesskey) ? await ctx.store.findFile(accesskey, name) : undefined;
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
  };
}
