// The engine-core benchmark (issue 3): runs the three parts, each printing its own table —
// safetensors read throughput vs a plain read, scheduler step overhead, ONNX build + session creation.
// Run: node --import tsx bench/engine-core.ts   (each part also runs alone: bench/<part>.ts)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const parts = [
  ['safetensors read throughput (1 GB file)', 'engine-core-formats.ts'],
  ['scheduler step overhead (1x4x128x128 latent)', 'schedulers.ts'],
  ['ONNX build + session creation (1,000-node graph)', 'engine-core-onnx.ts'],
] as const;

let failed = 0;
for (const [title, file] of parts) {
  console.log(`\n## ${title}\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(file, import.meta.url))], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
