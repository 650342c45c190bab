/**
 * A tool is data: its identity, its price and its inputs. The same definition serves Tool/Detail,
 * Tool/List, Run validation and defaults (see validate.ts and detail.ts); nothing else in the
 * service knows a tool's input names.
 *
 * Field names follow Wiro where Wiro has one (the seed's `generatesettings`, `triggerwords`,
 * `minvalue`…); everything else is named for the domain.
 */

import type { ControlMapKind } from '../engine/pipelines/instantid-inputs.js';

/** One per-option setting, exactly as Wiro's catalog lists it (numbers carried as strings). */
export interface GenerateSetting {
  type: 'float';
  template: string;
  /** Also the name of the Run body field that carries the value, e.g. "controlnet-canny-sdxl-1.0". */
  id: string;
  placeholder: string;
  label: string;
  minvalue: string;
  maxvalue: string;
  value: string;
  defaultvalue: string;
  incrementby: string;
  options: readonly string[];
  note: string;
}

/** An entry of a select or multiselect: for models, a catalog id with its catalog metadata. */
export interface OptionSpec {
  value: string;
  label: string;
  /** ControlNet options: the preprocessor that makes its control map (ours; not shown in Tool/Detail). */
  preprocessor?: ControlMapKind;
  description?: string;
  triggerwords?: readonly string[];
  generatesettings?: readonly GenerateSetting[];
}

interface InputCommon {
  id: string;
  /** Wiro's labels and help texts are i18n keys ("select-model", "select-model-help"); kept verbatim. */
  label: string;
  help: string;
  required: boolean;
  /** Shown under "advanced" by UIs that read Tool/Detail. */
  advanced?: boolean;
  placeholder?: string;
  note?: string;
  /** Our addition, not part of Wiro's tool: Wiro clients never send it and lose nothing. */
  extension?: true;
}

export interface TextInput extends InputCommon {
  type: 'text' | 'textarea';
  default: string;
  /**
   * 'uint64': a decimal integer 0 … 2^64−1 carried as a string (Wiro's `seed`); an empty or
   * absent value means the default.
   */
  format?: 'uint64';
}

/** What a select's ids name in the model catalog; availability is asked only for these inputs. */
export type CatalogKind = 'checkpoint' | 'lora' | 'controlnet';

export interface SelectInput extends InputCommon {
  type: 'select';
  catalog?: CatalogKind;
  /** '' means "none chosen". */
  default: string;
  options: readonly OptionSpec[];
  /**
   * Several ids may be sent (an array or a comma-separated string); the value is then a list.
   * Wiro documents selectedLoraModel as a select while its own example sends an array.
   */
  multiple?: boolean;
  /**
   * The options are the project's own (private models the operator added for it), unknown to the
   * definition: any well-formed id is accepted here and checked by the caller's availability hook.
   */
  openOptions?: boolean;
  /**
   * Ids that mean "the default" although they are not options: defaults shown by Wiro's pages
   * that point outside the published option list ("79", "80").
   */
  defaultAliases?: readonly string[];
}

export interface MultiSelectInput extends InputCommon {
  type: 'multiselect';
  catalog?: CatalogKind;
  default: readonly string[];
  options: readonly OptionSpec[];
}

export interface NumberInput extends InputCommon {
  /** 'number' holds integers, 'float' any finite number (Wiro's two numeric kinds). */
  type: 'number' | 'float';
  /** null: no default; an absent value stays null (e.g. an output size that follows the image). */
  default: number | null;
  min: number;
  max: number;
  step: number;
}

/** A file sent as `{id}` (multipart) or a URL sent as `{id}Url` (or as a string in `{id}`). */
export interface FileInput extends InputCommon {
  type: 'fileinput';
}

export type InputSpec = TextInput | SelectInput | MultiSelectInput | NumberInput | FileInput;
export type InputKind = InputSpec['type'];

export interface ToolDefinition {
  /** Wiro's numeric model id as a string (Task objects carry it as `modelid`). */
  id: string;
  owner: string;
  slug: string;
  title: string;
  description: string;
  /** Cover image URL (Wiro's Tool/* responses call it `image`). */
  cover: string;
  categories: readonly string[];
  tags: readonly string[];
  /** Cost per second as Wiro writes it: a decimal string with 12 places, e.g. "0.000585000000". */
  cps: string;
  inputs: readonly InputSpec[];
}

// ---- What validation yields ----

/** An input file: uploaded with the request, or a URL the worker fetches in preprocess. */
export type FileRef =
  | { source: 'upload'; filename: string; contentType: string; size: number }
  | { source: 'url'; url: string };

/** How an uploaded file is described to the validator (the bytes are the server's business). */
export interface UploadedFile {
  filename: string;
  contentType: string;
  size: number;
}

/**
 * The value of one input after validation:
 * text/textarea → string (seed: canonical decimal string); number/float → number, or null when it
 * has no default and none was sent; select → string ('' = none); select with `multiple` and
 * multiselect → string[] (deduplicated, in the order sent); fileinput → FileRef, or null.
 */
export type ParamValue = string | number | readonly string[] | FileRef | null;

export interface RunParams {
  /** Every declared input by id, defaults applied. */
  values: Record<string, ParamValue>;
  /** Generate-setting values of the selected options, by setting id, defaults applied. */
  settings: Record<string, number>;
  /** Passed through as sent (the callback layer decides whether it can be delivered). */
  callbackUrl: string | null;
}

export interface ValidationError {
  code: number;
  message: string;
}

export type ValidationResult =
  | { ok: true; params: RunParams; /** What the validation decided for the user (e.g. 0 read as the default), for debugoutput. */ notes?: string[] }
  | { ok: false; errors: ValidationError[] };

/** Whom a Run is for: a project's private models are looked up in that project's own folder. */
export interface RunScope {
  /** The project's id in the store; absent (a CLI, a bench), private ids resolve to "not found". */
  readonly projectId?: number;
}

/**
 * Is the option's model installed? Returns an error message a user can act on when not,
 * undefined when it is. Called once per selected id, after the request is otherwise well formed.
 */
export type AvailabilityCheck = (inputId: string, optionValue: string, scope?: RunScope) => string | undefined;
