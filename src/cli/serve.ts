// likeness serve — the embedded service: Fastify on 127.0.0.1:8787, SQLite + local files under
// $LIKENESS_HOME (./data), one in-process worker.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { describeExecutionProvider } from '../engine/onnx/provider-probe.js';
import { applyEpOption } from './args.js';
import { createService } from '../service/app.js';
import { HomeLockedError } from '../service/home-lock.js';
import { guardedNetwork } from '../service/network.js';
import { createAvailability } from '../tools/catalog.js';
import { oldLayoutWarning } from '../tools/private-models.js';
import { instantIdControlnetLora } from '../tools/instant-id-controlnet-lora.js';
import { defaultTools } from '../tools/index.js';
import { InstantIdRunner } from '../tools/instantid-runner.js';
import { instantIdThreadedRunner, type InstantIdThreadOptions } from '../tools/instantid-runner-thread.js';
import { SMOKE_MODEL_DIR } from '../engine/smoke.js';
import { writeSmokeInstantIdSet } from '../engine/smoke-instantid.js';

/**
 * A first start without real models writes the smoke set (seconds), so every path can be tried at
 * once; it draws noise, and the console says so.
 */
async function ensureSomeModel(home: string, defaultModel: string | undefined): Promise<string | undefined> {
  if (defaultModel) return undefined;
  const checkpoints = join(home, 'models', 'checkpoints');
  const hasCheckpoint = existsSync(checkpoints) && readdirSync(checkpoints).some((f) => f !== 'private' && !f.startsWith('.'));
  if (hasCheckpoint || existsSync(join(home, SMOKE_MODEL_DIR))) return undefined;
  await writeSmokeInstantIdSet(home, {});
  return join(home, SMOKE_MODEL_DIR);
}

const HELP = `usage: likeness serve [--host HOST] [--port PORT] [--home DIR] [--ep PROVIDER] [--log]

Starts the service (embedded mode: SQLite, local files, one in-process worker).
Environment: HOST, PORT, LIKENESS_HOME (default ./data), LIKENESS_PUBLIC_URL, LIKENESS_NONCE_WINDOW,
LIKENESS_FETCH_ALLOW, LIKENESS_MAX_IMAGE_BYTES, LIKENESS_MAX_IMAGE_PIXELS, LIKENESS_BODY_LIMIT.
Limits (see docs/architecture.md, "Limits and failure modes"): LIKENESS_DB_BUSY_MS, LIKENESS_HEADERS_TIMEOUT_MS,
LIKENESS_REQUEST_TIMEOUT_MS, LIKENESS_IDLE_TIMEOUT_MS, LIKENESS_MAX_CONNECTIONS_PER_ADDRESS, LIKENESS_MAX_FIELD_BYTES,
LIKENESS_MAX_TASK_RECORD_BYTES, LIKENESS_STOP_GRACE_MS.
Engine: LIKENESS_DEFAULT_MODEL (SDXL checkpoint used when a Run names none; default: the smoke set in
$LIKENESS_HOME/models/smoke when present), LIKENESS_DETECTOR / LIKENESS_RECOGNIZER (face models; default
$LIKENESS_HOME/models/antelopev2/), LIKENESS_THREADS (ONNX Runtime threads per session),
LIKENESS_MAX_LORA_BYTES (largest LoRA download, default 2 GB), LIKENESS_EP (or --ep: cpu, webgpu, cuda,
tensorrt; default cpu — checked at start, reported in the log and GET /healthz), LIKENESS_FACE_EP (face
analysis only; default LIKENESS_EP).
The engine runs in a worker thread, off the server's event loop; LIKENESS_ENGINE_THREAD=0 runs it on the
main thread instead (debugging only: the API stalls while a task loads or runs).`;

function optionalNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number above 0, got "${raw}"`);
  return n;
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      home: { type: 'string' },
      log: { type: 'boolean' },
      ep: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  // The provider must start before anything is served: a GPU that is not there is an error now, not a
  // failed first task (and never a quiet CPU run).
  applyEpOption(values.ep);
  const provider = await describeExecutionProvider();
  const config = loadConfig({
    ...(values.host ? { host: values.host } : {}),
    ...(values.port ? { port: Number(values.port) } : {}),
    ...(values.home ? { home: values.home } : {}),
  });
  const env = process.env;
  const smokeWritten = await ensureSomeModel(config.home, env.LIKENESS_DEFAULT_MODEL);
  const threads = optionalNumber('LIKENESS_THREADS');
  const maxLoraBytes = optionalNumber('LIKENESS_MAX_LORA_BYTES');
  const options: InstantIdThreadOptions = {
    home: config.home,
    fetchAllow: config.fetchAllow,
    ...(env.LIKENESS_DEFAULT_MODEL ? { defaultModel: resolve(env.LIKENESS_DEFAULT_MODEL) } : {}),
    ...(env.LIKENESS_DETECTOR ? { detector: resolve(env.LIKENESS_DETECTOR) } : {}),
    ...(env.LIKENESS_RECOGNIZER ? { recognizer: resolve(env.LIKENESS_RECOGNIZER) } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(maxLoraBytes !== undefined ? { maxLoraBytes } : {}),
  };
  const inThread = env.LIKENESS_ENGINE_THREAD === '0';
  const runner = inThread ? new InstantIdRunner(options) : instantIdThreadedRunner(options);
  const tools = defaultTools({ runner, availability: createAvailability(config.home, instantIdControlnetLora) });
  const health = { executionProvider: provider.provider, adapter: provider.adapter, float16: provider.float16 };
  // Safety net: an unexpected rejection is logged and the server keeps serving (a bug must not take
  // every tenant's requests and the running task down with it).
  process.on('unhandledRejection', (err) => console.error(`likeness: unexpected error (the server keeps running): ${err instanceof Error ? err.stack : String(err)}`));
  let service: Awaited<ReturnType<typeof createService>>;
  try {
    service = await createService(config, { tools, net: guardedNetwork(config), logger: values.log ?? false, health: () => health });
  } catch (err) {
    await runner.dispose();
    if (err instanceof HomeLockedError) {
      console.error(`likeness: ${err.message}`);
      return 1;
    }
    throw err;
  }
  const address = await service.listen();
  console.log(`Likeness is listening on ${address} (data in ${config.home})`);
  console.log(`  execution provider: ${provider.summary}`);
  if (inThread) console.log('  LIKENESS_ENGINE_THREAD=0: the engine runs on the main thread (the API stalls while it works)');
  console.log(`  file links use ${config.publicUrl}; WebSocket at ${config.publicUrl.replace(/^http/, 'ws')}/v1`);
  if (smokeWritten) {
    console.log(`  no SDXL model was installed, so the smoke model set was written to ${smokeWritten}:`);
    console.log('  it has RANDOM weights and draws noise, not pictures. Its face detector is not included: run');
    console.log('  `likeness models smoke --detector FILE` with an SCRFD .onnx, or install antelopev2 (see README, "Models and licences").');
  }
  // Private models moved into per-project folders (F11): files left in the old shared ones are not read.
  const oldPrivate = oldLayoutWarning(config.home);
  if (oldPrivate) console.warn(`  warning: ${oldPrivate}`);
  if (service.firstKey) {
    console.log(`  first start: created project "${service.firstKey.project}" with API key ${service.firstKey.apiKey}.`);
    console.log(`  Its secret is not printed here: read it with \`likeness keys list --show-secrets\` (LIKENESS_HOME=${config.home}).`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      console.log(`\n${signal}: stopping: no new requests; a running task has ${config.stopGraceMs / 1000} s to finish (LIKENESS_STOP_GRACE_MS), ` +
        'then it is failed as "the server stopped; not billed". Queued tasks run at the next start.');
      void service.shutdown(config.stopGraceMs).then(() => runner.dispose()).then(resolve);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}
