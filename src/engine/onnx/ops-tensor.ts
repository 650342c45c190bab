// The tensor half of the vocabulary: arithmetic, elementwise functions and layout ops, each one
// ONNX node (opset 21 forms: axes, shapes and split sizes are int64 inputs, not attributes).
import { attr, GraphCore, Tensor, type Attr } from './graph-core.js';
import type { DType } from './dtype.js';
import {
  UNKNOWN, broadcast, concatShape, divDim, matmulShape, normAxis, reshapeShape, sliceDim,
  transposeShape, type Dim,
} from './shape.js';

/** A tensor, or a number that becomes a scalar constant of the other operand's dtype. */
export type Operand = Tensor | number;

export class TensorOps extends GraphCore {
  // ---- arithmetic (numpy broadcasting) ----
  add(a: Operand, b: Operand): Tensor { return this.binary('Add', a, b); }
  sub(a: Operand, b: Operand): Tensor { return this.binary('Sub', a, b); }
  mul(a: Operand, b: Operand): Tensor { return this.binary('Mul', a, b); }
  div(a: Operand, b: Operand): Tensor { return this.binary('Div', a, b); }
  pow(a: Operand, b: Operand): Tensor { return this.binary('Pow', a, b); }

  // ---- elementwise functions ----
  sqrt(x: Tensor): Tensor { return this.unary('Sqrt', x); }
  erf(x: Tensor): Tensor { return this.unary('Erf', x); }
  exp(x: Tensor): Tensor { return this.unary('Exp', x); }
  cos(x: Tensor): Tensor { return this.unary('Cos', x); }
  sin(x: Tensor): Tensor { return this.unary('Sin', x); }
  neg(x: Tensor): Tensor { return this.unary('Neg', x); }
  sigmoid(x: Tensor): Tensor { return this.unary('Sigmoid', x); }
  tanh(x: Tensor): Tensor { return this.unary('Tanh', x); }

  /** numpy.matmul: [.., M, K] @ [.., K, N] → [.., M, N]. */
  matmul(a: Tensor, b: Tensor): Tensor {
    this.sameType('MatMul', a, b);
    return this.emit1('MatMul', [a, b], a.dtype, matmulShape(a.shape, b.shape));
  }

  cast(x: Tensor, dtype: DType): Tensor {
    return this.castTo(x, dtype);
  }

  // ---- layout ----

  /** ONNX Reshape: 0 keeps the input's dim, -1 is inferred. A tensor shape gives unknown dims. */
  reshape(x: Tensor, shape: readonly number[] | Tensor): Tensor {
    if (shape instanceof Tensor) {
      const rank = shape.shape[0];
      if (typeof rank !== 'number') throw new Error(`reshape: shape tensor ${shape} needs a static length`);
      return this.emit1('Reshape', [x, shape], x.dtype, new Array<Dim>(rank).fill(UNKNOWN));
    }
    return this.emit1('Reshape', [x, this.ints(shape)], x.dtype, reshapeShape(x.shape, shape));
  }

  transpose(x: Tensor, perm: readonly number[]): Tensor {
    return this.emit1('Transpose', [x], x.dtype, transposeShape(x.shape, perm), { perm: attr.ints(perm) });
  }

  concat(xs: readonly Tensor[], axis: number): Tensor {
    const first = xs[0];
    if (!first) throw new Error('concat of nothing');
    for (const x of xs) this.sameType('Concat', first, x);
    return this.emit1('Concat', xs, first.dtype, concatShape(xs.map((x) => x.shape), axis), { axis: attr.int(axis) });
  }

  /** Splits along `axis` into `parts` equal pieces, or pieces of the given sizes. */
  split(x: Tensor, parts: number | readonly number[], axis: number): Tensor[] {
    const a = normAxis(axis, x.rank);
    const dim = x.shape[a]!;
    let sizes: readonly number[] | undefined;
    if (typeof parts !== 'number') sizes = parts;
    else if (typeof dim === 'number') {
      if (dim % parts !== 0) throw new Error(`split: ${x} axis ${axis} is not divisible into ${parts}`);
      sizes = new Array<number>(parts).fill(dim / parts);
    }
    if (sizes && typeof dim === 'number' && sizes.reduce((s, v) => s + v, 0) !== dim) {
      throw new Error(`split: sizes ${sizes.join('+')} do not add up to ${dim} in ${x}`);
    }
    const count = sizes ? sizes.length : (parts as number);
    const outs = Array.from({ length: count }, (_, i) => {
      const shape = [...x.shape];
      shape[a] = sizes ? sizes[i]! : divDim(dim, count);
      return { dtype: x.dtype, shape };
    });
    return sizes
      ? this.emit('Split', [x, this.ints(sizes)], outs, { axis: attr.int(a) })
      : this.emit('Split', [x], outs, { axis: attr.int(a), num_outputs: attr.int(count) });
  }

  /** ONNX Slice with numeric bounds (negative counts from the end; use a large end for 'to the end'). */
  slice(x: Tensor, starts: readonly number[], ends: readonly number[], axes?: readonly number[], steps?: readonly number[]): Tensor {
    const ax = axes ?? starts.map((_, i) => i);
    const st = steps ?? starts.map(() => 1);
    const shape = [...x.shape];
    ax.forEach((axis, i) => {
      const a = normAxis(axis, x.rank);
      shape[a] = sliceDim(shape[a]!, starts[i]!, ends[i]!, st[i]!);
    });
    const inputs = [x, this.ints(starts), this.ints(ends), this.ints(ax), this.ints(st)];
    return this.emit1('Slice', inputs, x.dtype, shape);
  }

  /** Picks entries along `axis`; a number index drops the axis, an array keeps it. */
  gather(x: Tensor, indices: Tensor | number | readonly number[], axis = 0): Tensor {
    const a = normAxis(axis, x.rank);
    const idx = indices instanceof Tensor ? indices
      : typeof indices === 'number' ? this.constant(indices, { dtype: 'int64', shape: [] })
        : this.ints(indices);
    const shape = [...x.shape.slice(0, a), ...idx.shape, ...x.shape.slice(a + 1)];
    return this.emit1('Gather', [x, idx], x.dtype, shape, { axis: attr.int(a) });
  }

  unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
    const rank = x.rank + axes.length;
    const at = new Set(axes.map((a) => normAxis(a, rank)));
    const shape: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(at.has(i) ? 1 : x.shape[j++]!);
    return this.emit1('Unsqueeze', [x, this.ints(axes)], x.dtype, shape);
  }

  squeeze(x: Tensor, axes: readonly number[]): Tensor {
    const at = new Set(axes.map((a) => normAxis(a, x.rank)));
    for (const a of at) {
      const d = x.shape[a];
      if (typeof d === 'number' && d !== 1) throw new Error(`squeeze: axis ${a} of ${x} is not 1`);
    }
    return this.emit1('Squeeze', [x, this.ints(axes)], x.dtype, x.shape.filter((_, i) => !at.has(i)));
  }

  /** Broadcasts `x` to `shape` (numpy rules; dims of 1 in `shape` keep x's dim). */
  expand(x: Tensor, shape: readonly number[]): Tensor {
    return this.emit1('Expand', [x, this.ints(shape)], x.dtype, broadcast(x.shape, shape));
  }

  /** cond ? a : b, elementwise with broadcasting. */
  where(cond: Tensor, a: Operand, b: Operand): Tensor {
    if (cond.dtype !== 'bool') throw new Error(`where: condition ${cond} must be bool`);
    const [x, y] = this.operands('Where', a, b);
    return this.emit1('Where', [cond, x, y], x.dtype, broadcast(cond.shape, x.shape, y.shape));
  }

  reduceMean(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
    const at = new Set(axes.map((a) => normAxis(a, x.rank)));
    const shape = keepdims ? x.shape.map((d, i) => (at.has(i) ? 1 : d)) : x.shape.filter((_, i) => !at.has(i));
    return this.emit1('ReduceMean', [x, this.ints(axes)], x.dtype, shape, { keepdims: attr.int(keepdims ? 1 : 0) });
  }

  /** The runtime shape of `x` as an int64 vector. */
  shapeOf(x: Tensor): Tensor {
    return this.emit1('Shape', [x], 'int64', [x.rank]);
  }

  // ---- helpers ----

  protected unary(op: string, x: Tensor, attrs: Record<string, Attr> = {}): Tensor {
    return this.emit1(op, [x], x.dtype, x.shape, attrs);
  }

  protected binary(op: string, a: Operand, b: Operand): Tensor {
    const [x, y] = this.operands(op, a, b);
    return this.emit1(op, [x, y], x.dtype, broadcast(x.shape, y.shape));
  }

  protected operands(op: string, a: Operand, b: Operand): [Tensor, Tensor] {
    if (typeof a === 'number' && typeof b === 'number') throw new Error(`${op}: at least one operand must be a tensor`);
    const like = (typeof a === 'number' ? b : a) as Tensor;
    const x = typeof a === 'number' ? this.constant(a, { dtype: like.dtype }) : a;
    const y = typeof b === 'number' ? this.constant(b, { dtype: like.dtype }) : b;
    this.sameType(op, x, y);
    return [x, y];
  }

  protected sameType(op: string, a: Tensor, b: Tensor): void {
    if (a.dtype !== b.dtype) throw new Error(`${op}: ${a} and ${b} have different dtypes`);
  }
}
