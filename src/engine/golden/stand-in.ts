// The scheduler goldens' stand-in model `eps = E` (../shared/goldens/README.md, "Stand-in model"): a
// parser for E's grammar and an evaluator with the reference's exact float32/float64 rounding.
//
//   E       := sum
//   sum     := product (('+' | '-') product)*          left to right, as Python
//   product := unary (('*' | '/') unary)*
//   unary   := '-' unary | '+' unary | atom            (Python: -a*b is (-a)*b)
//   atom    := NUMBER | 'model_input' | 't' | FN '(' E ')' | '(' E ')'     FN: tanh sin cos exp
//
// A sub-expression without model_input is a float64 scalar (Python floats, libm functions); one with it
// is a float32 tensor (torch). Mixed operations round the scalar to float32 first, then do one float32
// operation; scalar / tensor is torch's reciprocal-then-multiply (two roundings); unary minus is exact.

export type Formula =
  | { op: 'num'; value: number }
  | { op: 'model_input' }
  | { op: 't' }
  | { op: 'neg'; arg: Formula }
  | { op: 'fn'; fn: 'tanh' | 'sin' | 'cos' | 'exp'; arg: Formula }
  | { op: '+' | '-' | '*' | '/'; left: Formula; right: Formula };

const FUNCTIONS = ['tanh', 'sin', 'cos', 'exp'] as const;
type Fn = (typeof FUNCTIONS)[number];

type Token = { kind: 'num'; value: number; at: number } | { kind: 'name'; value: string; at: number } | { kind: 'sym'; value: string; at: number };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const re = /\s*(?:((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z_0-9]*)|([-+*/()]))/y;
  let i = 0;
  while (i < src.length) {
    if (/^\s*$/.test(src.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(src);
    if (!m) throw new Error(`stand-in formula: unexpected ${JSON.stringify(src.slice(i).trim()[0])} at ${i} in ${JSON.stringify(src)}`);
    const at = m.index + m[0].length - (m[1] ?? m[2] ?? m[3])!.length;
    if (m[1] !== undefined) out.push({ kind: 'num', value: Number(m[1]), at });
    else if (m[2] !== undefined) out.push({ kind: 'name', value: m[2], at });
    else out.push({ kind: 'sym', value: m[3]!, at });
    i = re.lastIndex;
  }
  return out;
}

/** Parses `eps = E` (or E alone) into a tree. Anything outside the grammar is an error naming where. */
export function parseFormula(text: string): Formula {
  const body = text.replace(/^\s*eps\s*=(?!=)/, '');
  const tokens = tokenize(body);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const fail = (what: string): never => {
    const t = peek();
    throw new Error(`stand-in formula ${JSON.stringify(text)}: ${what}${t ? ` at ${JSON.stringify(String(t.value))}` : ' at the end'}`);
  };
  const isSym = (v: string): boolean => { const t = peek(); return t?.kind === 'sym' && t.value === v; };
  const expect = (v: string): void => { if (!isSym(v)) fail(`expected ${v}`); pos++; };

  const sum = (): Formula => {
    let left = product();
    while (isSym('+') || isSym('-')) {
      const op = (tokens[pos++] as Token).value as '+' | '-';
      left = { op, left, right: product() };
    }
    return left;
  };
  const product = (): Formula => {
    let left = unary();
    while (isSym('*') || isSym('/')) {
      const op = (tokens[pos++] as Token).value as '*' | '/';
      left = { op, left, right: unary() };
    }
    return left;
  };
  const unary = (): Formula => {
    if (isSym('-')) { pos++; return { op: 'neg', arg: unary() }; }
    if (isSym('+')) { pos++; return unary(); }
    return atom();
  };
  const atom = (): Formula => {
    const t = peek();
    if (!t) return fail('expected a number, model_input, t, a function or (');
    if (t.kind === 'num') { pos++; return { op: 'num', value: t.value }; }
    if (t.kind === 'sym' && t.value === '(') {
      pos++;
      const e = sum();
      expect(')');
      return e;
    }
    if (t.kind === 'name') {
      pos++;
      if (t.value === 'model_input') return { op: 'model_input' };
      if (t.value === 't') return { op: 't' };
      if ((FUNCTIONS as readonly string[]).includes(t.value)) {
        expect('(');
        const arg = sum();
        expect(')');
        return { op: 'fn', fn: t.value as Fn, arg };
      }
      pos--;
      return fail(`unknown name (the grammar has model_input, t, ${FUNCTIONS.join(', ')})`);
    }
    return fail('expected a number, model_input, t, a function or (');
  };

  const tree = sum();
  if (pos < tokens.length) fail('unexpected token');
  return tree;
}

type Value = { scalar: number } | { tensor: Float32Array };

const f32 = Math.fround;
const LIBM: Record<Fn, (x: number) => number> = { tanh: Math.tanh, sin: Math.sin, cos: Math.cos, exp: Math.exp };

function scalarOp(op: '+' | '-' | '*' | '/', a: number, b: number): number {
  switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/': return a / b;
  }
}

function map(x: Float32Array, fn: (v: number) => number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = fn(x[i]!); // Float32Array stores round to float32
  return out;
}

function binary(op: '+' | '-' | '*' | '/', a: Value, b: Value): Value {
  if ('scalar' in a && 'scalar' in b) return { scalar: scalarOp(op, a.scalar, b.scalar) };
  if ('tensor' in a && 'tensor' in b) {
    const out = new Float32Array(a.tensor.length);
    for (let i = 0; i < out.length; i++) out[i] = scalarOp(op, a.tensor[i]!, b.tensor[i]!);
    return { tensor: out };
  }
  if ('tensor' in a) {
    const s = f32((b as { scalar: number }).scalar);
    return { tensor: map(a.tensor, (v) => scalarOp(op, v, s)) };
  }
  const s = f32(a.scalar);
  const t = (b as { tensor: Float32Array }).tensor;
  if (op === '/') return { tensor: map(t, (v) => f32(1 / v) * s) }; // torch: T.reciprocal() * s
  return { tensor: map(t, (v) => scalarOp(op, s, v)) };
}

function evaluate(e: Formula, modelInput: Float32Array, t: number): Value {
  switch (e.op) {
    case 'num': return { scalar: e.value };
    case 'model_input': return { tensor: modelInput };
    case 't': return { scalar: t };
    case 'neg': {
      const v = evaluate(e.arg, modelInput, t);
      return 'scalar' in v ? { scalar: -v.scalar } : { tensor: map(v.tensor, (x) => -x) };
    }
    case 'fn': {
      const v = evaluate(e.arg, modelInput, t);
      const fn = LIBM[e.fn];
      return 'scalar' in v ? { scalar: fn(v.scalar) } : { tensor: map(v.tensor, fn) };
    }
    default: return binary(e.op, evaluate(e.left, modelInput, t), evaluate(e.right, modelInput, t));
  }
}

function mentionsModelInput(e: Formula): boolean {
  switch (e.op) {
    case 'model_input': return true;
    case 'num': case 't': return false;
    case 'neg': case 'fn': return mentionsModelInput(e.arg);
    default: return mentionsModelInput(e.left) || mentionsModelInput(e.right);
  }
}

export type StandIn = (modelInput: Float32Array, t: number) => Float32Array;

/** The stand-in model of `eps = E`: (model_input, float(timestep)) → eps, float32. */
export function standInModel(text: unknown): StandIn {
  if (typeof text !== 'string') throw new Error(`the case's stand_in_model is not a formula: ${JSON.stringify(text)}`);
  const tree = parseFormula(text);
  if (!mentionsModelInput(tree)) throw new Error(`stand-in formula ${JSON.stringify(text)} does not use model_input: eps would be a scalar, not a tensor`);
  return (modelInput, t) => (evaluate(tree, modelInput, t) as { tensor: Float32Array }).tensor;
}
