// JSON as Python's json module writes it: also NaN, Infinity and -Infinity as bare tokens
// (diffusers' scheduler_config.json has "lambda_min_clipped": -Infinity). Tokens inside strings are untouched.
const NAN_SENTINEL = '\u0000NaN\u0000';

export function parsePythonJson(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      out += ch;
      if (ch === '\\') out += text[++i] ?? '';
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') {
      inString = true;
      out += ch;
    } else if (text.startsWith('Infinity', i)) {
      out += '1e999'; // JSON.parse gives Infinity
      i += 7;
    } else if (text.startsWith('NaN', i)) {
      out += JSON.stringify(NAN_SENTINEL);
      i += 2;
    } else {
      out += ch;
    }
  }
  return JSON.parse(out, (_key, value: unknown) => (value === NAN_SENTINEL ? NaN : value));
}
