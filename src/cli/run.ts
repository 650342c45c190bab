// `likeness run`: queue a task on a Likeness (or Wiro) server and, with --wait, follow it to the end and
// save its outputs. Results go to stdout; progress goes to stderr, so `--json` output stays parseable.
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { DownloadedFile, RunFile, WiroTask } from '../client/index.js';
import { ProgressDisplay, clientFromEnv, describeTask, errorText, processIO, type CliIO, succeeded } from '../client/terminal.js';

const DEFAULT_TOOL = 'wiro/instant-id-controlnet-lora';

const USAGE = `usage: likeness run [--tool OWNER/SLUG] (--image FILE | --image-url URL) [--prompt TEXT]
                    [--pose FILE | --pose-url URL] [--param KEY=VALUE ...] [--wait] [--out DIR] [--json]

Queues a task (default tool ${DEFAULT_TOOL}).
  --image FILE        the face photo, uploaded with the request (multipart)
  --image-url URL     or a URL the server fetches (inputImageUrl)
  --pose FILE         a photo whose pose (face keypoints) the image takes, uploaded (inputPoseImage)
  --pose-url URL      or a URL the server fetches (inputPoseImageUrl)
  --prompt TEXT       the prompt
  --param KEY=VALUE   any other input, e.g. --param steps=30 --param selectedControlnetModel=458
                      (repeat a key to send a list)
  --wait              follow the task to its end, showing progress
  --out DIR           save the outputs in DIR (implies --wait)
  --json              print Run's answer (or, with --wait, {task, files}) as JSON

Server and credentials: LIKENESS_URL (default http://127.0.0.1:8787), LIKENESS_API_KEY and
LIKENESS_API_SECRET (or WIRO_API_KEY and WIRO_API_SECRET).
Exit status: 0 queued (or, with --wait, succeeded); 1 failed, cancelled or refused; 2 usage; 130 interrupted.`;

interface RunRequest {
  owner: string;
  tool: string;
  params: Record<string, unknown>;
  files?: Record<string, RunFile>;
  wait: boolean;
  out?: string;
  json: boolean;
}

/** The request the arguments describe, or a usage error. */
async function parse(args: string[]): Promise<RunRequest | { usage: string } | 'help'> {
  let values;
  try {
    values = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        tool: { type: 'string', default: DEFAULT_TOOL },
        image: { type: 'string' },
        'image-url': { type: 'string' },
        pose: { type: 'string' },
        'pose-url': { type: 'string' },
        prompt: { type: 'string' },
        param: { type: 'string', multiple: true },
        wait: { type: 'boolean', default: false },
        out: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    return { usage: (err as Error).message };
  }
  if (values.help) return 'help';
  const slug = /^([^/\s]+)\/([^/\s]+)$/.exec(values.tool ?? DEFAULT_TOOL);
  if (!slug) return { usage: `--tool must look like OWNER/SLUG, got "${values.tool}"` };
  if (values.image && values['image-url']) return { usage: 'give --image or --image-url, not both' };
  if (values.pose && values['pose-url']) return { usage: 'give --pose or --pose-url, not both' };

  const params: Record<string, unknown> = {};
  for (const kv of values.param ?? []) {
    const at = kv.indexOf('=');
    if (at <= 0) return { usage: `--param takes KEY=VALUE, got "${kv}"` };
    const key = kv.slice(0, at);
    const value = kv.slice(at + 1);
    const prev = params[key];
    params[key] = prev === undefined ? value : Array.isArray(prev) ? [...(prev as string[]), value] : [prev, value];
  }
  if (values.prompt !== undefined) params.prompt = values.prompt;
  if (values['image-url'] !== undefined) params.inputImageUrl = values['image-url'];
  if (values['pose-url'] !== undefined) params.inputPoseImageUrl = values['pose-url'];

  let files: Record<string, RunFile> | undefined;
  for (const [flag, input] of [['image', 'inputImage'], ['pose', 'inputPoseImage']] as const) {
    const path = values[flag];
    if (path === undefined) continue;
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return { usage: `--${flag} ${path}: no such file` };
    files = { ...files, [input]: { path } };
  }
  return { owner: slug[1]!, tool: slug[2]!, params, files, wait: values.wait || values.out !== undefined, out: values.out, json: values.json };
}

export async function run(args: string[], io: CliIO = processIO()): Promise<number> {
  const req = await parse(args);
  if (req === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if ('usage' in req) {
    io.stderr.write(`likeness run: ${req.usage}\n\n${USAGE}\n`);
    return 2;
  }
  const client = clientFromEnv(io.env);
  if ('error' in client) {
    io.stderr.write(`likeness run: ${client.error}\n`);
    return 2;
  }

  let queued;
  try {
    queued = await client.run(req.owner, req.tool, req.params, req.files);
  } catch (err) {
    io.stderr.write(`likeness run: ${errorText(err, client.baseUrl)}\n`);
    return 1;
  }
  if (!req.wait) {
    if (req.json) io.stdout.write(`${JSON.stringify(queued)}\n`);
    else io.stdout.write(`task ${queued.taskid} queued (token ${queued.socketaccesstoken})\nfollow it: likeness task detail ${queued.taskid}\n`);
    return 0;
  }

  const display = new ProgressDisplay(io.stderr, `task ${queued.taskid}`);
  const interrupted = new AbortController();
  const onSigint = () => interrupted.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  let task: WiroTask;
  try {
    task = await client.wait(queued, { onEvent: (f) => display.event(f), onProgress: (p) => display.progress(p), signal: interrupted.signal });
  } catch (err) {
    display.done();
    if (interrupted.signal.aborted) {
      io.stderr.write(`likeness run: stopped waiting; task ${queued.taskid} keeps running (stop it with: likeness task kill ${queued.taskid})\n`);
      return 130;
    }
    io.stderr.write(`likeness run: ${errorText(err, client.baseUrl)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
  display.done();

  let saved: DownloadedFile[] = [];
  if (req.out !== undefined && task.outputs.length > 0) {
    try {
      saved = await client.download(task, req.out);
    } catch (err) {
      io.stderr.write(`likeness run: task ${task.id} ended but its outputs could not be saved: ${errorText(err, client.baseUrl)}\n`);
      return 1;
    }
  }
  if (req.json) {
    const files = saved.map((f) => ({ name: f.output.name, path: f.path, bytes: f.bytes }));
    io.stdout.write(`${JSON.stringify({ task, files }, null, 2)}\n`);
  } else {
    io.stdout.write(`${describeTask(task).join('\n')}\n`);
    for (const f of saved) io.stdout.write(`saved ${f.path}\n`);
  }
  return succeeded(task) ? 0 : 1;
}
