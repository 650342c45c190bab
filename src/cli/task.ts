// `likeness task detail|kill|cancel ID_OR_TOKEN [--json]`: a number is a task id, anything else the
// task's socket access token.
import { parseArgs } from 'node:util';
import { taskRef, type WiroTask } from '../client/index.js';
import { clientFromEnv, describeTask, errorText, processIO, type CliIO } from '../client/terminal.js';

const USAGE = `usage: likeness task detail|kill|cancel ID_OR_TOKEN [--json]

  detail   the task's status, timings, error and outputs
  kill     stop a running task (it ends as task_cancel)
  cancel   remove a task that is still queued
  --json   print the task object as Task/Detail answers it

ID_OR_TOKEN: the taskid Run answered, or its socketaccesstoken.
Server and credentials: LIKENESS_URL (default http://127.0.0.1:8787), LIKENESS_API_KEY and
LIKENESS_API_SECRET (or WIRO_API_KEY and WIRO_API_SECRET).`;

const ACTIONS = ['detail', 'kill', 'cancel'] as const;
type Action = (typeof ACTIONS)[number];

export async function run(args: string[], io: CliIO = processIO()): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
    });
  } catch (err) {
    io.stderr.write(`likeness task: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (parsed.values.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [action, id, ...extra] = parsed.positionals;
  if (!ACTIONS.includes(action as Action) || !id || extra.length > 0) {
    io.stderr.write(`likeness task: ${!action ? 'say what to do' : !ACTIONS.includes(action as Action) ? `unknown action "${action}"` : !id ? 'which task? give its id or token' : `unexpected "${extra.join(' ')}"`}\n\n${USAGE}\n`);
    return 2;
  }
  const client = clientFromEnv(io.env);
  if ('error' in client) {
    io.stderr.write(`likeness task: ${client.error}\n`);
    return 2;
  }

  let task: WiroTask;
  try {
    const ref = taskRef(id);
    task = action === 'kill' ? await client.kill(ref) : action === 'cancel' ? await client.cancel(ref) : await client.detail(ref);
  } catch (err) {
    io.stderr.write(`likeness task ${action}: ${errorText(err, client.baseUrl)}\n`);
    return 1;
  }
  io.stdout.write(parsed.values.json ? `${JSON.stringify(task, null, 2)}\n` : `${describeTask(task).join('\n')}\n`);
  return 0;
}
