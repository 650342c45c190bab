// The LoRAs of a task, read in preprocess so that a bad one fails the task before any model runs:
// catalog LoRAs from $LIKENESS_HOME/models/loras, private ones from the task's project's
// models/loras/private/<projectId>/, a URL through the LoRA cache (guarded
// fetcher, size limit, safetensors check, progress as log lines). Each is matched against the
// checkpoint's UNet and text encoders; a LoRA for another base is refused, unmatched keys are logged.
import { EngineError } from '../../engine/errors.js';
import { readLora, type LoraFile, type LoraTargets } from '../../engine/formats/lora.js';
import type { AppliedLora } from '../../engine/lora/apply.js';
import { FetchError } from '../../net/index.js';
import { TaskInputError } from '../../service/runner.js';
import { loraFromUrl, type LoraCache } from '../../service/lora-cache.js';
import type { LoraChoice } from '../instant-id-inputs.js';
import type { ToolDefinition } from '../types.js';
import { resolveLoraFile } from './models.js';

export interface TaskLoras {
  applied: AppliedLora[];
  /** Closes the files and unpins cached downloads. */
  close(): void;
}

function describe(choice: LoraChoice): string {
  if (choice.source === 'catalog') return `selectedLoraModel ${choice.id} (${choice.label})`;
  if (choice.source === 'private') return `selectedLoraModelPrivate ${choice.id}`;
  return 'selectedLoraModelPrivateUrl';
}

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

export interface LoraLoadContext {
  home: string;
  tool: ToolDefinition;
  /** The task's project: a private LoRA is looked up in its folder only (none without one). */
  projectId?: number;
  targets: LoraTargets;
  cache: LoraCache;
  allowPickle: boolean;
  signal: AbortSignal;
  log(line: string): void;
}

export async function loadTaskLoras(choices: readonly LoraChoice[], c: LoraLoadContext): Promise<TaskLoras> {
  const opened: { lora: LoraFile; close(): void }[] = [];
  const applied: AppliedLora[] = [];
  const close = (): void => {
    for (const o of opened.splice(0)) o.close();
  };
  try {
    for (const choice of choices) {
      const label = describe(choice);
      let lora: LoraFile;
      if (choice.source === 'url') {
        let last = 0;
        const onProgress = (bytes: number, total?: number): void => {
          if (Date.now() - last < 1000 && bytes !== total) return;
          last = Date.now();
          c.log(`${label}: downloaded ${mb(bytes)}${total ? ` of ${mb(total)}` : ''}`);
        };
        const got = await loraFromUrl(c.cache, choice.url, c.targets, { onProgress, signal: c.signal, allowPickle: c.allowPickle, label });
        opened.push(got);
        lora = got.lora;
        const how = got.cached.prefetched === 'downloaded' ? `downloaded while the previous task ran (${mb(got.cached.size)})`
          : got.cached.prefetched === 'checked' ? 'checked while the previous task ran: unchanged on the server, used the cached copy'
            : got.cached.fromCache ? 'unchanged on the server, used the cached copy' : `fetched ${mb(got.cached.size)}`;
        c.log(`${label}: ${how} (sha256 ${got.cached.sha256.slice(0, 12)})`);
      } else {
        const path = resolveLoraFile(c.home, c.tool, choice.source, choice.id, c.projectId);
        lora = readLora(path, c.targets, { label: `${label} (${path})`, allowPickle: c.allowPickle });
        opened.push({ lora, close: () => lora.close() });
      }
      const { matched, unmatched } = lora.report;
      c.log(`${label}: ${matched} layers patched at scale ${choice.scale} (UNet and text encoders; never IdentityNet or ControlNets)`);
      if (unmatched.length > 0) {
        c.log(`${label}: ${unmatched.length} keys not applied: ${unmatched.slice(0, 5).join(', ')}${unmatched.length > 5 ? ', …' : ''}`);
      }
      applied.push({ lora, scale: choice.scale });
    }
    return { applied, close };
  } catch (err) {
    close();
    if (c.signal.aborted) throw err;
    if (err instanceof FetchError || err instanceof EngineError) throw new TaskInputError(err.code, err.message);
    throw err;
  }
}
