// likeness golden <case-dir>... — evaluate golden case folders, print each output's error against its
// tolerance and a verdict per case; exit 1 if any case fails or errors. NOT IMPLEMENTED is reported, not passed.
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { evaluateCase, formatResult } from '../engine/golden/run.js';
import { applyEpOption } from './args.js';
import { describeExecutionProvider } from '../engine/onnx/provider-probe.js';

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { verbose: { type: 'boolean', short: 'v' }, ep: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length === 0) {
    console.log('usage: likeness golden [--verbose] [--ep cpu|webgpu|cuda|tensorrt] <case-dir>...\n\n' +
      'Evaluates each golden case folder (case.json + io.safetensors) with the same tolerances on any provider.\n' +
      '--ep (or LIKENESS_EP) runs every session on that execution provider; default cpu.');
    return values.help ? 0 : 2;
  }
  applyEpOption(values.ep);
  const provider = await describeExecutionProvider();
  console.log(`execution provider: ${provider.summary}`);
  const counts: Record<string, number> = {};
  let failed = false;
  for (const dir of positionals) {
    const st = statSync(dir, { throwIfNoEntry: false });
    if (!st) {
      console.log(`${'ERROR'.padEnd(15)} ${dir} (no such file or folder)`);
      failed = true;
      continue;
    }
    if (!st.isDirectory()) {
      console.log(`${'SKIP'.padEnd(15)} ${dir} (not a case folder)`);
      continue;
    }
    const r = await evaluateCase(dir);
    counts[r.status] = (counts[r.status] ?? 0) + 1;
    if (r.status === 'FAIL' || r.status === 'ERROR') failed = true;
    console.log(formatResult(r, values.verbose));
  }
  console.log(`\n${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ')}`);
  return failed ? 1 : 0;
}
