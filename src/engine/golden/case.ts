// A golden case folder: case.json (kind, config, tolerance, notes, ...) and io.safetensors (inputs and
// expected outputs), plus whatever weight files the case names. See ../shared/goldens/README.md.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { EngineError } from '../errors.js';
import { parsePythonJson } from '../formats/pyjson.js';
import { SafetensorsFile } from '../formats/safetensors.js';

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface GoldenCase {
  /** Absolute path of the case folder. */
  dir: string;
  name: string;
  kind: string;
  /** The whole parsed case.json. */
  json: Record<string, unknown>;
  config: Record<string, unknown>;
  tolerance: Tolerance;
  /** io.safetensors, opened lazily on first use. */
  io(): SafetensorsFile;
  /** A file of the case (or of a case it references, e.g. '../controlnet/weights.safetensors'). */
  file(relative: string): string;
  close(): void;
}

export function loadCase(dir: string): GoldenCase {
  const abs = resolve(dir);
  const casePath = join(abs, 'case.json');
  if (!existsSync(casePath)) throw new EngineError('bad_golden_case', `${abs} has no case.json`);
  let json: Record<string, unknown>;
  try {
    json = parsePythonJson(readFileSync(casePath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new EngineError('bad_golden_case', `${casePath} is not valid JSON: ${(err as Error).message}`);
  }
  const kind = json.kind;
  if (typeof kind !== 'string' || !/^[a-z0-9_]+$/.test(kind)) {
    throw new EngineError('bad_golden_case', `${casePath} has no valid "kind"`);
  }
  const tol = (json.tolerance ?? {}) as Record<string, unknown>;
  const tolerance: Tolerance = {
    atol: typeof tol.atol === 'number' ? tol.atol : 0,
    rtol: typeof tol.rtol === 'number' ? tol.rtol : 0,
  };
  let io: SafetensorsFile | undefined;
  return {
    dir: abs,
    name: basename(abs),
    kind,
    json,
    config: (json.config ?? {}) as Record<string, unknown>,
    tolerance,
    io() {
      io ??= SafetensorsFile.open(join(abs, 'io.safetensors'));
      return io;
    },
    file(relative: string) {
      const path = resolve(abs, relative);
      if (!existsSync(path)) throw new EngineError('bad_golden_case', `${abs}: referenced file ${relative} does not exist`);
      return path;
    },
    close() {
      io?.close();
      io = undefined;
    },
  };
}
