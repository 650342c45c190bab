// A data-only unpickler: it understands the binary opcodes that torch state dicts use (protocol 2, plus
// the protocol 3-5 forms of the same things) and builds inert values. It never imports or calls Python:
// each GLOBAL is handed to the caller's allowlist, which either returns a pure TypeScript stand-in or
// refuses. Opcodes that only code-running pickles need (INST, OBJ, EXT*) are refused outright.
import { EngineError } from '../errors.js';

/** A value built by the pickle machine. Reader-specific objects (tensors, storages) extend PyExtension. */
export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyTuple | PyList | PyDict | PyGlobal | PyExtension;

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

/** A list, set or frozenset: state dicts never depend on the difference. */
export class PyList {
  constructor(readonly items: PyValue[] = []) {}
}

/** A dict or OrderedDict, in insertion order. `attributes` holds what BUILD set (OrderedDict._metadata). */
export class PyDict {
  readonly map = new Map<PyValue, PyValue>();
  attributes: PyValue = null;
}

/** What an allowlisted GLOBAL resolves to: a name and, when callable, a pure stand-in for the call. */
export class PyGlobal {
  constructor(
    readonly qualname: string,
    readonly call?: (args: readonly PyValue[]) => PyValue,
  ) {}
}

export abstract class PyExtension {
  abstract readonly description: string;
}

export interface UnpickleOptions {
  /** Names the file in messages. */
  source: string;
  /** Returns the stand-in for `module.name` or throws EngineError('unsafe_pickle'). */
  resolveGlobal(module: string, name: string): PyGlobal;
  /** Turns a BINPERSID id into a value (torch: a storage reference). */
  persistentLoad?(pid: PyValue): PyValue;
}

/** Python ints beyond this many bytes have no place in a weight file. */
const MAX_LONG_BYTES = 256;
/** A state dict makes ~7 containers per tensor; this bounds the memory a hostile pickle can claim. */
export const MAX_PICKLE_CONTAINERS = 5_000_000;

export function describe(value: PyValue): string {
  if (value === null) return 'None';
  if (value instanceof PyGlobal) return value.qualname;
  if (value instanceof PyExtension) return value.description;
  if (value instanceof Uint8Array) return 'bytes';
  if (typeof value === 'object') return value.constructor.name.replace(/^Py/, '').toLowerCase();
  return typeof value;
}

export function unpickle(bytes: Uint8Array, options: UnpickleOptions): PyValue {
  const { source } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8');
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  let opAt = 0;
  let containers = 0;

  const fail = (why: string): never => {
    throw new EngineError('bad_pickle', `${source} holds a malformed pickle: ${why} (at byte ${opAt})`);
  };
  const need = (n: number): number => {
    if (n < 0 || pos + n > bytes.length) fail('it ends in the middle of an opcode (truncated?)');
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => view.getUint8(need(1));
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    return v > BigInt(bytes.length) ? fail(`a length of ${v} bytes exceeds the pickle`) : Number(v);
  };
  const take = (n: number): Uint8Array => bytes.subarray(need(n), pos);
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('a text argument has no end of line (truncated?)');
    const text = utf8.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const pop = (): PyValue => (stack.length > 0 ? stack.pop()! : fail('an opcode pops an empty stack'));
  const top = (): PyValue => (stack.length > 0 ? stack[stack.length - 1]! : fail('an opcode reads an empty stack'));
  // Callers must not write `stack.push(f(popMark()))`: `stack` would be read before popMark swaps it.
  const popMark = (): PyValue[] => {
    const items = stack;
    stack = marks.pop() ?? fail('an opcode needs a MARK that was never set');
    return items;
  };
  const memoGet = (key: number): PyValue => (memo.has(key) ? memo.get(key)! : fail(`memo entry ${key} is read before it is written`));
  const signedLong = (raw: Uint8Array): number | bigint => {
    if (raw.length > MAX_LONG_BYTES) fail(`an integer of ${raw.length} bytes is too large for a weight file`);
    let v = 0n;
    for (let i = raw.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]!);
    if (raw.length > 0 && raw[raw.length - 1]! & 0x80) v -= 1n << BigInt(raw.length * 8);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (target: PyValue, items: readonly PyValue[]): void => {
    if (!(target instanceof PyDict)) fail(`SETITEM on a ${describe(target)}, not a dict`);
    if (items.length % 2 !== 0) fail('SETITEMS has an odd number of items');
    for (let i = 0; i < items.length; i += 2) (target as PyDict).map.set(items[i]!, items[i + 1]!);
  };
  const appendItems = (target: PyValue, items: readonly PyValue[]): void => {
    if (!(target instanceof PyList)) fail(`APPEND on a ${describe(target)}, not a list`);
    for (const item of items) (target as PyList).items.push(item); // not push(...items): that overflows on long lists
  };
  const callGlobal = (callable: PyValue, args: PyValue, opcode: string): PyValue => {
    if (!(callable instanceof PyGlobal) || !callable.call) return fail(`${opcode} calls a ${describe(callable)}, which is not callable`);
    if (!(args instanceof PyTuple)) return fail(`${opcode} passes a ${describe(args)} as arguments, not a tuple`);
    return callable.call(args.items);
  };
  const made = <T extends PyValue>(value: T): T => {
    if (++containers > MAX_PICKLE_CONTAINERS) fail(`it builds more than ${MAX_PICKLE_CONTAINERS} containers, far more than a state dict needs`);
    return value;
  };
  const refuse = (what: string): never => {
    throw new EngineError('unsafe_pickle', `refusing to load ${source}: ${what}, which a weight file never needs; nothing in it was run`);
  };

  for (;;) {
    opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: if (u8() > 5) fail('it uses a pickle protocol newer than 5'); break; // PROTO
      case 0x95: u64(); break; // FRAME: framing is only a hint for buffered readers
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length !== 0) fail(`it stops with ${stack.length} values and ${marks.length} open MARKs`);
        return stack[0]!;
      }
      case 0x28: marks.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x8a: stack.push(signedLong(take(u8()))); break; // LONG1
      case 0x8b: stack.push(signedLong(take(u32()))); break; // LONG4
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x8c: stack.push(utf8.decode(take(u8()))); break; // SHORT_BINUNICODE
      case 0x58: stack.push(utf8.decode(take(u32()))); break; // BINUNICODE
      case 0x8d: stack.push(utf8.decode(take(u64()))); break; // BINUNICODE8
      case 0x55: stack.push(latin1(take(u8()))); break; // SHORT_BINSTRING (Python 2 str)
      case 0x54: stack.push(latin1(take(view.getInt32(need(4), true)))); break; // BINSTRING
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x8e: stack.push(take(u64()).slice()); break; // BINBYTES8
      case 0x29: stack.push(made(new PyTuple([]))); break; // EMPTY_TUPLE
      case 0x74: { const items = popMark(); stack.push(made(new PyTuple(items))); break; } // TUPLE
      case 0x85: stack.push(made(new PyTuple([pop()]))); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(made(new PyTuple([a, b]))); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(made(new PyTuple([a, b, c]))); break; } // TUPLE3
      case 0x5d: stack.push(made(new PyList())); break; // EMPTY_LIST
      case 0x6c: { const items = popMark(); stack.push(made(new PyList(items))); break; } // LIST
      case 0x8f: stack.push(made(new PyList())); break; // EMPTY_SET
      case 0x91: { const items = popMark(); stack.push(made(new PyList(items))); break; } // FROZENSET
      case 0x61: { const item = pop(); appendItems(top(), [item]); break; } // APPEND
      case 0x65: case 0x90: { const items = popMark(); appendItems(top(), items); break; } // APPENDS, ADDITEMS
      case 0x7d: stack.push(made(new PyDict())); break; // EMPTY_DICT
      case 0x64: { const d = made(new PyDict()); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x63: { const module = line(); const name = line(); stack.push(options.resolveGlobal(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL takes two strings');
        stack.push(options.resolveGlobal(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const callable = pop(); stack.push(made(callGlobal(callable, args, 'REDUCE'))); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(made(callGlobal(cls, args, 'NEWOBJ'))); break; } // NEWOBJ
      case 0x62: { // BUILD: set state on an object
        const state = pop();
        const target = top();
        if (target instanceof PyDict) target.attributes = state;
        else if (!(target instanceof PyExtension)) fail(`BUILD on a ${describe(target)}`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('it references external data (BINPERSID) where none is expected');
        stack.push(options.persistentLoad!(pid));
        break;
      }
      case 0x69: { // INST: module and name inline, then a class instance is created and called
        const module = line();
        const name = line();
        options.resolveGlobal(module, name);
        refuse(`it creates a ${module}.${name} with the INST opcode`);
        break;
      }
      case 0x6f: { // OBJ: the class is the first item after MARK
        const items = popMark();
        refuse(`it creates a ${items.length > 0 ? describe(items[0]!) : 'object'} with the OBJ opcode`);
        break;
      }
      case 0x82: case 0x83: case 0x84:
        refuse('it loads a class from the copyreg extension registry (EXT opcode)');
        break;
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not one torch state dicts use`);
    }
  }
}

function latin1(raw: Uint8Array): string {
  let s = '';
  for (let i = 0; i < raw.length; i += 8192) s += String.fromCharCode(...raw.subarray(i, i + 8192));
  return s;
}
