// The InstantID runner for a ThreadedRunner thread (src/service/threaded-runner.ts): `likeness serve`
// runs the engine through `instantIdThreadedRunner(options)`, so reading weights, building graphs,
// LoRA merges, face preparation and PNG encoding never hold the server's event loop.
import { ThreadedRunner } from '../service/threaded-runner.js';
import type { ToolRunner } from '../service/runner.js';
import { InstantIdRunner, type InstantIdRunnerOptions } from './instantid-runner.js';

/**
 * The options that can cross to the thread: plain data. `onTimings` (a callback) and `tool` (the
 * definition, which holds functions) stay with the in-thread runner; the thread uses the catalog's tool.
 */
export type InstantIdThreadOptions = Omit<InstantIdRunnerOptions, 'onTimings' | 'tool'>;

/** Called inside the thread by ThreadedRunner. */
export function createRunner(options: InstantIdThreadOptions): ToolRunner {
  return new InstantIdRunner(options);
}

/** The InstantID runner in a worker thread of its own (started on the first task). */
export function instantIdThreadedRunner(options: InstantIdThreadOptions): ThreadedRunner {
  return new ThreadedRunner(import.meta.url, options);
}
