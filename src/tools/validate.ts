/**
 * Validates a Run body against a tool definition and applies its defaults. Pure: no I/O; whether a
 * selected model is installed is asked of the caller's availability hook.
 *
 * Bodies arrive from JSON or multipart, so numbers may be strings ("5.0") and lists may be arrays
 * or comma-separated strings. Every problem is reported (all code 0, Wiro's validation class), in
 * the order of the tool's inputs, with Wiro's wording where its docs give one:
 *   Request parameter [{id}] required · Request files [{id}] required
 *   Request parameter [{id}] must be integer or float · … must be between {min} and {max}
 * Fields the tool does not declare are ignored (clients send projectid and the like);
 * callbackUrl is passed through separately.
 */
import { MODEL_ID, privateModelMissing } from './catalog.js';
import type {
  AvailabilityCheck,
  FileInput,
  FileRef,
  InputSpec,
  MultiSelectInput,
  NumberInput,
  OptionSpec,
  ParamValue,
  SelectInput,
  TextInput,
  ToolDefinition,
  UploadedFile,
  ValidationResult,
} from './types.js';

export interface ValidateOptions {
  availability?: AvailabilityCheck;
  /** The Run's project (its store id): the availability hook looks for private models there. */
  projectId?: number;
}

export const UINT64_MAX = (1n << 64n) - 1n;
/**
 * Longest text input (prompt, negative prompt) in UTF-16 characters. The tokenizer bounds tokens too
 * (MAX_PROMPT_TOKENS); this refuses a runaway prompt at Run, before it is stored or queued.
 */
export const MAX_TEXT_CHARS = 2000;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

const param = (id: string, rest: string): string => `Request parameter [${id}] ${rest}`;

/** Absent in every way a JSON or multipart client can say it. */
function isAbsent(raw: unknown): boolean {
  return raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '');
}

/** Own fields only: a body key such as "constructor" never reaches Object.prototype. */
function field<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Numbers print without trailing zeros: "between 0 and 1.5". */
const show = (n: number): string => String(n);

// ---- One function per input kind: each returns the value, or pushes errors and returns undefined.

function validateText(input: TextInput, raw: unknown, errors: string[]): string | undefined {
  if (input.format === 'uint64') return validateUint64(input, raw, errors);
  if (raw === undefined || raw === null) {
    if (input.required) errors.push(param(input.id, 'required'));
    return input.default;
  }
  if (typeof raw === 'number' && Number.isFinite(raw)) raw = String(raw);
  if (typeof raw !== 'string') {
    errors.push(param(input.id, 'must be a string'));
    return undefined;
  }
  if (input.required && raw.trim() === '') {
    errors.push(param(input.id, 'required'));
    return undefined;
  }
  if (raw.length > MAX_TEXT_CHARS) {
    errors.push(param(input.id, `must be at most ${MAX_TEXT_CHARS} characters (got ${raw.length})`));
    return undefined;
  }
  return raw;
}

function validateUint64(input: TextInput, raw: unknown, errors: string[]): string | undefined {
  if (isAbsent(raw)) {
    if (input.required) errors.push(param(input.id, 'required'));
    return input.default;
  }
  const text = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : typeof raw === 'string' ? raw.trim() : '';
  if (/^\+?\d+$/.test(text)) {
    const value = BigInt(text);
    if (value <= UINT64_MAX) return value.toString();
  }
  errors.push(param(input.id, `must be an integer between 0 and ${UINT64_MAX}`));
  return undefined;
}

function parseNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === 'string' && DECIMAL.test(raw.trim())) {
    const n = Number(raw.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/**
 * Zero means "the default" for a number whose minimum is above 0: clients that send every field (n8n's Wiro
 * nodes send steps 0, scale 0, samples 0 when left untouched) would otherwise be refused for a value nobody
 * chose. Tool/Detail's descriptions say so (zeroMeansDefaultNote).
 */
export function zeroMeansDefault(input: NumberInput): boolean {
  return input.min > 0 && input.default !== null && input.default !== undefined;
}

export function zeroMeansDefaultNote(input: NumberInput): string | undefined {
  return zeroMeansDefault(input) ? `0 or empty means the default (${show(input.default as number)}).` : undefined;
}

function validateNumber(input: NumberInput, raw: unknown, errors: string[], notes: string[]): number | null | undefined {
  if (isAbsent(raw)) {
    if (input.required) errors.push(param(input.id, 'required'));
    return input.default;
  }
  const n = parseNumber(raw);
  if (n === undefined) {
    errors.push(param(input.id, 'must be integer or float'));
    return undefined;
  }
  if (n === 0 && zeroMeansDefault(input)) {
    notes.push(`${input.id} 0 means the default: ${show(input.default as number)} used.`);
    return input.default;
  }
  // Wiro's wording has no integer-only message; ours follows its pattern.
  if (input.type === 'number' && !Number.isInteger(n)) {
    errors.push(param(input.id, 'must be integer'));
    return undefined;
  }
  if (n < input.min || n > input.max) {
    errors.push(param(input.id, `must be between ${show(input.min)} and ${show(input.max)}`));
    return undefined;
  }
  return n === 0 ? 0 : n; // no -0
}

function unknownOption(id: string, value: string, options: readonly OptionSpec[]): string {
  const valid = options.map((o) => o.value).join(', ');
  return param(id, `has unknown option [${value}]; valid options: ${valid}`);
}

/** One id of a select: a known option, a default alias (→ ''), or a private id when options are open. */
function checkOption(input: SelectInput | MultiSelectInput, value: string, errors: string[]): string | undefined {
  if (input.type === 'select' && input.defaultAliases?.includes(value)) return '';
  if (input.type === 'select' && input.openOptions) {
    if (MODEL_ID.test(value)) return value;
    // A malformed private id gets the very message of one the project does not have (see catalog.ts).
    errors.push(input.catalog ? privateModelMissing(input.id, input.catalog, value) : param(input.id, `must be a model id (letters, digits, '.', '_' or '-')`));
    return undefined;
  }
  if (input.options.some((o) => o.value === value)) return value;
  errors.push(unknownOption(input.id, value, input.options));
  return undefined;
}

function validateSingleSelect(input: SelectInput, raw: unknown, errors: string[]): string | undefined {
  if (isAbsent(raw)) {
    if (input.required) errors.push(param(input.id, 'required'));
    return input.default;
  }
  if (typeof raw === 'number' && Number.isFinite(raw)) raw = String(raw);
  if (typeof raw !== 'string') {
    errors.push(param(input.id, 'must be a string'));
    return undefined;
  }
  const value = checkOption(input, raw.trim(), errors);
  return value === '' ? input.default : value;
}

/**
 * A list of ids: an array, a comma-separated string, or a JSON array in a string (what some form
 * encoders send). Absent → the default; "" or [] → none. Duplicates are dropped, order kept.
 */
function validateList(input: SelectInput | MultiSelectInput, raw: unknown, errors: string[]): string[] | undefined {
  if (raw === undefined || raw === null) {
    if (input.required) errors.push(param(input.id, 'required'));
    if (typeof input.default !== 'string') return [...input.default];
    return input.default === '' ? [] : [input.default];
  }
  const items: unknown[] = Array.isArray(raw) ? raw : typeof raw === 'string' ? listFromString(raw.trim()) : [raw];
  if (!items.every((i) => typeof i === 'string' || (typeof i === 'number' && Number.isFinite(i)))) {
    errors.push(param(input.id, 'must be an array of option ids or a comma-separated string'));
    return undefined;
  }
  const ids: string[] = [];
  let known = true;
  for (const item of items) {
    const text = String(item).trim();
    if (text === '') continue;
    const value = checkOption(input, text, errors);
    if (value === undefined) known = false;
    else if (value !== '' && !ids.includes(value)) ids.push(value);
  }
  if (!known) return undefined;
  if (input.required && ids.length === 0) {
    errors.push(param(input.id, 'required'));
    return undefined;
  }
  return ids;
}

function listFromString(text: string): unknown[] {
  if (text.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (Array.isArray(parsed)) return parsed;
    } catch {
      // not JSON: read it as a comma-separated list, which will name the bad id
    }
  }
  return text.split(',');
}

function validateFile(
  input: FileInput,
  body: Record<string, unknown>,
  files: Record<string, UploadedFile>,
  errors: string[],
): FileRef | null | undefined {
  const urlField = `${input.id}Url`;
  const file = field(files, input.id);
  const direct = field(body, input.id); // a URL may be passed directly in {id}
  const viaUrl = field(body, urlField);
  let bad = false;
  if (!isAbsent(direct) && typeof direct !== 'string') {
    errors.push(param(input.id, 'must be a file or a URL'));
    bad = true;
  }
  if (!isAbsent(viaUrl) && typeof viaUrl !== 'string') {
    errors.push(param(urlField, 'must be a string'));
    bad = true;
  }
  if (bad) return undefined;
  const url = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');
  const distinctUrls = [...new Set([url(direct), url(viaUrl)].filter((u) => u !== ''))];
  if (file && distinctUrls.length > 0) {
    errors.push(`Request files [${input.id}] must be sent as a file or as a URL in [${urlField}], not both`);
    return undefined;
  }
  if (distinctUrls.length > 1) {
    errors.push(param(input.id, `and [${urlField}] name different URLs; send one`));
    return undefined;
  }
  if (file) {
    if (file.size <= 0) {
      errors.push(`Request files [${input.id}] is empty`);
      return undefined;
    }
    return { source: 'upload', filename: file.filename, contentType: file.contentType, size: file.size };
  }
  if (distinctUrls.length === 1) return { source: 'url', url: distinctUrls[0]! };
  if (input.required) errors.push(`Request files [${input.id}] required`);
  return null;
}

function validateInput(
  input: InputSpec,
  body: Record<string, unknown>,
  files: Record<string, UploadedFile>,
  errors: string[],
  notes: string[],
): ParamValue | undefined {
  const raw = field(body, input.id);
  switch (input.type) {
    case 'text':
    case 'textarea':
      return validateText(input, raw, errors);
    case 'number':
    case 'float':
      return validateNumber(input, raw, errors, notes);
    case 'select':
      return input.multiple ? validateList(input, raw, errors) : validateSingleSelect(input, raw, errors);
    case 'multiselect':
      return validateList(input, raw, errors);
    case 'fileinput':
      return validateFile(input, body, files, errors);
  }
}

/** The ids a select or multiselect value holds ('' holds none). */
function selectedIds(value: ParamValue | undefined): readonly string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/** The generate settings of the options a request selected, e.g. each chosen ControlNet's scale. */
function validateSettings(
  tool: ToolDefinition,
  values: Record<string, ParamValue>,
  body: Record<string, unknown>,
  errors: string[],
): Record<string, number> {
  const settings: Record<string, number> = {};
  for (const input of tool.inputs) {
    if (input.type !== 'select' && input.type !== 'multiselect') continue;
    const chosen = selectedIds(values[input.id]);
    for (const option of input.options) {
      if (!chosen.includes(option.value)) continue;
      for (const setting of option.generatesettings ?? []) {
        if (Object.hasOwn(settings, setting.id)) continue;
        const min = Number(setting.minvalue);
        const max = Number(setting.maxvalue);
        const raw = field(body, setting.id);
        if (isAbsent(raw)) {
          settings[setting.id] = Number(setting.defaultvalue);
          continue;
        }
        const n = parseNumber(raw);
        if (n === undefined) errors.push(param(setting.id, 'must be integer or float'));
        else if (n < min || n > max) errors.push(param(setting.id, `must be between ${show(min)} and ${show(max)}`));
        else settings[setting.id] = n === 0 ? 0 : n;
      }
    }
  }
  return settings;
}

function checkAvailability(
  tool: ToolDefinition, values: Record<string, ParamValue>, check: AvailabilityCheck, projectId: number | undefined, errors: string[],
): void {
  const scope = projectId === undefined ? {} : { projectId };
  for (const input of tool.inputs) {
    if ((input.type !== 'select' && input.type !== 'multiselect') || !input.catalog) continue;
    for (const id of selectedIds(values[input.id])) {
      const problem = check(input.id, id, scope);
      if (problem !== undefined) errors.push(problem);
    }
  }
}

/**
 * Every body field a Run of `tool` can use: its inputs, each file input's `{id}Url`, the settings its
 * options generate, and callbackUrl. The service drops anything else before validating or storing.
 */
export function declaredFields(tool: ToolDefinition): string[] {
  const fields = new Set<string>(['callbackUrl']);
  for (const input of tool.inputs) {
    fields.add(input.id);
    if (input.type === 'fileinput') fields.add(`${input.id}Url`);
    if (input.type === 'select' || input.type === 'multiselect') {
      for (const option of input.options) for (const setting of option.generatesettings ?? []) fields.add(setting.id);
    }
  }
  return [...fields];
}

export function validateRun(
  tool: ToolDefinition,
  body: Record<string, unknown>,
  files: Record<string, UploadedFile> = {},
  options: ValidateOptions = {},
): ValidationResult {
  if (!isPlainObject(body)) return { ok: false, errors: [{ code: 0, message: 'Request parameters are invalid.' }] };
  const messages: string[] = [];
  const values: Record<string, ParamValue> = {};
  const notes: string[] = [];
  for (const input of tool.inputs) {
    const value = validateInput(input, body, files, messages, notes);
    if (value !== undefined) values[input.id] = value;
  }
  const settings = validateSettings(tool, values, body, messages);

  let callbackUrl: string | null = null;
  const rawCallback = field(body, 'callbackUrl');
  if (typeof rawCallback === 'string') callbackUrl = rawCallback.trim() === '' ? null : rawCallback.trim();
  else if (rawCallback !== undefined && rawCallback !== null) messages.push(param('callbackUrl', 'must be a string'));

  // Ask about installed models only for a request that is otherwise well formed.
  if (messages.length === 0 && options.availability) checkAvailability(tool, values, options.availability, options.projectId, messages);

  if (messages.length > 0) return { ok: false, errors: messages.map((message) => ({ code: 0, message })) };
  return { ok: true, params: { values, settings, callbackUrl }, notes };
}

