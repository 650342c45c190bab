// The tools this server runs, each joined to its runner. The InstantID runner is the engine's
// (issue 5); until the engine's pipeline is wired, tasks fail with a clear reason — never a placeholder image.
import type { ServiceTool } from '../service/context.js';
import { UnavailableRunner, type ToolRunner } from '../service/runner.js';
import { instantIdControlnetLora } from './instant-id-controlnet-lora.js';
import { serviceTool } from './service-tool.js';
import type { AvailabilityCheck } from './types.js';

export const ENGINE_NOT_READY =
  'The InstantID pipeline is not available in this build of Likeness yet: the service, the API and validation work, ' +
  'but the engine that generates images is still being built (see the README, "Status"). No image was generated.';

export function defaultTools(opts: { runner?: ToolRunner; availability?: AvailabilityCheck } = {}): ServiceTool[] {
  const runner = opts.runner ?? new UnavailableRunner(ENGINE_NOT_READY);
  return [serviceTool(instantIdControlnetLora, runner, opts.availability ? { availability: opts.availability } : {})];
}
