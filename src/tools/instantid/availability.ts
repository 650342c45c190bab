// What this version of the engine can run, checked at validation (Run answers result:false, nothing is
// queued): the openpose (458) and depth (455) ControlNets need preprocessors that do not exist yet.
import type { AvailabilityCheck } from '../types.js';

/** ControlNets whose preprocessor is still missing, by catalog id. */
export const MISSING_PREPROCESSORS: Readonly<Record<string, { kind: string; what: string }>> = {
  '458': { kind: 'openpose', what: 'the openpose preprocessor (body keypoints from the pose image)' },
  '455': { kind: 'depth', what: 'the depth preprocessor (a depth map from the pose image)' },
};

/** The message for a ControlNet that cannot run yet, or undefined. */
export function unsupportedControlNet(id: string): string | undefined {
  const missing = MISSING_PREPROCESSORS[id];
  if (!missing) return undefined;
  return `Request parameter [selectedControlnetModel] ${id} (${missing.kind}) needs ${missing.what}, ` +
    'which this version of Likeness does not have yet: leave it out, or use 454 (canny)';
}

/** The availability hook with the engine's own limits checked first. */
export function withEngineLimits(availability?: AvailabilityCheck): AvailabilityCheck {
  return (inputId, value) => {
    if (inputId === 'selectedControlnetModel') {
      const message = unsupportedControlNet(value);
      if (message) return message;
    }
    return availability?.(inputId, value);
  };
}
