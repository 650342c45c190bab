/**
 * Tool/Detail and Tool/List entries, built from the same definition that validates Runs, in the
 * shapes Wiro documents (models.md, model-parameters.md; Wiro-MCP's ToolListItem/ToolParameterItem):
 * ids, slugs and counters as strings, parameter groups of items with `default` as a string and
 * `min`/`max`/`step` as numbers. Where Wiro's docs show one field two ways (dynamicprice: an array in
 * Detail, a JSON string in List; taskstat.runcount: a string in Detail, a number in List) each
 * endpoint gets the form its own example shows.
 */
import { zeroMeansDefaultNote } from './validate.js';
import type { GenerateSetting, InputSpec, OptionSpec, ToolDefinition } from './types.js';

export interface ToolParameterOption {
  value: string;
  label: string;
  description: string;
  triggerwords: string[];
  generatesettings: GenerateSetting[];
}

export interface ToolParameterItem {
  id: string;
  type: string;
  label: string;
  description: string;
  default: string;
  required: boolean;
  advanced: boolean;
  placeholder?: string;
  note?: string;
  options?: ToolParameterOption[];
  min?: number;
  max?: number;
  step?: number;
  /** Present (true) only on our additions to Wiro's tool. */
  extension?: true;
}

export interface ToolParameterGroup {
  title: string;
  subtitle: string;
  items: ToolParameterItem[];
}

/** Counters kept by the task store; all zero for a tool that never ran. */
export interface ToolStats {
  runcount: number;
  successcount: number;
  errorcount: number;
  /** Unix seconds of the last run, 0 if none. */
  lastruntime: number;
}

interface ToolCommon {
  id: string;
  title: string;
  slugowner: string;
  slugproject: string;
  cleanslugowner: string;
  cleanslugproject: string;
  description: string;
  seodescription: string;
  image: string;
  /** The seed's name for `image`. */
  cover: string;
  categories: string[];
  tags: string[];
  cps: string;
}

export interface ToolDetail extends ToolCommon {
  seotitle: string;
  readme: string;
  parameters: ToolParameterGroup[];
  inspire: Record<string, string>[];
  samples: string[];
  dynamicprice: unknown[];
  taskstat: { runcount: string; successcount: string; errorcount: string; lastruntime: string };
}

export interface ToolListItem extends ToolCommon {
  dynamicprice: string;
  taskstat: { runcount: number; successcount: string; errorcount: string; lastruntime: string };
}

const NO_STATS: ToolStats = { runcount: 0, successcount: 0, errorcount: 0, lastruntime: 0 };

/** "5.0" for a float default of 5, as the seed writes it; integers plain. */
function formatDefault(input: InputSpec): string {
  switch (input.type) {
    case 'fileinput':
      return '';
    case 'multiselect':
      return input.default.join(',');
    case 'number':
      return input.default === null ? '' : String(input.default);
    case 'float':
      if (input.default === null) return '';
      return Number.isInteger(input.default) ? input.default.toFixed(1) : String(input.default);
    default:
      return input.default;
  }
}

function option(o: OptionSpec): ToolParameterOption {
  return {
    value: o.value,
    label: o.label,
    description: o.description ?? '',
    triggerwords: [...(o.triggerwords ?? [])],
    generatesettings: (o.generatesettings ?? []).map((s) => ({ ...s, options: [...s.options] })),
  };
}

export function parameterItem(input: InputSpec): ToolParameterItem {
  const item: ToolParameterItem = {
    id: input.id,
    type: input.type,
    label: input.label,
    description: input.help,
    default: formatDefault(input),
    required: input.required,
    advanced: input.advanced ?? false,
  };
  if (input.placeholder !== undefined) item.placeholder = input.placeholder;
  if (input.note !== undefined) item.note = input.note;
  if (input.type === 'select' || input.type === 'multiselect') item.options = input.options.map(option);
  if (input.type === 'number' || input.type === 'float') {
    const zero = zeroMeansDefaultNote(input);
    if (zero) item.description = item.description ? `${item.description} ${zero}` : zero;
    item.min = input.min;
    item.max = input.max;
    item.step = input.step;
  }
  if (input.extension) item.extension = true;
  return item;
}

/** Wiro's inputs first, as Wiro shows them; ours in a group of their own. */
export function parameterGroups(tool: ToolDefinition): ToolParameterGroup[] {
  const groups: ToolParameterGroup[] = [
    { title: 'Input', subtitle: '', items: tool.inputs.filter((i) => !i.extension).map(parameterItem) },
  ];
  const extensions = tool.inputs.filter((i) => i.extension);
  if (extensions.length > 0) {
    groups.push({ title: 'Likeness extensions', subtitle: 'Not part of Wiro’s tool; optional.', items: extensions.map(parameterItem) });
  }
  return groups;
}

function common(tool: ToolDefinition): ToolCommon {
  return {
    id: tool.id,
    title: tool.title,
    slugowner: tool.owner,
    slugproject: tool.slug,
    cleanslugowner: tool.owner,
    cleanslugproject: tool.slug,
    description: tool.description,
    seodescription: tool.description,
    image: tool.cover,
    cover: tool.cover,
    categories: [...tool.categories],
    tags: [...tool.tags],
    cps: tool.cps,
  };
}

/** One element of Tool/Detail's `tool` array. */
export function toolDetail(tool: ToolDefinition, stats: ToolStats = NO_STATS): ToolDetail {
  return {
    ...common(tool),
    seotitle: tool.title,
    readme: tool.description,
    parameters: parameterGroups(tool),
    inspire: [],
    samples: [],
    // Priced per second (cps): Wiro sets no dynamic price for such tools.
    dynamicprice: [],
    taskstat: {
      runcount: String(stats.runcount),
      successcount: String(stats.successcount),
      errorcount: String(stats.errorcount),
      lastruntime: String(stats.lastruntime),
    },
  };
}

/** One element of Tool/List's `tool` array (no parameters, as Wiro's list example). */
export function toolListItem(tool: ToolDefinition, stats: ToolStats = NO_STATS): ToolListItem {
  return {
    ...common(tool),
    dynamicprice: '[]',
    taskstat: {
      runcount: stats.runcount,
      successcount: String(stats.successcount),
      errorcount: String(stats.errorcount),
      lastruntime: String(stats.lastruntime),
    },
  };
}
