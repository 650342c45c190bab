// Run validation for wiro/instant-id-controlnet-lora: what is accepted, what each bad input is told,
// and the values (defaults applied) a valid request yields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_NEGATIVE_PROMPT,
  DEFAULT_PROMPT,
  instantIdControlnetLora as tool,
} from '../../src/tools/instant-id-controlnet-lora.js';
import { validateRun } from '../../src/tools/validate.js';
import type { RunParams, UploadedFile, ValidationResult } from '../../src/tools/types.js';
import { readSeed, seedPath } from './seed.js';

/** The body of the seed's "Run Command" example, verbatim. */
const SEED_EXAMPLE: Record<string, unknown> = {
  selectedModel: '',
  selectedModelPrivate: '',
  selectedLoraModel: [],
  selectedLoraModelPrivateUrl: '',
  inputImageUrl: 'input-portrait-2.jpg',
  selectedControlnetModel: [],
  prompt: DEFAULT_PROMPT,
  negativePrompt: DEFAULT_NEGATIVE_PROMPT,
  steps: 20,
  scale: '5.0',
  ip_adapter_scale: '0.8',
  samples: 1,
  seed: '3572004920',
  scheduler: 'DDIMScheduler',
  callbackUrl: 'You can provide a callback URL; Wiro will send a POST request to it when the task is completed.',
};

/** The least a client must send. */
const MINIMAL = { prompt: 'a portrait in the rain', inputImageUrl: 'https://example.com/face.jpg' };

function accepted(body: Record<string, unknown>, files: Record<string, UploadedFile> = {}): RunParams {
  const r = validateRun(tool, body, files);
  if (!r.ok) assert.fail(`expected acceptance, got ${JSON.stringify(r.errors)}`);
  return r.params;
}

function rejected(body: Record<string, unknown>, files: Record<string, UploadedFile> = {}): string[] {
  const r: ValidationResult = validateRun(tool, body, files);
  if (r.ok) assert.fail(`expected rejection of ${JSON.stringify(body)}`);
  for (const e of r.errors) assert.equal(e.code, 0, 'validation errors are code 0');
  return r.errors.map((e) => e.message);
}

test('the seed’s example Run body is accepted as sent, empty model and LoRA meaning none', () => {
  const p = accepted(SEED_EXAMPLE);
  assert.deepEqual(p.values, {
    selectedModel: '',
    selectedModelPrivate: '',
    selectedLoraModel: [],
    selectedLoraModelPrivate: '',
    selectedLoraModelPrivateUrl: '',
    inputImage: { source: 'url', url: 'input-portrait-2.jpg' },
    selectedControlnetModel: [],
    prompt: DEFAULT_PROMPT,
    negativePrompt: DEFAULT_NEGATIVE_PROMPT,
    steps: 20,
    scale: 5,
    ip_adapter_scale: 0.8,
    samples: 1,
    seed: '3572004920',
    scheduler: 'DDIMScheduler',
    inputPoseImage: null,
    width: null,
    height: null,
    identitynet_scale: 0.8,
  });
  assert.deepEqual(p.settings, {});
  assert.equal(p.callbackUrl, SEED_EXAMPLE.callbackUrl);
});

test('the inline example is the seed’s own', { skip: readSeed() ? false : `seed not found at ${seedPath}` }, () => {
  assert.deepEqual(readSeed()!.runExample, SEED_EXAMPLE);
});

test('absent fields take their defaults: canny at scale 1, the seed’s numbers and negative prompt', () => {
  const p = accepted(MINIMAL);
  assert.deepEqual(p.values.selectedControlnetModel, ['454']);
  assert.deepEqual(p.settings, { 'controlnet-canny-sdxl-1.0': 1 });
  assert.equal(p.values.selectedModel, '');
  assert.deepEqual(p.values.selectedLoraModel, []);
  assert.equal(p.values.negativePrompt, DEFAULT_NEGATIVE_PROMPT);
  assert.equal(p.values.steps, 20);
  assert.equal(p.values.scale, 5);
  assert.equal(p.values.ip_adapter_scale, 0.8);
  assert.equal(p.values.samples, 1);
  assert.equal(p.values.seed, '3572004920');
  assert.equal(p.values.scheduler, 'DDIMScheduler');
  assert.equal(p.callbackUrl, null);
});

test('empty strings, as multipart forms send them, mean the default', () => {
  const p = accepted({ ...MINIMAL, steps: '', scale: '', seed: '', scheduler: '', samples: ' ', callbackUrl: '' });
  assert.equal(p.values.steps, 20);
  assert.equal(p.values.scale, 5);
  assert.equal(p.values.seed, '3572004920');
  assert.equal(p.values.scheduler, 'DDIMScheduler');
  assert.equal(p.values.samples, 1);
  assert.equal(p.callbackUrl, null);
});

test('an explicit empty negative prompt is kept empty', () => {
  assert.equal(accepted({ ...MINIMAL, negativePrompt: '' }).values.negativePrompt, '');
});

test('numbers may arrive as strings, integers written as floats included', () => {
  const p = accepted({ ...MINIMAL, steps: '30', scale: ' 7.5 ', ip_adapter_scale: '1', samples: '4.0', width: '1024' });
  assert.deepEqual([p.values.steps, p.values.scale, p.values.ip_adapter_scale, p.values.samples, p.values.width], [30, 7.5, 1, 4, 1024]);
});

test('range boundaries are inside the range', () => {
  for (const [field, value] of [
    ['steps', 1], ['steps', 100], ['scale', 0], ['scale', 30], ['ip_adapter_scale', 0], ['ip_adapter_scale', 1.5],
    ['samples', 1], ['samples', 8], ['width', 64], ['height', 2048], ['identitynet_scale', 1.5],
  ] as const) {
    assert.equal(accepted({ ...MINIMAL, [field]: value }).values[field], value, `${field}=${value}`);
  }
});

test('seeds are decimal strings from 0 to 2^64−1, kept exact and canonical', () => {
  for (const [sent, kept] of [
    ['0', '0'], ['18446744073709551615', '18446744073709551615'], [' 007 ', '7'], [42, '42'], ['+5', '5'],
  ] as const) {
    assert.equal(accepted({ ...MINIMAL, seed: sent }).values.seed, kept, `seed ${JSON.stringify(sent)}`);
  }
});

const SEED_ERROR = 'Request parameter [seed] must be an integer between 0 and 18446744073709551615';
const SCHEDULER_LIST =
  'FlowMatchEulerDiscreteScheduler, EulerDiscreteScheduler, DDIMScheduler, LMSDiscreteScheduler, DPMSolverMultistepScheduler, PNDMScheduler, DDPMScheduler, EulerAncestralDiscreteScheduler';

/** [what, body fields over MINIMAL, the one error]. */
const BAD: [string, Record<string, unknown>, string][] = [
  ['steps below range', { steps: -1 }, 'Request parameter [steps] must be between 1 and 100'],
  ['steps above range', { steps: '101' }, 'Request parameter [steps] must be between 1 and 100'],
  ['steps not whole', { steps: '2.5' }, 'Request parameter [steps] must be integer'],
  ['steps not a number', { steps: 'abc' }, 'Request parameter [steps] must be integer or float'],
  ['steps a boolean', { steps: true }, 'Request parameter [steps] must be integer or float'],
  ['steps an object', { steps: { value: 20 } }, 'Request parameter [steps] must be integer or float'],
  ['scale "abc"', { scale: 'abc' }, 'Request parameter [scale] must be integer or float'],
  ['scale hexadecimal', { scale: '0x10' }, 'Request parameter [scale] must be integer or float'],
  ['scale infinite', { scale: 'Infinity' }, 'Request parameter [scale] must be integer or float'],
  ['scale above range', { scale: 30.01 }, 'Request parameter [scale] must be between 0 and 30'],
  ['scale negative', { scale: '-0.1' }, 'Request parameter [scale] must be between 0 and 30'],
  ['ip_adapter_scale above range', { ip_adapter_scale: 1.6 }, 'Request parameter [ip_adapter_scale] must be between 0 and 1.5'],
  ['samples negative', { samples: -2 }, 'Request parameter [samples] must be between 1 and 8'],
  ['samples nine', { samples: '9' }, 'Request parameter [samples] must be between 1 and 8'],
  ['seed -1', { seed: '-1' }, SEED_ERROR],
  ['seed 2^64', { seed: '18446744073709551616' }, SEED_ERROR],
  ['seed "2^64"', { seed: '2^64' }, SEED_ERROR],
  ['seed "abc"', { seed: 'abc' }, SEED_ERROR],
  ['seed fractional', { seed: '1.5' }, SEED_ERROR],
  ['seed an unsafe JSON number', { seed: 2 ** 64 }, SEED_ERROR],
  ['seed an array', { seed: ['1'] }, SEED_ERROR],
  ['prompt missing', { prompt: undefined }, 'Request parameter [prompt] required'],
  ['prompt blank', { prompt: '   ' }, 'Request parameter [prompt] required'],
  ['prompt an object', { prompt: { text: 'hi' } }, 'Request parameter [prompt] must be a string'],
  ['prompt an array', { prompt: ['hi'] }, 'Request parameter [prompt] must be a string'],
  ['negativePrompt a boolean', { negativePrompt: false }, 'Request parameter [negativePrompt] must be a string'],
  ['no face image', { inputImageUrl: '' }, 'Request files [inputImage] required'],
  ['inputImageUrl a number', { inputImageUrl: 5 }, 'Request parameter [inputImageUrl] must be a string'],
  ['inputImage an object', { inputImageUrl: undefined, inputImage: { url: 'x' } }, 'Request parameter [inputImage] must be a file or a URL'],
  ['two different image URLs', { inputImage: 'https://a/1.jpg' }, 'Request parameter [inputImage] and [inputImageUrl] name different URLs; send one'],
  ['unknown scheduler', { scheduler: 'KarrasScheduler' }, `Request parameter [scheduler] has unknown option [KarrasScheduler]; valid options: ${SCHEDULER_LIST}`],
  ['unknown checkpoint', { selectedModel: '555' }, 'Request parameter [selectedModel] has unknown option [555]; valid options: 554, 1088, 422, 995, 1094'],
  ['checkpoint an object', { selectedModel: { id: '554' } }, 'Request parameter [selectedModel] must be a string'],
  ['checkpoint a list', { selectedModel: ['554'] }, 'Request parameter [selectedModel] must be a string'],
  ['unknown ControlNet in a list', { selectedControlnetModel: '454,999' }, 'Request parameter [selectedControlnetModel] has unknown option [999]; valid options: 458, 455, 454'],
  ['ControlNet list of objects', { selectedControlnetModel: [{ id: '454' }] }, 'Request parameter [selectedControlnetModel] must be an array of option ids or a comma-separated string'],
  ['ControlNet an object', { selectedControlnetModel: { 0: '454' } }, 'Request parameter [selectedControlnetModel] must be an array of option ids or a comma-separated string'],
  ['unknown LoRA', { selectedLoraModel: ['622', '9'] }, 'Request parameter [selectedLoraModel] has unknown option [9]; valid options: 622, 480, 938, 1146, 1229'],
  // The same message as a private id the project does not have (catalog.ts, privateModelMissing).
  ['private checkpoint id with a path', { selectedModelPrivate: '../etc/passwd' },
    "Request parameter [selectedModelPrivate] ../etc/passwd is not a private checkpoint of this project: the server's operator adds it with `likeness models private add --project <your project> FILE`"],
  ['LoRA URL not a string', { selectedLoraModelPrivateUrl: ['https://x/y.safetensors'] }, 'Request parameter [selectedLoraModelPrivateUrl] must be a string'],
  ['ControlNet scale above its setting’s max', { selectedControlnetModel: ['454'], 'controlnet-canny-sdxl-1.0': 1.5 }, 'Request parameter [controlnet-canny-sdxl-1.0] must be between 0 and 1'],
  ['ControlNet scale negative', { selectedControlnetModel: '458', 'controlnet-openpose-sdxl-1.0': '-0.1' }, 'Request parameter [controlnet-openpose-sdxl-1.0] must be between 0 and 1'],
  ['LoRA scale "abc"', { selectedLoraModel: '622', 'Vintage-Creepy-Creatures': 'abc' }, 'Request parameter [Vintage-Creepy-Creatures] must be integer or float'],
  ['width below range', { width: 32 }, 'Request parameter [width] must be between 64 and 2048'],
  ['identitynet_scale above range', { identitynet_scale: '2' }, 'Request parameter [identitynet_scale] must be between 0 and 1.5'],
  ['callbackUrl an object', { callbackUrl: { url: 'https://x' } }, 'Request parameter [callbackUrl] must be a string'],
];

for (const [what, fields, error] of BAD) {
  test(`rejects ${what}: "${error}"`, () => {
    assert.deepEqual(rejected({ ...MINIMAL, ...fields }), [error]);
  });
}

test('a body that is not an object is refused with Wiro’s generic message', () => {
  const r = validateRun(tool, [] as unknown as Record<string, unknown>, {});
  assert.deepEqual(r, { ok: false, errors: [{ code: 0, message: 'Request parameters are invalid.' }] });
});

test('every error is reported at once, in the order of the tool’s inputs', () => {
  assert.deepEqual(rejected({ selectedModel: 'x', steps: -1, scale: 'abc', seed: '-1' }), [
    'Request parameter [selectedModel] has unknown option [x]; valid options: 554, 1088, 422, 995, 1094',
    'Request files [inputImage] required',
    'Request parameter [prompt] required',
    'Request parameter [steps] must be between 1 and 100',
    'Request parameter [scale] must be integer or float',
    SEED_ERROR,
  ]);
});

test('ControlNets come as an array or a comma-separated string; absent means canny, "" and [] none', () => {
  const cases: [unknown, string[]][] = [
    [undefined, ['454']],
    [[], []],
    ['', []],
    ['454', ['454']],
    ['454,455', ['454', '455']],
    [['454'], ['454']],
    [[458, '455'], ['458', '455']],
    ['455, 454 ,455', ['455', '454']],
    ['["458","455"]', ['458', '455']],
    ['454,', ['454']],
  ];
  for (const [sent, ids] of cases) {
    assert.deepEqual(accepted({ ...MINIMAL, selectedControlnetModel: sent }).values.selectedControlnetModel, ids, JSON.stringify(sent));
  }
});

test('LoRAs come the same ways; absent, "" and [] all mean none', () => {
  const cases: [unknown, string[]][] = [
    [undefined, []],
    [[], []],
    ['', []],
    ['622', ['622']],
    ['622,938', ['622', '938']],
    [['1229', '480'], ['1229', '480']],
    [' 938 , 622 , 938 ', ['938', '622']],
  ];
  for (const [sent, ids] of cases) {
    assert.deepEqual(accepted({ ...MINIMAL, selectedLoraModel: sent }).values.selectedLoraModel, ids, JSON.stringify(sent));
  }
});

test('Wiro’s out-of-list model defaults "79" and "80" are accepted and mean none', () => {
  const p = accepted({ ...MINIMAL, selectedModel: '79', selectedLoraModel: '80' });
  assert.equal(p.values.selectedModel, '');
  assert.deepEqual(p.values.selectedLoraModel, []);
  assert.deepEqual(accepted({ ...MINIMAL, selectedLoraModel: ['80', '622'] }).values.selectedLoraModel, ['622']);
});

test('catalog ids may be sent as JSON numbers', () => {
  const p = accepted({ ...MINIMAL, selectedModel: 554, selectedLoraModel: 622 });
  assert.equal(p.values.selectedModel, '554');
  assert.deepEqual(p.values.selectedLoraModel, ['622']);
});

test('per-net and per-LoRA scales are read from fields named by each setting id, for selected options only', () => {
  const p = accepted({
    ...MINIMAL,
    selectedControlnetModel: ['458', '454'],
    'controlnet-openpose-sdxl-1.0': 0.8,
    'controlnet-depth-sdxl-1.0': 7, // depth is not selected: ignored, even out of range
    selectedLoraModel: '622,938',
    'Vintage-Creepy-Creatures': '0.7',
    'Roman-Everything-SDXL': '',
  });
  assert.deepEqual(p.settings, {
    'controlnet-openpose-sdxl-1.0': 0.8,
    'controlnet-canny-sdxl-1.0': 1,
    'Vintage-Creepy-Creatures': 0.7,
    'Roman-Everything-SDXL': 1,
  });
});

test('setting boundaries 0 and 1 are inside the range', () => {
  const p = accepted({ ...MINIMAL, selectedControlnetModel: '455,454', 'controlnet-depth-sdxl-1.0': '0', 'controlnet-canny-sdxl-1.0': 1 });
  assert.deepEqual(p.settings, { 'controlnet-depth-sdxl-1.0': 0, 'controlnet-canny-sdxl-1.0': 1 });
});

test('a face photo uploaded with the request, the URL field left empty as Wiro’s docs show', () => {
  const upload = { filename: 'face.jpg', contentType: 'image/jpeg', size: 12345 };
  const p = accepted({ prompt: 'x', inputImage: '', inputImageUrl: '' }, { inputImage: upload });
  assert.deepEqual(p.values.inputImage, { source: 'upload', ...upload });
});

test('a URL may also come directly in inputImage, or in both fields when they agree', () => {
  const url = 'https://example.com/face.png';
  assert.deepEqual(accepted({ prompt: 'x', inputImage: url }).values.inputImage, { source: 'url', url });
  assert.deepEqual(accepted({ prompt: 'x', inputImage: url, inputImageUrl: ` ${url}` }).values.inputImage, { source: 'url', url });
});

test('a file and a URL for the same image are refused; so is an empty upload', () => {
  const upload = { filename: 'face.jpg', contentType: 'image/jpeg', size: 10 };
  assert.deepEqual(rejected({ prompt: 'x', inputImageUrl: 'https://a/b.jpg' }, { inputImage: upload }), [
    'Request files [inputImage] must be sent as a file or as a URL in [inputImageUrl], not both',
  ]);
  assert.deepEqual(rejected({ prompt: 'x' }, { inputImage: { ...upload, size: 0 } }), ['Request files [inputImage] is empty']);
});

test('the pose image (our extension) is optional and comes like the face photo', () => {
  assert.equal(accepted(MINIMAL).values.inputPoseImage, null);
  const url = 'https://example.com/pose.jpg';
  assert.deepEqual(accepted({ ...MINIMAL, inputPoseImageUrl: url }).values.inputPoseImage, { source: 'url', url });
});

test('fields the tool does not declare are ignored; callbackUrl is passed through', () => {
  const p = accepted({ ...MINIMAL, projectid: '699', foo: { bar: 1 }, callbackUrl: ' https://example.com/hook ' });
  assert.equal('projectid' in p.values || 'foo' in p.values || 'callbackUrl' in p.values, false);
  assert.equal(p.callbackUrl, 'https://example.com/hook');
});

test('a rejected request yields no parameters', () => {
  const r = validateRun(tool, { steps: 0 }, {});
  assert.equal(r.ok, false);
  assert.equal('params' in r, false);
});

test('the availability hook is asked about each chosen catalog id, and its answer is the error', () => {
  const asked: string[] = [];
  const availability = (inputId: string, value: string): string | undefined => {
    asked.push(`${inputId}=${value}`);
    return value === '622' ? 'LoRA 622 (Vintage-Creepy-Creatures) is not installed: run `likeness models add lora 622`' : undefined;
  };
  const body = { ...MINIMAL, selectedModel: '554', selectedLoraModel: '622,938', selectedModelPrivate: 'mine-1' };
  const r = validateRun(tool, body, {}, { availability });
  assert.deepEqual(r, {
    ok: false,
    errors: [{ code: 0, message: 'LoRA 622 (Vintage-Creepy-Creatures) is not installed: run `likeness models add lora 622`' }],
  });
  assert.deepEqual(asked, [
    'selectedModel=554',
    'selectedModelPrivate=mine-1',
    'selectedLoraModel=622',
    'selectedLoraModel=938',
    'selectedControlnetModel=454',
  ]);
});

test('the availability hook is told the Run\'s project (for its private models)', () => {
  const scopes: unknown[] = [];
  const availability = (_input: string, _value: string, scope?: { projectId?: number }): undefined => void scopes.push(scope);
  validateRun(tool, { ...MINIMAL, selectedLoraModelPrivate: 'mine' }, {}, { availability, projectId: 5 });
  assert.ok(scopes.length > 0 && scopes.every((s) => JSON.stringify(s) === '{"projectId":5}'), JSON.stringify(scopes));
  scopes.length = 0;
  validateRun(tool, { ...MINIMAL, selectedLoraModelPrivate: 'mine' }, {}, { availability });
  assert.ok(scopes.every((s) => JSON.stringify(s) === '{}'), 'no project: none is made up');
});

test('the availability hook is not asked about a request that is already malformed, nor about schedulers', () => {
  const asked: string[] = [];
  const availability = (inputId: string, value: string): undefined => void asked.push(`${inputId}=${value}`);
  validateRun(tool, { ...MINIMAL, steps: -1 }, {}, { availability });
  assert.deepEqual(asked, []);
  assert.equal(validateRun(tool, { ...MINIMAL, selectedControlnetModel: [] }, {}, { availability }).ok, true);
  assert.deepEqual(asked, []);
});

test('bodies without a prototype (as some form parsers build them) validate like any other', () => {
  const body = Object.assign(Object.create(null) as Record<string, unknown>, MINIMAL, { steps: '12' });
  assert.equal(accepted(body).values.steps, 12);
});

test('a URL in inputImage beside an uploaded file is refused the same way', () => {
  const upload = { filename: 'face.jpg', contentType: 'image/jpeg', size: 10 };
  assert.deepEqual(rejected({ prompt: 'x', inputImage: 'https://a/b.jpg' }, { inputImage: upload }), [
    'Request files [inputImage] must be sent as a file or as a URL in [inputImageUrl], not both',
  ]);
});

test('n8n\'s untouched node (steps 0, samples 0, seed "") runs with the defaults, and says so', () => {
  const r = validateRun(tool, { ...MINIMAL, steps: 0, samples: '0', scale: 0, ip_adapter_scale: 0, seed: '' });
  if (!r.ok) assert.fail(JSON.stringify(r.errors));
  assert.equal(r.params.values.steps, 20);
  assert.equal(r.params.values.samples, 1);
  assert.equal(r.params.values.seed, '3572004920');
  assert.equal(r.params.values.scale, 0, 'scale may be 0 (its minimum), so 0 is taken as sent');
  assert.equal(r.params.values.ip_adapter_scale, 0);
  assert.deepEqual(r.notes, ['steps 0 means the default: 20 used.', 'samples 0 means the default: 1 used.']);
});
