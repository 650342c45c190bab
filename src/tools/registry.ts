/**
 * The tools this server offers. Today one: wiro/instant-id-controlnet-lora.
 *
 * Wiro's sibling tools wiro/instant-id (no ControlNet, no LoRA), wiro/instant-id-lora and
 * wiro/instant-id-controlnet run the same pipeline with fewer inputs; each could be added here as
 * the same definition with the LoRA and/or ControlNet inputs left out, served by the same engine
 * with those features switched off. Not built until someone needs them.
 */
import { instantIdControlnetLora } from './instant-id-controlnet-lora.js';
import type { ToolDefinition } from './types.js';

export const TOOLS: readonly ToolDefinition[] = [instantIdControlnetLora];

/**
 * The tool a Run or Tool/Detail names. Slugs compare case-insensitively (Wiro answers both its
 * display slug and its clean slug); undefined when this server has no such tool.
 */
export function findTool(owner: string, slug: string): ToolDefinition | undefined {
  const o = owner.toLowerCase();
  const s = slug.toLowerCase();
  return TOOLS.find((t) => t.owner.toLowerCase() === o && t.slug.toLowerCase() === s);
}
