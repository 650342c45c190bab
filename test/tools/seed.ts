// Reads the seed (design/wiro-tool-seed.md, Wiro's published description of the tool) so tests can
// hold the definition to it line by line. Undefined when the shared folder is not beside the checkout.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedDir } from '../helpers/paths.js';

export interface SeedOption {
  value: string;
  label: string;
  description?: string;
  triggerwords?: string[];
  generatesettings?: Record<string, unknown>[];
}

export interface SeedInput {
  name: string;
  label: string;
  help: string;
  type: string;
  default: string;
  options: SeedOption[];
}

export interface Seed {
  inputs: SeedInput[];
  /** The JSON body of the seed's "Run Command" curl example. */
  runExample: Record<string, unknown>;
}

export const seedPath = join(sharedDir, 'design', 'wiro-tool-seed.md');

const unquote = (s: string): string => s.trim().replace(/^"(.*)"$/, '$1');

export function readSeed(): Seed | undefined {
  if (!existsSync(seedPath)) return undefined;
  const text = readFileSync(seedPath, 'utf8');
  const section = text.slice(text.indexOf('## Tool Inputs:'), text.indexOf('## Integration Header Prepare'));
  const inputs: SeedInput[] = [];
  let option: SeedOption | undefined;
  for (const line of section.split('\n')) {
    const input = inputs[inputs.length - 1];
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^- name: (\S+)$/))) {
      inputs.push({ name: m[1]!, label: '', help: '', type: '', default: '', options: [] });
      option = undefined;
    } else if (!input) {
      continue;
    } else if ((m = line.match(/^ {6}- value: "(.*)"$/))) {
      option = { value: m[1]!, label: '' };
      input.options.push(option);
    } else if (option && (m = line.match(/^ {8}(label|description|triggerwords|generatesettings): (.*)$/))) {
      const key = m[1]!;
      const value = m[2]!;
      if (key === 'label') option.label = value;
      else if (key === 'description') option.description = value;
      else if (key === 'triggerwords') option.triggerwords = JSON.parse(value) as string[];
      else option.generatesettings = JSON.parse(value) as Record<string, unknown>[];
    } else if ((m = line.match(/^ {4}type: (\S+)(?: default:(.*))?$/))) {
      input.type = m[1]!;
      if (m[2] !== undefined) input.default = unquote(m[2]);
    } else if ((m = line.match(/^ {4}default: (.*?)(?: options:)?$/))) {
      input.default = unquote(m[1]!);
    } else if ((m = line.match(/^ {4}(label|help): (.*)$/))) {
      input[m[1] as 'label' | 'help'] = m[2]!.trim();
    }
  }
  const example = text.match(/Run\/wiro\/instant-id-controlnet-lora".*?-d '(\{.*?\})'/);
  if (!example) throw new Error('the seed has no Run example');
  return { inputs, runExample: JSON.parse(example[1]!) as Record<string, unknown> };
}
