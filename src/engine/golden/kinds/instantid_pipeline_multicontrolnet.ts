// Golden kind `instantid_pipeline_multicontrolnet`: the `_full` pipeline (IdentityNet + extra
// ControlNets fed the text context, LPW prompts, per-net scales), run without and with the
// face-region control mask (`maskon.*`). Same evaluator as `instantid_pipeline`: every input,
// component and output is read from the case (see instantid_pipeline.ts).
export { evaluate } from './instantid_pipeline.js';
