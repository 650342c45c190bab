// What this version of the engine can run, checked at validation (Run answers result:false, nothing is
// queued): a ControlNet whose preprocessor (its option's `preprocessor`) has no entry in
// preprocessors.ts cannot run yet.
import { CONTROLNET_OPTIONS } from '../instant-id-controlnet-lora.js';
import type { AvailabilityCheck } from '../types.js';
import { PREPROCESSORS } from './preprocessors.js';

const DESCRIBED: Readonly<Record<string, string>> = {
  openpose: 'the openpose preprocessor (body keypoints from the pose image)',
  depth: 'the depth preprocessor (a depth map from the pose image)',
};

/** The message for a ControlNet that cannot run yet, or undefined. */
export function unsupportedControlNet(id: string): string | undefined {
  const kind = CONTROLNET_OPTIONS.find((o) => o.value === id)?.preprocessor;
  if (!kind || kind === 'canny' || PREPROCESSORS[kind]) return undefined;
  return `Request parameter [selectedControlnetModel] ${id} (${kind}) needs ${DESCRIBED[kind] ?? `the ${kind} preprocessor`}, ` +
    'which this version of Likeness does not have yet: leave it out, or use one of the others';
}

/** The availability hook with the engine's own limits checked first. */
export function withEngineLimits(availability?: AvailabilityCheck): AvailabilityCheck {
  return (inputId, value, scope) => {
    if (inputId === 'selectedControlnetModel') {
      const message = unsupportedControlNet(value);
      if (message) return message;
    }
    return availability?.(inputId, value, scope);
  };
}
