// Small helpers shared by CLI verbs.
import { parseExecutionProvider, setDefaultExecutionProvider } from '../engine/onnx/provider.js';

/** The --ep help line every engine verb shows. */
export const EP_HELP = '--ep NAME             execution provider: cpu (default), webgpu, cuda or tensorrt (or LIKENESS_EP; see README, "GPU")';

/** Applies --ep (over LIKENESS_EP) for the whole process, before any session or engine thread starts. */
export function applyEpOption(value: string | undefined): void {
  if (value !== undefined) setDefaultExecutionProvider(parseExecutionProvider(value, '--ep'));
}
export function fail(message: string): number {
  console.error(`likeness: ${message}`);
  return 2;
}
