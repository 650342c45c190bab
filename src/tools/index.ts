// The tools this server runs, each joined to its runner. The InstantID runner (instantid-runner.ts)
// needs the server's home (models, caches), so callers build it: `likeness serve` does; a caller that
// passes none gets a runner that fails every task clearly — never a placeholder image.
import type { ServiceTool } from '../service/context.js';
import { UnavailableRunner, type ToolRunner } from '../service/runner.js';
import { instantIdControlnetLora } from './instant-id-controlnet-lora.js';
import { withEngineLimits } from './instantid/availability.js';
import { serviceTool } from './service-tool.js';
import type { AvailabilityCheck } from './types.js';

export const ENGINE_NOT_READY =
  'No engine was configured for this tool in this server (defaultTools() was called without a runner): ' +
  'the service, the API and validation work, but nothing generates images. `likeness serve` builds the InstantID runner. No image was generated.';

/**
 * The server's tools. Validation always refuses what the engine cannot run yet (the openpose and depth
 * ControlNets, whose preprocessors do not exist), then asks `availability` (installed models).
 */
export function defaultTools(opts: { runner?: ToolRunner; availability?: AvailabilityCheck } = {}): ServiceTool[] {
  const runner = opts.runner ?? new UnavailableRunner(ENGINE_NOT_READY);
  return [serviceTool(instantIdControlnetLora, runner, { availability: withEngineLimits(opts.availability) })];
}
