// `likeness run` and `likeness task`, run in process against a real service with their output captured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { run as runVerb } from '../../src/cli/run.js';
import { run as taskVerb } from '../../src/cli/task.js';
import type { CliIO } from '../../src/client/terminal.js';
import { startTestService, TINY_PNG, type TestService } from '../helpers/service.js';
import { StandInEngine, standInTool } from '../compat/clients.js';

const FACE = 'https://images.example/face.png';
let s: TestService;
let dir: string;

before(async () => {
  s = await startTestService();
  s.net.images.set(FACE, TINY_PNG);
  dir = mkdtempSync(join(tmpdir(), 'likeness-cli-'));
});
after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(verb: (args: string[], io: CliIO) => Promise<number>, args: string[], env: NodeJS.ProcessEnv = credentials()): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env };
  const code = await verb(args, io);
  return { code, stdout, stderr };
}

function credentials(): NodeJS.ProcessEnv {
  return { LIKENESS_URL: s.url, LIKENESS_API_KEY: s.apiKey, LIKENESS_API_SECRET: s.apiSecret };
}

test('likeness run --wait --out follows the task, shows each step and saves the outputs', async () => {
  const out = join(dir, 'run-out');
  const r = await cli(runVerb, ['--tool', 'test/scripted', '--image-url', FACE, '--param', 'steps=2', '--wait', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /task \d+: succeeded \[task_postprocess_end\]/);
  assert.match(r.stdout, /saved .*0\.png/);
  assert.match(r.stderr, /Generate step 1\/2/);
  assert.match(r.stderr, /Generate step 2\/2/);
  assert.ok(r.stderr.split('\n').length > 3, 'plain lines, one per change, when not on a TTY');
  assert.doesNotMatch(r.stderr, /\r/);
  assert.deepEqual(readdirSync(out).sort(), ['0.png', '1.png']);
  assert.deepEqual(readFileSync(join(out, '0.png')), TINY_PNG);
});

test('likeness run --image uploads the file; --json prints {task, files}', async () => {
  const face = join(dir, 'face.png');
  writeFileSync(face, TINY_PNG);
  const out = join(dir, 'upload-out');
  const r = await cli(runVerb, ['--tool', 'test/scripted', '--image', face, '--param', 'steps=1', '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const { task, files } = JSON.parse(r.stdout) as { task: { status: string; parameters: { inputImage: string } }; files: { path: string }[] };
  assert.equal(task.status, 'task_postprocess_end');
  assert.match(task.parameters.inputImage, /\/v1\/File\//);
  assert.equal(files.length, 2);
});

test('likeness run --pose uploads the pose photo as inputPoseImage, next to --image', async () => {
  const real = await startTestService({ tools: [standInTool(new StandInEngine())] });
  try {
    const face = join(dir, 'me.png');
    const pose = join(dir, 'pose.png');
    writeFileSync(face, TINY_PNG);
    writeFileSync(pose, TINY_PNG);
    const env = { LIKENESS_URL: real.url, LIKENESS_API_KEY: real.apiKey, LIKENESS_API_SECRET: real.apiSecret };
    const r = await cli(runVerb, ['--image', face, '--pose', pose, '--prompt', 'x', '--param', 'steps=1', '--wait', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const { task } = JSON.parse(r.stdout) as { task: { parameters: Record<string, string> } };
    assert.match(task.parameters.inputImage!, /\/v1\/File\/.*inputImage-/);
    assert.match(task.parameters.inputPoseImage!, /\/v1\/File\/.*inputPoseImage-/);
    assert.equal((await cli(runVerb, ['--image', face, '--pose', join(dir, 'nope.png')], env)).code, 2);
  } finally {
    await real.close();
  }
});

test('likeness run without --wait prints the queued task; a failed task exits 1', async () => {
  const queued = await cli(runVerb, ['--tool', 'test/scripted', '--image-url', FACE, '--json']);
  assert.equal(queued.code, 0, queued.stderr);
  const { taskid } = JSON.parse(queued.stdout) as { taskid: string };
  assert.match(taskid, /^\d+$/);

  const failed = await cli(runVerb, ['--tool', 'test/scripted', '--image-url', FACE, '--param', 'mode=fail-run', '--param', 'steps=3', '--wait']);
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /failed \(exit [1-9]/);
  assert.match(failed.stdout, /out of memory at step 2/);
});

test('likeness run reports a refused request with the server\'s message', async () => {
  const r = await cli(runVerb, ['--tool', 'test/scripted', '--image-url', FACE, '--param', 'steps=500']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /must be between 1 and 100/);
});

test('likeness task detail takes an id or a token; kill and cancel of an ended task say why not', async () => {
  const queued = await cli(runVerb, ['--tool', 'test/scripted', '--image-url', FACE, '--param', 'steps=1', '--wait', '--json']);
  const { task } = JSON.parse(queued.stdout) as { task: { id: string; socketaccesstoken: string } };

  const byId = await cli(taskVerb, ['detail', task.id, '--json']);
  assert.equal(byId.code, 0, byId.stderr);
  assert.equal((JSON.parse(byId.stdout) as { id: string }).id, task.id);
  const byToken = await cli(taskVerb, ['detail', task.socketaccesstoken]);
  assert.equal(byToken.code, 0, byToken.stderr);
  assert.match(byToken.stdout, new RegExp(`task ${task.id}: succeeded`));
  assert.match(byToken.stdout, /output {3}0\.png \(image\/png/);

  const kill = await cli(taskVerb, ['kill', task.id]);
  assert.equal(kill.code, 1);
  assert.match(kill.stderr, /could not be killed/);
  const cancel = await cli(taskVerb, ['cancel', task.socketaccesstoken]);
  assert.equal(cancel.code, 1);
  assert.match(cancel.stderr, /not in a cancellable state/);
});

test('likeness task kill ends a task as task_cancel', async () => {
  const queued = await cli(runVerb, ['--tool', 'test/scripted', '--image-url', FACE, '--param', 'mode=slow', '--param', 'steps=50', '--json']);
  const { taskid } = JSON.parse(queued.stdout) as { taskid: string };
  const kill = await cli(taskVerb, ['kill', taskid, '--json']);
  assert.equal(kill.code, 0, kill.stderr);
  const task = JSON.parse(kill.stdout) as { status: string; outputs: unknown[] };
  assert.equal(task.status, 'task_cancel');
  assert.deepEqual(task.outputs, []);
});

test('missing credentials are a clear usage error', async () => {
  for (const verb of [runVerb, taskVerb]) {
    const r = await cli(verb, verb === runVerb ? ['--image-url', FACE] : ['detail', '1'], { LIKENESS_URL: s.url });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /set LIKENESS_API_KEY and LIKENESS_API_SECRET; create them with `likeness keys create --json`/);
  }
});

test('WIRO_API_KEY and WIRO_API_SECRET are accepted too; a wrong secret explains itself', async () => {
  const ok = await cli(taskVerb, ['detail', '1', '--json'], { LIKENESS_URL: s.url, WIRO_API_KEY: s.apiKey, WIRO_API_SECRET: s.apiSecret });
  assert.equal(ok.code, 0, ok.stderr);
  const bad = await cli(taskVerb, ['detail', '1'], { LIKENESS_URL: s.url, LIKENESS_API_KEY: s.apiKey, LIKENESS_API_SECRET: 'wrong' });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /HTTP 401/);
  assert.match(bad.stderr, /likeness keys create --json/);
});

test('an unreachable server is named in the error', async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await new Promise((r) => server.close(r)); // a port nobody listens on now
  const r = await cli(taskVerb, ['detail', '1'], { LIKENESS_URL: url, LIKENESS_API_KEY: 'k', LIKENESS_API_SECRET: 's' });
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`cannot reach ${url} (ECONNREFUSED)`), r.stderr);
});

test('bad arguments are usage errors (exit 2) with the usage text', async () => {
  for (const args of [['--param', 'novalue'], ['--image', 'a.png', '--image-url', FACE], ['--tool', 'noslash'], ['--bogus'], ['--image', join(dir, 'missing.png')]]) {
    const r = await cli(runVerb, args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /usage: likeness run/);
  }
  for (const args of [[], ['explode', '1'], ['detail'], ['detail', '1', '2']]) {
    const r = await cli(taskVerb, args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /usage: likeness task/);
  }
});
