// The `likeness` command line: one verb per file under cli/, loaded on demand so that
// `likeness task detail` does not pay for the engine and `likeness serve` does not pay for the client.
type Verb = { summary: string; load: () => Promise<{ run(args: string[]): Promise<number> }> };

const verbs: Record<string, Verb> = {
  serve: { summary: 'run the service (embedded: SQLite, local files, in-process worker)', load: () => import('./cli/serve.js') },
  keys: { summary: 'create, list or revoke API keys', load: () => import('./cli/keys.js') },
  golden: { summary: 'check the engine against golden case folders', load: () => import('./cli/golden.js') },
  run: { summary: 'queue a task (--wait to follow it and save its outputs)', load: () => import('./cli/run.js') },
  task: { summary: 'show, kill or cancel a task: task detail|kill|cancel ID_OR_TOKEN', load: () => import('./cli/task.js') },
  faces: { summary: 'detect faces in a photo (box, score, 5 keypoints)', load: () => import('./cli/faces.js') },
  generate: { summary: 'text-to-image with an SDXL model (diffusers folder or single-file checkpoint)', load: () => import('./cli/generate.js') },
  preprocess: { summary: 'write the control map a ControlNet gets: preprocess openpose|depth|canny IMAGE -o OUT.png', load: () => import('./cli/preprocess.js') },
  cache: { summary: 'list or trim the compile cache: cache ls | cache prune [--max-bytes N]', load: () => import('./cli/cache.js') },
  models: { summary: 'models smoke (the tiny random-weight set) | models private add|ls (a project\'s own models)', load: () => import('./cli/models.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(verbs).map((v) => v.length));
  return [
    'usage: likeness <command> [options]',
    '',
    ...Object.entries(verbs).map(([name, v]) => `  ${name.padEnd(width)}  ${v.summary}`),
    '',
    'Run `likeness <command> --help` for a command\'s options.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (!verb || verb === '--help' || verb === '-h' || verb === 'help') {
    console.log(usage());
    return verb ? 0 : 2;
  }
  const entry = verbs[verb];
  if (!entry) {
    console.error(`likeness: unknown command "${verb}"\n\n${usage()}`);
    return 2;
  }
  const mod = await entry.load();
  try {
    return await mod.run(rest);
  } catch (err) {
    // An engine error is a message for the user (a provider that cannot start, a bad option), not a crash.
    if (err instanceof Error && err.name === 'EngineError') {
      console.error(`likeness: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

// Run directly (tsx src/cli.ts ...): the compiled bin/likeness.js imports main() instead.
if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
