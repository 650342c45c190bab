// Small helpers shared by CLI verbs.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseExecutionProvider, setDefaultExecutionProvider } from '../engine/onnx/provider.js';

/** The --ep help line every engine verb shows. */
export const EP_HELP = '--ep NAME             execution provider: cpu (default), webgpu, cuda or tensorrt (or LIKENESS_EP; see README, "GPU")';

/** Applies --ep (over LIKENESS_EP) for the whole process, before any session or engine thread starts. */
export function applyEpOption(value: string | undefined): void {
  if (value !== undefined) setDefaultExecutionProvider(parseExecutionProvider(value, '--ep'));
}
/** A file's size for a listing: 1.50 GiB, 12.3 MiB, 0.5 KiB. */
export function fileSize(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

export function fail(message: string): number {
  console.error(`likeness: ${message}`);
  return 2;
}

type VerbOptions = NonNullable<ParseArgsConfig['options']>;
type Verb<T extends VerbOptions> = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: T & { help: { type: 'boolean'; short: 'h' } } }>>;

/**
 * A verb's arguments, parsed the one way every `likeness` verb does it: `--help`/`-h` prints `help` (exit 0);
 * a parse error, or no action word, prints the message and `help` (exit 2). Returns the exit code then.
 */
export function parseVerb<T extends VerbOptions>(args: string[], options: T, help: string): (Verb<T> & { action: string }) | number {
  let parsed: Verb<T>;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { ...options, help: { type: 'boolean', short: 'h' } as const } });
  } catch (err) {
    return fail(`${(err as Error).message}\n\n${help}`);
  }
  const action = parsed.positionals[0];
  if ((parsed.values as { help?: boolean }).help || action === undefined) {
    console.log(help);
    return (parsed.values as { help?: boolean }).help ? 0 : 2;
  }
  return { ...parsed, action };
}
