// A tool definition (data) made into the service's ServiceTool: validation, Tool/* items, file inputs,
// and the runner that executes it.
import type { ServiceTool } from '../service/context.js';
import type { ToolRunner } from '../service/runner.js';
import { toolDetail, toolListItem } from './detail.js';
import type { AvailabilityCheck, FileRef, RunParams, ToolDefinition } from './types.js';
import { declaredFields, validateRun } from './validate.js';

export function serviceTool(def: ToolDefinition, runner: ToolRunner, opts: { availability?: AvailabilityCheck } = {}): ServiceTool {
  const fileInputs = def.inputs.filter((i) => i.type === 'fileinput').map((i) => i.id);
  return {
    facts: { modelid: def.id, owner: def.owner, slug: def.slug, description: def.description, categories: [...def.categories] },
    cps: def.cps,
    fileInputs,
    fields: declaredFields(def),
    inputUrls(params) {
      const { values } = params as RunParams;
      const urls: Record<string, string> = {};
      for (const id of fileInputs) {
        const ref = values[id] as FileRef | null | undefined;
        if (ref && ref.source === 'url') urls[id] = ref.url;
      }
      return urls;
    },
    validate: (body, files, scope) => validateRun(def, body, files, {
      ...(opts.availability ? { availability: opts.availability } : {}),
      ...(scope?.projectId !== undefined ? { projectId: scope.projectId } : {}),
    }),
    detail: () => ({ ...toolDetail(def) }),
    listItem: () => ({ ...toolListItem(def) }),
    runner,
  };
}
