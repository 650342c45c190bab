// Reproducible noise: torch's CPU generator (bit-exact randn/rand) and A1111's Philox CUDA emulation.
export { parseSeed, MAX_SEED, type NoiseSource } from './seed.js';
export { TorchGenerator, TORCH_DEFAULT_SEED, shapeSize } from './torch-cpu.js';
export { PhiloxGenerator } from './philox.js';
