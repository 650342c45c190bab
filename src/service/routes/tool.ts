// POST /v1/Tool/List and /v1/Tool/Detail: the tools this server runs, with their input schemas.
import type { FastifyInstance } from 'fastify';
import type { ServiceContext } from '../context.js';
import { toolKey } from '../context.js';
import { ApiError } from '../http.js';

export function toolRoutes(ctx: ServiceContext) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const auth = { config: { auth: true } };

    app.post('/v1/Tool/List', auth, async () => {
      const tools = [...ctx.tools.values()].map((t) => t.listItem());
      return { total: tools.length, errors: [], tool: tools, result: true };
    });

    app.post('/v1/Tool/Detail', auth, async (req) => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      const tool = ctx.tools.get(toolKey(String(b.slugowner ?? ''), String(b.slugproject ?? '')));
      if (!tool) throw new ApiError(1, 'slug-owner-project-not-exist');
      return { errors: [], tool: [tool.detail()], result: true };
    });
  };
}
