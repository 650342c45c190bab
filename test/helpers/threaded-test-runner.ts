// A runner for ThreadedRunner tests (test/service/threaded-runner.test.ts), loaded inside the thread
// through its `createRunner`. The `mode` parameter picks the behaviour: ok (logs, progress, two
// outputs), fail-pre (TaskInputError in preprocess), fail-run (an output, then a throw), fail-post
// (a throw in postprocess), spin (blocks its thread with ~1 s of synchronous CPU per step), slow
// (many steps with a pause each, stops at the next step after an abort), crash (the thread exits).
import { isMainThread, threadId } from 'node:worker_threads';
import { TaskInputError, type RunContext, type ToolRunner } from '../../src/service/runner.js';

/** 1x1 PNG (the same as helpers/service.ts, which this thread does not load: it pulls in the whole service). */
const TINY_PNG = Buffer.from(
  '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f01f0005000201' +
    '7a1d8d8a0000000049454e44ae426082',
  'hex',
);

export interface TestRunnerOptions {
  /** Milliseconds of synchronous CPU per step in "spin" mode. */
  spinMs: number;
  /** Milliseconds per step in "slow" mode. */
  stepMs: number;
}

interface Params { mode: string; steps: number }

function spin(ms: number): void {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  if (x < 0) throw new Error('unreachable');
}

class ThreadTestRunner implements ToolRunner {
  private readonly seen = new Set<number>();
  /** Params (as JSON) this thread was asked to prefetch. */
  private readonly prefetched = new Set<string>();
  disposed = false;

  constructor(private readonly o: TestRunnerOptions) {}

  async preprocess(ctx: RunContext): Promise<void> {
    const p = ctx.params as Params;
    ctx.log(`preprocess in ${isMainThread ? 'the main thread' : `thread ${threadId}`} for project ${ctx.projectId}`);
    for (const f of Object.values(ctx.inputs)) ctx.log(`input ${f.id}: ${f.bytes.length} bytes ${f.contentType}`);
    if (this.prefetched.delete(JSON.stringify(ctx.params))) ctx.log(`prefetched in thread ${threadId}`);
    if (p.mode === 'fail-pre') throw new TaskInputError('no_face', 'no face detected in inputImageUrl: use a photo with one clearly visible face');
    this.seen.add(ctx.taskId);
  }

  async run(ctx: RunContext): Promise<void> {
    const p = ctx.params as Params;
    if (!this.seen.has(ctx.taskId)) throw new Error('the task was not preprocessed in this thread');
    if (p.mode === 'crash') process.exit(3);
    for (let i = 1; i <= p.steps; i++) {
      if (ctx.signal.aborted) throw new DOMException('stopped at a step boundary', 'AbortError');
      if (p.mode === 'spin') spin(this.o.spinMs);
      await new Promise((r) => setTimeout(r, p.mode === 'slow' ? this.o.stepMs : 1));
      if (p.mode === 'fail-run' && i === 2) {
        await ctx.writeOutput('partial.png', TINY_PNG, 'image/png');
        throw new Error('the UNet ran out of memory at step 2');
      }
      ctx.progress({ stepCurrent: i, stepTotal: p.steps });
    }
  }

  async postprocess(ctx: RunContext): Promise<void> {
    const p = ctx.params as Params;
    this.seen.delete(ctx.taskId);
    if (p.mode === 'fail-post') throw new Error('the PNG encoder failed');
    await ctx.writeOutput('0.png', TINY_PNG, 'image/png');
    await ctx.writeOutput('1.png', TINY_PNG, 'image/png');
    ctx.log('wrote 2 outputs');
  }

  /** Remembers the params for preprocess to report; mode "prefetch-hang" waits for the abort instead. */
  async prefetch(params: unknown, signal: AbortSignal): Promise<void> {
    if ((params as Params).mode === 'prefetch-hang') {
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(new DOMException('prefetch aborted', 'AbortError')), { once: true }));
    }
    this.prefetched.add(JSON.stringify(params));
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

export function createRunner(options: TestRunnerOptions): ToolRunner {
  return new ThreadTestRunner(options);
}
