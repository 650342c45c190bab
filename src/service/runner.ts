// The tool-runner interface: what the worker hands a tool (the engine, for instant-id-controlnet-lora).
// A runner knows nothing of HTTP or the store; it reports phases through the context.

/** An input file the worker fetched (URL) or received (upload) during preprocess. */
export interface InputFile {
  /** The input's id in the tool definition, e.g. "inputImage". */
  id: string;
  url: string;
  bytes: Uint8Array;
  contentType: string;
  /** Absolute path of the stored copy. */
  path: string;
}

export interface StepProgress {
  stepCurrent: number;
  stepTotal: number;
  /** Label for the progress message ("Generate" by default). */
  task?: string;
}

export interface RunContext {
  readonly taskId: number;
  readonly uuid: string;
  /** The task's project (its store id): a Run's private models are that project's, and only its. */
  readonly projectId: number;
  /** The validated request with defaults applied (the tool's own RunParams type). */
  readonly params: unknown;
  readonly inputs: Readonly<Record<string, InputFile>>;
  /** Fires on Kill: stop at the next step boundary and throw (any error after abort ends as task_cancel). */
  readonly signal: AbortSignal;
  /** A line for debugoutput (and a task_output frame with the line as message). */
  log(line: string): void;
  progress(p: StepProgress): void;
  /** Stages an output; it is published only if the run succeeds. */
  writeOutput(name: string, bytes: Uint8Array, contentType: string): Promise<void>;
}

/** Thrown for problems with the user's input (no face, unreadable image): the task fails with this message. */
export class TaskInputError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'TaskInputError';
  }
}

export interface ToolRunner {
  /**
   * Runs in task_preprocess_*: checks inputs before any model runs (face detection, for example).
   * A throw here fails the task (task_postprocess_end, pexit "1", the message in debugerror).
   */
  preprocess?(ctx: RunContext): Promise<void>;
  /** Runs in task_start … task_output: a throw ends the task with pexit 1 and no outputs. */
  run(ctx: RunContext): Promise<void>;
  /**
   * Runs in task_postprocess_start, after the model (encoding outputs, for example); writeOutput
   * still stages files. A throw ends the task with pexit 1 and no outputs.
   */
  postprocess?(ctx: RunContext): Promise<void>;
  /**
   * Optional: called for a task still queued, while another task runs, to warm what the runner will
   * download in preprocess (the InstantID runner: the LoRA URL into its LoRA cache). It must not depend
   * on being called: preprocess still does the work when it was not, failed or was aborted (`signal`).
   * Errors are ignored; the runner's preprocess reports any problem as usual.
   */
  prefetch?(params: unknown, signal: AbortSignal): Promise<void>;
}

/** The runner a tool gets until its engine exists: fails every task clearly, never a placeholder image. */
export class UnavailableRunner implements ToolRunner {
  constructor(private readonly reason: string) {}

  async preprocess(): Promise<void> {
    throw new TaskInputError('engine_unavailable', this.reason);
  }

  async run(): Promise<void> {
    throw new Error(this.reason);
  }
}
