// The scheduler goldens' stand-in formula (../shared/goldens/README.md "Stand-in model"): Python
// precedence and associativity, scalar-vs-tensor kinds, and the exact float32/float64 rounding rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFormula, standInModel, type Formula } from '../../src/engine/golden/stand-in.js';

const f = Math.fround;
const m = Float32Array.of(-2.5, -0.7, -1e-3, 0, 0.1, 0.3, 1.7, 3.25, 123.456);

/** The tree as a fully parenthesised string. */
function show(e: Formula): string {
  switch (e.op) {
    case 'num': return String(e.value);
    case 'model_input': return 'm';
    case 't': return 't';
    case 'neg': return `(-${show(e.arg)})`;
    case 'fn': return `${e.fn}(${show(e.arg)})`;
    default: return `(${show(e.left)} ${e.op} ${show(e.right)})`;
  }
}

test('Python precedence; equal precedence associates left to right; unary minus binds tighter than *', () => {
  assert.equal(show(parseFormula('eps = model_input - t + 2')), '((m - t) + 2)');
  assert.equal(show(parseFormula('0.3*tanh(model_input)*2')), '((0.3 * tanh(m)) * 2)');
  assert.equal(show(parseFormula('1/t/2*model_input')), '(((1 / t) / 2) * m)');
  assert.equal(show(parseFormula('-model_input*2 - -t')), '(((-m) * 2) - (-t))');
  assert.equal(show(parseFormula('2*(model_input + 1e-2) - .5E1/(t)')), '((2 * (m + 0.01)) - (5 / t))');
  assert.equal(show(parseFormula('exp(sin(cos(model_input)))')), 'exp(sin(cos(m)))');
});

test('the README worked example: fl32(fl32(fl32(0.3)·tanh32(m)) + fl32(0.05·cos64(t/100)))', () => {
  const eps = standInModel('eps = 0.3*tanh(model_input) + 0.05*cos(t/100)');
  for (const t of [951, 1, 0.5]) {
    const shift = f(0.05 * Math.cos(t / 100));
    const got = eps(m, t);
    m.forEach((x, i) => assert.equal(got[i], f(f(f(0.3) * f(Math.tanh(x))) + shift), `t=${t}, m=${x}`));
  }
});

test('scalar sub-expressions stay float64 until they meet the tensor, then round to float32 once', () => {
  const eps = standInModel('model_input*(0.1 + 0.2) - t*t/3e5');
  const t = 777;
  const s = 0.1 + 0.2; // 0.30000000000000004 in float64, then fl32
  const got = eps(m, t);
  m.forEach((x, i) => assert.equal(got[i], f(f(x * f(s)) - f((t * t) / 3e5))));
});

test('scalar / tensor is reciprocal then multiply (two roundings); tensor / scalar one division', () => {
  const wide = new Float32Array(200).map((_, i) => f(0.37 + i * 0.0137));
  const rdiv = standInModel('3/model_input')(wide, 0);
  const div = standInModel('model_input/3')(wide, 0);
  let differsFromOneRounding = 0;
  wide.forEach((x, i) => {
    assert.equal(rdiv[i], f(f(1 / x) * 3));
    assert.equal(div[i], f(x / 3));
    if (rdiv[i] !== f(3 / x)) differsFromOneRounding++;
  });
  assert.ok(differsFromOneRounding > 0, 'the two-rounding rule is observable on these inputs');
});

test('tensor with tensor is elementwise float32; functions of tensors are float32; unary minus is exact', () => {
  const got = standInModel('sin(model_input)*model_input - -exp(-model_input/4)')(m, 10);
  m.forEach((x, i) => {
    const e = f(Math.exp(f(-x / 4)));
    assert.equal(got[i], f(f(f(Math.sin(x)) * x) - -e));
  });
});

test('formulas outside the grammar are refused with where it went wrong', () => {
  assert.throws(() => standInModel('0.3*tanh(x)'), /unknown name.*"x"/);
  assert.throws(() => standInModel('tanh(model_input'), /expected \)/);
  assert.throws(() => standInModel('model_input 2'), /unexpected token.*"2"/);
  assert.throws(() => standInModel('model_input ** 2'), /expected a number/);
  assert.throws(() => standInModel('0.3*cos(t/100)'), /does not use model_input/);
  assert.throws(() => standInModel('log(model_input)'), /unknown name.*"log"/);
  assert.throws(() => standInModel(42), /not a formula/);
});
