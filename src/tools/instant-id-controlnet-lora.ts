/**
 * wiro/instant-id-controlnet-lora as data: every input, option, trigger word and generate setting
 * exactly as the seed (design/wiro-tool-seed.md) lists them, in the seed's order, then our
 * extensions (marked `extension: true`).
 *
 * Decisions where the seed is unusable as written:
 * - selectedModel's default "79" and selectedLoraModel's default "80" are not in the published
 *   option lists. The defaults here are '' ("none chosen": the server's default SDXL checkpoint, and
 *   no LoRA); "79"/"80" are still accepted on input and mean the same (defaultAliases), so a client
 *   that copied Wiro's page keeps working.
 * - The seed's example sends `"selectedModel": ""` and `"selectedLoraModel": []`: both mean none.
 * - selectedControlnetModel's default "454" (canny) is an option; it applies only when the field is
 *   absent. An explicit [] or "" selects no ControlNet, as the seed's example does.
 * - inputImageUrl is the URL half of the `inputImage` file input (Wiro's documented fileinput form:
 *   a file in `inputImage`, or a URL in `inputImageUrl`); Tool/Detail emits it as that fileinput.
 * - prompt is required (Wiro: "Request parameter [prompt] required"); its seed default is the
 *   prefill Tool/Detail shows, never silently generated. negativePrompt's default applies when the
 *   field is absent; an explicit "" means no negative prompt.
 * - The seed lists EulerDiscreteScheduler twice; it appears once here.
 * - Ranges (the seed gives none): steps 1–100, scale 0–30, ip_adapter_scale 0–1.5, samples 1–8,
 *   seed 0 … 2^64−1 as a decimal string; an empty seed means the default. There is no "random
 *   seed" value: Wiro documents none.
 * - Price: cps "0.000585000000" and model id "598", from the seed's Task/Kill example.
 *
 * The sibling tools wiro/instant-id, wiro/instant-id-lora and wiro/instant-id-controlnet are this
 * definition with inputs left out (see registry.ts); they can share the engine behind feature flags.
 */
import type { GenerateSetting, InputSpec, OptionSpec, ToolDefinition } from './types.js';

/** Every generate setting in the seed is a 0–1 scale defaulting to 1.0, named after the model. */
function scaleSetting(id: string): GenerateSetting {
  return {
    type: 'float',
    template: '',
    id,
    placeholder: `${id} scale`,
    label: `${id} scale`,
    minvalue: '0.00',
    maxvalue: '1',
    value: '1.0',
    defaultvalue: '1.0',
    incrementby: '0.1',
    options: [],
    note: '',
  };
}

export const CHECKPOINT_OPTIONS: readonly OptionSpec[] = [
  {
    value: '554',
    label: 'moxie1776/Moxie Diffusion XL v1.91',
    description: 'A text-to-image model trained on Stable Diffusion XL.',
    triggerwords: [],
    generatesettings: [],
  },
  {
    value: '1088',
    label: 'PromptSharingSamaritan/Samaritan-CGI',
    description: 'Samaritan CGI',
    triggerwords: [],
    generatesettings: [],
  },
  {
    value: '422',
    label: 'braintacles/BriXL v5.0',
    description:
      'BriXL is a fine-tuned model with a special focus on science fiction and cinematic vibes. Its imperfection is what makes it shine! It has been trained on a lot of my original content as well as cinematic materials.',
    triggerwords: [],
    generatesettings: [],
  },
  {
    value: '995',
    label: 'Dark_infinity/Suzannes-XL-Mix',
    description: "Suzanne's XL Mix",
    triggerwords: [],
    generatesettings: [],
  },
  {
    value: '1094',
    label: 'Raxephion/Tornado',
    description: 'Tornado',
    triggerwords: [],
    generatesettings: [],
  },
];

export const LORA_OPTIONS: readonly OptionSpec[] = [
  {
    value: '622',
    label: 'WizardWhitebeard/Vintage-Creepy-Creatures',
    description:
      'A text-to-image model with Stable Diffusion XL and Lora XL. Generate creepy creatures and monsters with a lot of character. Inspired by 70s style comic illustrations.',
    triggerwords: ['creepy creature', 'creepy creature drawing', 'monster'],
    generatesettings: [scaleSetting('Vintage-Creepy-Creatures')],
  },
  {
    value: '480',
    label: 'DoctorOcto/Minimalist Flat Icons v1.0',
    description:
      'A text-to-image model with Stable Diffusion XL and Lora XL. The LORA has a high capacity to generate minimalist flat icons!',
    triggerwords: [
      'MINIMALIST ICON, FLATXL',
      'minimalistic, vector art, lean lines, illustration, graphic design, vector graphics,',
    ],
    generatesettings: [scaleSetting('Minimalist-Flat-Icons-v1.0')],
  },
  {
    value: '938',
    label: 'Zavy/Roman-Everything-SDXL',
    description: 'Roman Everything - SDXL',
    triggerwords: ['zavy-rmn'],
    generatesettings: [scaleSetting('Roman-Everything-SDXL')],
  },
  {
    value: '1146',
    label: 'bblink787/Graphic-Novel-Illustration',
    description: 'Graphic Novel Illustration',
    triggerwords: ['graphic novel illustration'],
    generatesettings: [scaleSetting('Graphic-Novel-Illustration')],
  },
  {
    value: '1229',
    label: 'WizardWhitebeard/Vintage-Golden-Age-Illustration-SDXL',
    description: 'Vintage Golden Age Illustration',
    triggerwords: ['vintage illustration'],
    generatesettings: [scaleSetting('Vintage-Golden-Age-Illustration-SDXL')],
  },
];

const CONTROLNET_DESCRIPTION =
  'SDXL ControlNet is a neural network structure to control diffusion models by adding extra conditions.';

export const CONTROLNET_OPTIONS: readonly OptionSpec[] = [
  {
    value: '458',
    preprocessor: 'openpose',
    label: 'thibaud/controlnet-openpose-sdxl-1.0',
    description: CONTROLNET_DESCRIPTION,
    triggerwords: [],
    generatesettings: [scaleSetting('controlnet-openpose-sdxl-1.0')],
  },
  {
    value: '455',
    preprocessor: 'depth',
    label: 'diffusers/controlnet-depth-sdxl-1.0',
    description: CONTROLNET_DESCRIPTION,
    triggerwords: [],
    generatesettings: [scaleSetting('controlnet-depth-sdxl-1.0')],
  },
  {
    value: '454',
    preprocessor: 'canny',
    label: 'diffusers/controlnet-canny-sdxl-1.0',
    description: CONTROLNET_DESCRIPTION,
    triggerwords: [],
    generatesettings: [scaleSetting('controlnet-canny-sdxl-1.0')],
  },
];

/** In the seed's order, its duplicate EulerDiscreteScheduler dropped. */
export const SCHEDULERS = [
  'FlowMatchEulerDiscreteScheduler',
  'EulerDiscreteScheduler',
  'DDIMScheduler',
  'LMSDiscreteScheduler',
  'DPMSolverMultistepScheduler',
  'PNDMScheduler',
  'DDPMScheduler',
  'EulerAncestralDiscreteScheduler',
] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

export const DEFAULT_PROMPT =
  'olympic athlete, standing, wearing olympics uniform, Paris background, photorealistic, realistic, embodies the spirit of victory, captured by the official Olympic Games photographer 2024, the image is framed through photographer Steve McCurry, 2015, used a classic 50mm lens and illuminated by the brilliance of stadium floodlights, realistic';

export const DEFAULT_NEGATIVE_PROMPT =
  '(lowres, low quality, worst quality:1.2), (text:1.2), watermark, (frame:1.2), deformed, ugly, deformed eyes, blur, out of focus, blurry, mutation, mutated arms, deformed cat, deformed, photo, anthropomorphic cat, monochrome, photo, pet collar, gun, weapon, blue, 3d, drones, drone, buildings in background, green, nsfw';

const EXTENSION_NOTE = 'Likeness extension: not part of Wiro’s tool.';

const SEED_INPUTS: readonly InputSpec[] = [
  {
    id: 'selectedModel',
    type: 'select',
    catalog: 'checkpoint',
    label: 'select-model',
    help: 'select-model-help',
    required: false,
    default: '',
    defaultAliases: ['79'],
    options: CHECKPOINT_OPTIONS,
    note: 'Empty: the server’s default SDXL checkpoint.',
  },
  {
    id: 'selectedModelPrivate',
    type: 'select',
    catalog: 'checkpoint',
    label: 'select-model-private',
    help: 'select-model-private-help',
    required: false,
    default: '',
    options: [],
    openOptions: true,
    note: 'A checkpoint of your own project; used instead of selectedModel when both are given.',
  },
  {
    id: 'selectedLoraModel',
    type: 'select',
    catalog: 'lora',
    label: 'select-lora-model',
    help: 'select-lora-model-help',
    required: false,
    default: '',
    defaultAliases: ['80'],
    multiple: true,
    options: LORA_OPTIONS,
    note: 'One or several ids, as an array or comma-separated. Each LoRA’s scale is the body field named by its generate setting id.',
  },
  {
    id: 'selectedLoraModelPrivate',
    type: 'select',
    catalog: 'lora',
    label: 'select-lora-model-private',
    help: 'select-lora-model-private-help',
    required: false,
    default: '',
    options: [],
    openOptions: true,
  },
  {
    id: 'selectedLoraModelPrivateUrl',
    type: 'text',
    label: 'LoRA Model Url',
    help: 'You can provide a direct URL to a LoRA model (.safetensors). We’ll apply it during generation. You can also use links from platforms like Google Drive, AWS S3, or any publicly accessible file host.',
    required: false,
    default: '',
  },
  {
    id: 'inputImage',
    type: 'fileinput',
    label: 'input-image-url',
    help: 'input-image-url-help',
    required: true,
    note: 'The face photo: a file in inputImage, or a URL in inputImageUrl.',
  },
  {
    id: 'selectedControlnetModel',
    type: 'multiselect',
    catalog: 'controlnet',
    label: 'select-controlnet-model',
    help: 'select-controlnet-model-help',
    required: false,
    default: ['454'],
    options: CONTROLNET_OPTIONS,
    note: 'Absent: canny. [] or "": none. Each ControlNet’s scale is the body field named by its generate setting id.',
  },
  {
    id: 'prompt',
    type: 'textarea',
    label: 'prompt',
    help: 'prompt-help',
    required: true,
    default: DEFAULT_PROMPT,
  },
  {
    id: 'negativePrompt',
    type: 'textarea',
    label: 'negativeprompt',
    help: 'negativeprompt-help',
    required: false,
    default: DEFAULT_NEGATIVE_PROMPT,
  },
  { id: 'steps', type: 'number', label: 'inferencesteps', help: 'inferencesteps-help', required: false, default: 20, min: 1, max: 100, step: 1 },
  { id: 'scale', type: 'float', label: 'guidancescale', help: 'guidancescale-help', required: false, default: 5.0, min: 0, max: 30, step: 0.1 },
  {
    id: 'ip_adapter_scale',
    type: 'float',
    label: 'ip_adapter_scale',
    help: 'guidancescale-help',
    required: false,
    default: 0.8,
    min: 0,
    max: 1.5,
    step: 0.05,
  },
  { id: 'samples', type: 'number', label: 'samples', help: 'guidancescale-help', required: false, default: 1, min: 1, max: 8, step: 1 },
  {
    id: 'seed',
    type: 'text',
    format: 'uint64',
    label: 'seed',
    help: 'seed-help',
    required: false,
    default: '3572004920',
    note: 'A decimal integer from 0 to 18446744073709551615; empty: the default.',
  },
  {
    id: 'scheduler',
    type: 'select',
    label: 'scheduler',
    help: 'scheduler-help',
    required: false,
    default: 'DDIMScheduler',
    options: SCHEDULERS.map((name) => ({ value: name, label: name })),
  },
];

/** Ours: what users ask InstantID services for and Wiro's tool does not offer (issues 5 and 6). */
const EXTENSION_INPUTS: readonly InputSpec[] = [
  {
    id: 'inputPoseImage',
    type: 'fileinput',
    label: 'Pose image',
    help: 'A photo whose pose (face keypoints, ControlNet maps) and size the output follows. Without it, the face photo’s own pose is used.',
    required: false,
    advanced: true,
    extension: true,
    note: `${EXTENSION_NOTE} A file in inputPoseImage, or a URL in inputPoseImageUrl.`,
  },
  {
    id: 'width',
    type: 'number',
    label: 'Width',
    help: 'Output width in pixels; empty: follows the pose image (or the face photo). Rounded down to a multiple of 64.',
    required: false,
    advanced: true,
    extension: true,
    default: null,
    min: 64,
    max: 2048,
    step: 64,
    note: EXTENSION_NOTE,
  },
  {
    id: 'height',
    type: 'number',
    label: 'Height',
    help: 'Output height in pixels; empty: follows the pose image (or the face photo). Rounded down to a multiple of 64.',
    required: false,
    advanced: true,
    extension: true,
    default: null,
    min: 64,
    max: 2048,
    step: 64,
    note: EXTENSION_NOTE,
  },
  {
    id: 'identitynet_scale',
    type: 'float',
    label: 'IdentityNet strength',
    help: 'How strongly the face keypoints and identity steer the image (IdentityNet conditioning scale); higher is more faithful, lower more editable.',
    required: false,
    advanced: true,
    extension: true,
    default: 0.8,
    min: 0,
    max: 1.5,
    step: 0.05,
    note: EXTENSION_NOTE,
  },
];

export const instantIdControlnetLora: ToolDefinition = {
  id: '598',
  owner: 'wiro',
  slug: 'instant-id-controlnet-lora',
  title: 'InstantID ControlNet LoRA',
  description:
    'InstantID is a method to achieve ID-preserving generation with only single image. Alternatively, it can take an image to control the pose of the output.',
  cover: 'https://cdn.wiro.ai/uploads/models/wiro-instant-id-pose-cover.png',
  categories: ['tool', 'image-to-image', 'persistent'],
  tags: [],
  cps: '0.000585000000',
  inputs: [...SEED_INPUTS, ...EXTENSION_INPUTS],
};
