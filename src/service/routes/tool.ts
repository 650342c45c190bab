// POST /v1/Tool/List and /v1/Tool/Detail: the tools this server runs, with their input schemas.
// POST /v1/Tool/Explore: Wiro's curated categories — here one per category the tools carry, each holding
// its tools as Tool/List shows them ({explore:[{id, title, total, tools:[…]}]}, as WiroKit and Wiro-MCP read it).
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

    app.post('/v1/Tool/Explore', auth, async () => {
      const byCategory = new Map<string, Record<string, unknown>[]>();
      for (const t of ctx.tools.values()) {
        const item = { commentcount: '0', ratedusercount: '0', averagepoint: '0', ...t.listItem() };
        for (const c of t.facts.categories.length ? t.facts.categories : ['tool']) {
          byCategory.set(c, [...(byCategory.get(c) ?? []), item]);
        }
      }
      const explore = [...byCategory].map(([id, tools]) => ({ id, title: titleOf(id), total: tools.length, tools }));
      return { errors: [], explore, result: true };
    });

    app.post('/v1/Tool/Detail', auth, async (req) => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      const tool = ctx.tools.get(toolKey(String(b.slugowner ?? ''), String(b.slugproject ?? '')));
      if (!tool) throw new ApiError(1, 'slug-owner-project-not-exist');
      return { errors: [], tool: [tool.detail()], result: true };
    });
  };
}

/** "image-to-image" → "Image To Image". */
function titleOf(category: string): string {
  return category.split(/[-_\s]+/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join(' ');
}
