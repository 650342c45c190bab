// ModelProto encoding: field numbers as onnx.proto, inline vs external data, file splitting.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder } from '../../../src/engine/onnx/graph.js';
import { decodeModelProto } from '../../../src/engine/onnx/onnx-proto.js';
import { encodeModel, writeModel } from '../../../src/engine/onnx/serialize.js';
import { createSession } from '../../../src/engine/onnx/session.js';
import { assertClose, f32, gelu, linear, map, randn } from '../../helpers/reference-ops.js';
import { feed } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'likeness-onnx-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const x = randn([2, 16], 91);
const w1 = randn([64, 16], 92);
const w2 = randn([8, 64], 93);

function mlp(): GraphBuilder {
  const g = new GraphBuilder({ name: 'mlp' });
  const h = g.gelu(g.linear(g.input('x', ['B', 16]), g.param('fc1.weight', [64, 16], f32(w1))));
  g.output(g.linear(h, g.param('fc2.weight', [8, 64], () => f32(w2))), 'y');
  return g;
}
const expected = linear(map(linear(x, w1), gelu), w2);

test('the encoded model decodes with onnx.proto field numbers', async () => {
  const bytes = await encodeModel(mlp().build());
  const m = decodeModelProto(bytes);
  assert.equal(m.ir_version, 10);
  assert.deepEqual(m.opset_import.map((o) => [o.domain ?? '', o.version]), [['', 21]]);
  assert.equal(m.graph.name, 'mlp');
  assert.deepEqual(m.graph.input.map((i) => i.name), ['x']);
  assert.deepEqual(m.graph.input[0]!.type.tensor_type.shape.dim, [{ dim_param: 'B' }, { dim_value: 16 }]);
  assert.deepEqual(m.graph.output.map((o) => o.name), ['y']);
  assert.deepEqual(m.graph.initializer.map((i) => [i.name, i.dims]), [['fc1.weight::T', [16, 64]], ['fc2.weight::T', [64, 8]]]);
  assert.equal(m.graph.initializer[0]!.raw_data!.byteLength, 16 * 64 * 4);
  const gelu = m.graph.node.find((n) => n.op_type === 'Gelu')!;
  assert.equal(new TextDecoder().decode(gelu.attribute[0]!.s), 'none');
});

test('zero-valued attributes are written (proto2 presence)', async () => {
  const g = new GraphBuilder();
  g.output(g.reduceMean(g.input('x', [2, 3]), [1], false), 'y');
  const m = decodeModelProto(await encodeModel(g.build()));
  const attribute = m.graph.node.find((n) => n.op_type === 'ReduceMean')!.attribute[0]!;
  assert.equal(attribute.name, 'keepdims');
  assert.equal(attribute.i, 0);
  assert.ok(Object.hasOwn(attribute, 'i'));
});

test('small models are written inline and run from the file', async () => {
  const path = join(dir, 'inline.onnx');
  const written = await writeModel(mlp().build(), path);
  assert.deepEqual(written.dataFiles, []);
  const session = await createSession(path, { intraOpThreads: 1 });
  const r = await session.run({ x: feed(x) });
  await session.dispose();
  assertClose(r['y']!.data as Float32Array, expected, { atol: 1e-4 });
});

test('external data round trip: weights beside the model, aligned, loaded from the path', async () => {
  const sub = join(dir, 'external');
  rmSync(sub, { recursive: true, force: true });
  const { mkdirSync } = await import('node:fs');
  mkdirSync(sub);
  const path = join(sub, 'model.onnx');
  const written = await writeModel(mlp().build(), path, { externalDataThreshold: 0, minExternalBytes: 0 });
  assert.deepEqual(readdirSync(sub).sort(), ['model.onnx', 'model.onnx.data']);
  const m = decodeModelProto(readFileSync(path));
  for (const init of m.graph.initializer) {
    assert.equal(init.data_location, 1);
    assert.equal(init.raw_data, undefined);
    const entries = Object.fromEntries(init.external_data!.map((e) => [e.key, e.value]));
    assert.equal(entries['location'], 'model.onnx.data');
    assert.equal(Number(entries['offset']) % 4096, 0);
  }
  assert.equal(written.dataBytes, (16 * 64 + 64 * 8) * 4);
  const session = await createSession(path, { intraOpThreads: 1 });
  const r = await session.run({ x: feed(x) });
  await session.dispose();
  assertClose(r['y']!.data as Float32Array, expected, { atol: 1e-4 });
});

test('external data splits into several files under the size cap', async () => {
  const sub = join(dir, 'split');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(sub, { recursive: true });
  const path = join(sub, 'model.onnx');
  const written = await writeModel(mlp().build(), path, { externalDataThreshold: 0, minExternalBytes: 0, maxDataFileBytes: 4096 });
  assert.equal(written.dataFiles.length, 2);
  for (const f of written.dataFiles) assert.ok(statSync(f).size <= 4096);
  const session = await createSession(path, { intraOpThreads: 1 });
  const r = await session.run({ x: feed(x) });
  await session.dispose();
  assertClose(r['y']!.data as Float32Array, expected, { atol: 1e-4 });
});

test('a model with external data loaded from bytes fails with a clear error', async () => {
  const path = join(dir, 'external', 'model.onnx');
  await assert.rejects(createSession(readFileSync(path), { intraOpThreads: 1 }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ort_session_failed');
    assert.match(e.message, /could not create an ONNX Runtime session \(cpu\)/);
    return true;
  });
});
