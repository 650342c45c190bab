// Evaluates golden case folders. Each kind's evaluator lives in kinds/<kind>.ts and exports `evaluate`;
// a kind without one is NOT IMPLEMENTED, never a pass.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadCase, type GoldenCase } from './case.js';
import type { Check } from './compare.js';

export type Evaluator = (c: GoldenCase) => Promise<Check[]> | Check[];

export type CaseStatus = 'PASS' | 'FAIL' | 'NOT IMPLEMENTED' | 'ERROR';

export interface CaseResult {
  dir: string;
  name: string;
  kind: string;
  status: CaseStatus;
  checks: Check[];
  error?: string;
}

function evaluatorPath(kind: string): string | undefined {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const path = fileURLToPath(new URL(`./kinds/${kind}${ext}`, import.meta.url));
  return existsSync(path) ? path : undefined;
}

export function isImplemented(kind: string): boolean {
  return /^[a-z0-9_]+$/.test(kind) && evaluatorPath(kind) !== undefined;
}

export async function evaluateCase(dir: string): Promise<CaseResult> {
  let c: GoldenCase;
  try {
    c = loadCase(dir);
  } catch (err) {
    return { dir, name: dir, kind: '?', status: 'ERROR', checks: [], error: (err as Error).message };
  }
  const base = { dir: c.dir, name: c.name, kind: c.kind };
  const path = evaluatorPath(c.kind);
  if (!path) return { ...base, status: 'NOT IMPLEMENTED', checks: [] };
  try {
    const mod = (await import(pathToFileURL(path).href)) as { evaluate: Evaluator };
    const checks = await mod.evaluate(c);
    if (checks.length === 0) return { ...base, status: 'ERROR', checks, error: 'the evaluator checked nothing' };
    checks.push(...unjudgedOutputs(c, checks));
    return { ...base, status: checks.every((k) => k.pass) ? 'PASS' : 'FAIL', checks };
  } catch (err) {
    return { ...base, status: 'ERROR', checks: [], error: (err as Error).stack ?? String(err) };
  } finally {
    c.close();
  }
}

/**
 * Every output case.json lists must be judged by some check (named after it, or naming it as a
 * prefix, suffix or part, as in `prompt0.tokens` or `n20.step00.noise = TorchGenerator(…)`); an
 * output nobody checked fails. An evaluator that deliberately leaves one out says so in a check of that name.
 */
function unjudgedOutputs(c: GoldenCase, checks: readonly Check[]): Check[] {
  const outputs = Array.isArray(c.json.outputs) ? (c.json.outputs as unknown[]).filter((o): o is string => typeof o === 'string') : [];
  const names = checks.map((k) => k.name);
  const judged = (o: string) => names.some((n) => n === o || n.startsWith(`${o} `) || n.startsWith(`${o}.`) || n.endsWith(`.${o}`) || n.split(/[\s=,()]+/).includes(o));
  return outputs.filter((o) => !judged(o)).map((o) => ({ name: o, maxAbsError: Infinity, allowed: 0, pass: false, note: 'listed in case.json outputs but not checked' }));
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

/** One block per case: each output's error against what its tolerance allows, then the verdict. */
export function formatResult(r: CaseResult, verbose = false): string {
  const lines: string[] = [];
  const failing = r.checks.filter((k) => !k.pass);
  const shown = verbose ? r.checks : failing.length ? failing : r.checks.slice(0, 0);
  for (const k of shown) {
    lines.push(`  ${k.pass ? 'ok  ' : 'FAIL'} ${k.name}: max-abs ${fmt(k.maxAbsError)} <= ${fmt(k.allowed)}${k.note ? ` (${k.note})` : ''}`);
  }
  const worst = r.checks.reduce((m, k) => Math.max(m, k.allowed > 0 ? k.maxAbsError / k.allowed : k.maxAbsError > 0 ? Infinity : 0), 0);
  const summary = r.checks.length ? `${r.checks.length} outputs, worst at ${(worst * 100).toFixed(1)}% of tolerance` : '';
  lines.unshift(`${r.status.padEnd(15)} ${r.name} [${r.kind}] ${summary}${r.error ? `\n  ${r.error.split('\n').join('\n  ')}` : ''}`);
  return lines.join('\n');
}
