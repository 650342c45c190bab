// likeness preprocess KIND IMAGE -o OUT.png — write the control map a ControlNet would get, so a user
// can look at it. The kinds are entries: preprocess-maps.ts (depth, canny) and preprocess-openpose.ts.
import { PREPROCESS_MAPS, type PreprocessEntry } from './preprocess-maps.js';
import { fail } from './args.js';
import { OPENPOSE_ENTRY } from './preprocess-openpose.js';

const ENTRIES: readonly PreprocessEntry[] = [OPENPOSE_ENTRY, ...PREPROCESS_MAPS];

function help(): string {
  const width = Math.max(...ENTRIES.map((e) => e.name.length));
  return ['usage: likeness preprocess KIND IMAGE -o OUT.png [options]', '', ...ENTRIES.map((e) => `  ${e.name.padEnd(width)}  ${e.summary}`),
    '', 'Run `likeness preprocess KIND --help` for its options.'].join('\n');
}

export async function run(args: string[]): Promise<number> {
  const [kind, ...rest] = args;
  if (!kind || kind === '--help' || kind === '-h') {
    console.log(help());
    return kind ? 0 : 2;
  }
  const entry = ENTRIES.find((e) => e.name === kind);
  if (!entry) return fail(`preprocess: unknown kind "${kind}" (${ENTRIES.map((e) => e.name).join(', ')})\n\n${help()}`);
  return entry.run(rest);
}
