import { FileFormatError } from './host-tensor.js';

/**
 * A small, safe Python unpickler (protocols 0–5 as far as torch.save and NumPy use them). It never runs code:
 * every global a pickle names (GLOBAL / STACK_GLOBAL) must be present in the caller's `globals` table, and
 * anything else is an error that names the global.
 *
 * How Python values come out:
 * - None → `null`; bool → boolean; float → number;
 * - int → number when it is a safe integer (|n| ≤ 2^53 − 1), else bigint;
 * - str → string; bytes / bytearray → Uint8Array (a copy); Python 2 `str` (BINSTRING) → string (latin-1);
 * - list → a plain (mutable) array; tuple → a frozen array (see `isTuple`);
 * - dict → `Map` (keys as they decode: strings, numbers, bigints, …; tuple keys compare by identity);
 * - set / frozenset → `Set`;
 * - a global → whatever the `globals` table holds for `module.name`;
 * - REDUCE / NEWOBJ / NEWOBJ_EX call that value (it must be a function) with the positional arguments spread;
 *   NEWOBJ_EX appends the keyword arguments as a trailing `Map` when there are any;
 * - BUILD calls `obj.__setstate__(state)` when the object has such a method; otherwise a plain object gets the
 *   state's entries as own properties, and a `Map` (dict subclass, e.g. OrderedDict) keeps them as Python
 *   attributes, readable with `pyAttributes` (they are not dict items: `state_dict()._metadata` lands there).
 */

export class PickleError extends Error {
  constructor(
    message: string,
    /** Whether the message already says at which byte / opcode it happened. */
    readonly located = false,
  ) {
    super(message);
    this.name = 'PickleError';
  }
}

/** A value in the globals table: a function for callables (classes, factories), anything else for constants. */
export type PyGlobals = ReadonlyMap<string, unknown> | Readonly<Record<string, unknown>>;

export interface UnpickleOptions {
  /** `module.name` → value; e.g. `'collections.OrderedDict': () => new Map()`. */
  globals?: PyGlobals;
  /** Called for PERSID / BINPERSID with the persistent id (a string for PERSID, any value for BINPERSID). */
  persistentLoad?: (pid: unknown) => unknown;
  /** Byte offset at which the pickle starts (default 0). */
  offset?: number;
  /** When given, every problem is thrown as a FileFormatError naming this file. */
  file?: string;
}

export interface UnpickleResult {
  value: unknown;
  /** Absolute offset just past the STOP opcode: where a following pickle would start. */
  end: number;
  /** Bytes this pickle occupied (`end - offset`). */
  bytesRead: number;
}

/** True for a value that was a Python tuple. */
export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

const attributes = new WeakMap<object, Map<unknown, unknown>>();

/** Python attributes BUILD set on a dict-like (`Map`) object, e.g. `_metadata` of a torch state dict. */
export function pyAttributes(obj: object): ReadonlyMap<unknown, unknown> | undefined {
  return attributes.get(obj);
}

/** A generic Python object, for callers that want to accept some class without interpreting it. */
export class PyObject {
  state: unknown = undefined;
  constructor(
    readonly className: string,
    readonly args: readonly unknown[],
  ) {}
  __setstate__(state: unknown): void {
    this.state = state;
  }
}

/** A globals-table entry that builds `PyObject`s: `{'foo.Bar': pyClass('foo.Bar')}`. */
export function pyClass(name: string): (...args: unknown[]) => PyObject {
  return (...args: unknown[]) => new PyObject(name, args);
}

// Opcodes (pickletools names).
const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  FLOAT: 0x46,
  INT: 0x49,
  BININT: 0x4a,
  BININT1: 0x4b,
  LONG: 0x4c,
  BININT2: 0x4d,
  NONE: 0x4e,
  PERSID: 0x50,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55,
  BINUNICODE: 0x58,
  APPEND: 0x61,
  BUILD: 0x62,
  GLOBAL: 0x63,
  DICT: 0x64,
  EMPTY_DICT: 0x7d,
  APPENDS: 0x65,
  GET: 0x67,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  LIST: 0x6c,
  EMPTY_LIST: 0x5d,
  PUT: 0x70,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  EMPTY_TUPLE: 0x29,
  SETITEMS: 0x75,
  BINFLOAT: 0x47,
  PROTO: 0x80,
  NEWOBJ: 0x81,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  LONG4: 0x8b,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  NEWOBJ_EX: 0x92,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
  BYTEARRAY8: 0x96,
  NEXT_BUFFER: 0x97,
  READONLY_BUFFER: 0x98,
} as const;

const OP_NAME = new Map<number, string>(Object.entries(OP).map(([k, v]) => [v, k]));
const UNSUPPORTED: Record<number, string> = {
  83: 'STRING (protocol 0 text string)',
  86: 'UNICODE (protocol 0 text string)',
  105: 'INST (protocol 0 object)',
  111: 'OBJ (protocol 0 object)',
  130: 'EXT1 (extension registry)',
  131: 'EXT2 (extension registry)',
  132: 'EXT4 (extension registry)',
  151: 'NEXT_BUFFER (out-of-band buffers)',
};

const utf8 = new TextDecoder('utf-8');

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (typeof v === 'function') return `function ${v.name || '(anonymous)'}`;
  if (isTuple(v)) return `tuple of ${v.length}`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof Uint8Array) return `bytes of ${v.length}`;
  if (typeof v === 'string') return `str ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v;
}

/** Little-endian two's complement bytes → number (when safe) or bigint. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let hex = '';
  for (let i = b.length - 1; i >= 0; i--) hex += b[i]!.toString(16).padStart(2, '0');
  let v = BigInt(`0x${hex}`);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return normInt(v);
}

function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string): number | bigint {
  if (!/^[+-]?\d+$/.test(s)) throw new PickleError(`invalid integer literal ${JSON.stringify(s)}`);
  return normInt(BigInt(s));
}

/**
 * Decode one pickle starting at `opts.offset` and stop at its STOP opcode.
 * Throws PickleError (or FileFormatError when `opts.file` is set) on truncated input, unknown opcodes,
 * unknown globals and malformed structure.
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): UnpickleResult {
  const start = opts.offset ?? 0;
  try {
    return new Unpickler(bytes, start, opts).run();
  } catch (e) {
    if (opts.file !== undefined && !(e instanceof FileFormatError)) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new FileFormatError(opts.file, `pickle: ${msg}`);
    }
    throw e;
  }
}

class Unpickler {
  private pos: number;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly names = new WeakMap<object, string>();
  private readonly dv: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly start: number,
    private readonly opts: UnpickleOptions,
  ) {
    this.pos = start;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (!Number.isInteger(start) || start < 0 || start > buf.length) {
      throw new PickleError(`start offset ${start} is outside the data (${buf.length} bytes)`);
    }
  }

  run(): UnpickleResult {
    const buf = this.buf;
    for (;;) {
      if (this.pos >= buf.length) {
        throw new PickleError(
          `truncated: reached the end of the data at byte ${this.pos} before the STOP opcode`,
          true,
        );
      }
      const opPos = this.pos;
      const op = buf[this.pos++]!;
      try {
        if (op === OP.STOP) {
          const value = this.pop();
          return { value, end: this.pos, bytesRead: this.pos - this.start };
        }
        this.step(op);
      } catch (e) {
        if (e instanceof PickleError && !e.located) {
          const name = OP_NAME.get(op);
          throw new PickleError(`${name ? `${name} ` : ''}at byte ${opPos}: ${e.message}`, true);
        }
        throw e;
      }
    }
  }

  // --- reading primitives -------------------------------------------------------------------------------------

  private need(n: number): void {
    if (n > this.buf.length - this.pos) {
      throw new PickleError(`truncated: needs ${n} bytes, only ${this.buf.length - this.pos} left`);
    }
  }
  private u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  private u16(): number {
    this.need(2);
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.dv.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(this.buf.length)) throw new PickleError(`truncated: length ${v} exceeds the data size`);
    return Number(v);
  }
  /** A copy of the next n bytes (the input may be a Buffer, whose slice() is a view). */
  private takeCopy(n: number): Uint8Array {
    const out = new Uint8Array(n);
    out.set(this.take(n));
    return out;
  }
  private take(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private line(): string {
    const nl = this.buf.indexOf(0x0a, this.pos);
    if (nl < 0) throw new PickleError('truncated: missing end of line');
    const s = latin1(this.buf.subarray(this.pos, nl));
    this.pos = nl + 1;
    return s;
  }

  // --- stack helpers ------------------------------------------------------------------------------------------

  private pop(): unknown {
    if (this.stack.length === 0) throw new PickleError('stack underflow');
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) throw new PickleError('stack underflow');
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (prev === undefined) throw new PickleError('no MARK on the stack');
    this.stack = prev;
    return items;
  }
  private push(v: unknown): void {
    this.stack.push(v);
  }

  private memoGet(i: number): unknown {
    if (!this.memo.has(i)) throw new PickleError(`memo key ${i} was never stored`);
    return this.memo.get(i);
  }

  private resolveGlobal(module: string, name: string): unknown {
    const full = `${module}.${name}`;
    const g = this.opts.globals;
    let found = false;
    let v: unknown;
    if (g instanceof Map) {
      found = g.has(full);
      v = g.get(full);
    } else if (g !== undefined && Object.hasOwn(g, full)) {
      found = true;
      v = (g as Record<string, unknown>)[full];
    }
    if (!found) throw new PickleError(`unsupported Python global '${full}' (not in the list of allowed globals)`);
    if ((typeof v === 'function' || (typeof v === 'object' && v !== null)) && !this.names.has(v as object)) {
      this.names.set(v as object, full);
    }
    return v;
  }

  private call(fn: unknown, args: readonly unknown[], what: string): unknown {
    if (typeof fn !== 'function') throw new PickleError(`${what}: ${describe(fn)} is not callable`);
    try {
      return (fn as (...a: unknown[]) => unknown)(...args);
    } catch (e) {
      if (e instanceof FileFormatError || e instanceof PickleError) throw e;
      const name = this.names.get(fn) ?? (fn.name || 'a global');
      throw new PickleError(`calling ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private persistent(pid: unknown): unknown {
    const load = this.opts.persistentLoad;
    if (!load) throw new PickleError('the pickle has a persistent id but no persistent_load handler was given');
    return load(pid);
  }

  private setItems(d: unknown, items: unknown[]): void {
    if (!(d instanceof Map)) throw new PickleError(`SETITEM(S) on ${describe(d)}, expected a dict`);
    if (items.length % 2 !== 0) throw new PickleError('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  }

  private appendItems(l: unknown, items: unknown[]): void {
    if (Array.isArray(l) && !Object.isFrozen(l)) {
      for (const x of items) l.push(x);
      return;
    }
    if (l !== null && typeof l === 'object' && typeof (l as { append?: unknown }).append === 'function') {
      for (const x of items) (l as { append: (x: unknown) => void }).append(x);
      return;
    }
    throw new PickleError(`APPEND(S) on ${describe(l)}, expected a list`);
  }

  private build(obj: unknown, state: unknown): void {
    if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) {
      throw new PickleError(`BUILD on ${describe(obj)}`);
    }
    const setstate = (obj as { __setstate__?: unknown }).__setstate__;
    if (typeof setstate === 'function') {
      try {
        setstate.call(obj, state);
      } catch (e) {
        if (e instanceof FileFormatError || e instanceof PickleError) throw e;
        throw new PickleError(`__setstate__ failed: ${e instanceof Error ? e.message : String(e)}`);
      }
      return;
    }
    if (state === null) return;
    // (dict_state, slot_state) pair, either may be None
    const parts = isTuple(state) && state.length === 2 ? state : [state];
    for (const part of parts) {
      if (part === null) continue;
      if (!(part instanceof Map)) throw new PickleError(`BUILD state is ${describe(part)}, expected a dict`);
      if (obj instanceof Map || obj instanceof Set || Array.isArray(obj)) {
        let attrs = attributes.get(obj);
        if (!attrs) attributes.set(obj, (attrs = new Map()));
        for (const [k, v] of part) attrs.set(k, v);
      } else {
        for (const [k, v] of part) {
          if (typeof k !== 'string') throw new PickleError('BUILD state has a non-string attribute name');
          Object.defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
        }
      }
    }
  }

  // --- the opcode switch --------------------------------------------------------------------------------------

  private step(op: number): void {
    switch (op) {
      case OP.PROTO: {
        const v = this.u8();
        if (v > 5) throw new PickleError(`unsupported pickle protocol ${v}`);
        return;
      }
      case OP.FRAME:
        this.u64(); // frame length: the framed opcodes simply follow
        return;
      case OP.MARK:
        this.metastack.push(this.stack);
        this.stack = [];
        return;
      case OP.POP:
        this.pop();
        return;
      case OP.POP_MARK:
        this.popMark();
        return;
      case OP.DUP:
        this.push(this.top());
        return;
      case OP.NONE:
        this.push(null);
        return;
      case OP.NEWTRUE:
        this.push(true);
        return;
      case OP.NEWFALSE:
        this.push(false);
        return;
      case OP.INT: {
        const s = this.line().trim();
        if (s === '01') this.push(true);
        else if (s === '00') this.push(false);
        else this.push(parseIntText(s));
        return;
      }
      case OP.LONG: {
        let s = this.line().trim();
        if (s.endsWith('L')) s = s.slice(0, -1);
        this.push(parseIntText(s));
        return;
      }
      case OP.FLOAT: {
        const s = this.line().trim();
        const v = s === 'inf' ? Number.POSITIVE_INFINITY : s === '-inf' ? Number.NEGATIVE_INFINITY : Number(s);
        if (Number.isNaN(v) && s !== 'nan') throw new PickleError(`invalid float literal ${JSON.stringify(s)}`);
        this.push(v);
        return;
      }
      case OP.BININT:
        this.push(this.i32());
        return;
      case OP.BININT1:
        this.push(this.u8());
        return;
      case OP.BININT2:
        this.push(this.u16());
        return;
      case OP.LONG1:
        this.push(decodeLong(this.take(this.u8())));
        return;
      case OP.LONG4: {
        const n = this.i32();
        if (n < 0) throw new PickleError('negative LONG4 length');
        this.push(decodeLong(this.take(n)));
        return;
      }
      case OP.BINFLOAT: {
        this.need(8);
        this.push(this.dv.getFloat64(this.pos, false));
        this.pos += 8;
        return;
      }
      case OP.BINSTRING: {
        const n = this.i32();
        if (n < 0) throw new PickleError('negative BINSTRING length');
        this.push(latin1(this.take(n)));
        return;
      }
      case OP.SHORT_BINSTRING:
        this.push(latin1(this.take(this.u8())));
        return;
      case OP.BINUNICODE:
        this.push(utf8.decode(this.take(this.u32())));
        return;
      case OP.SHORT_BINUNICODE:
        this.push(utf8.decode(this.take(this.u8())));
        return;
      case OP.BINUNICODE8:
        this.push(utf8.decode(this.take(this.u64())));
        return;
      case OP.BINBYTES:
        this.push(this.takeCopy(this.u32()));
        return;
      case OP.SHORT_BINBYTES:
        this.push(this.takeCopy(this.u8()));
        return;
      case OP.BINBYTES8:
      case OP.BYTEARRAY8:
        this.push(this.takeCopy(this.u64()));
        return;
      case OP.READONLY_BUFFER:
        this.top();
        return;
      case OP.EMPTY_TUPLE:
        this.push(Object.freeze([]));
        return;
      case OP.TUPLE:
        this.push(Object.freeze(this.popMark()));
        return;
      case OP.TUPLE1: {
        const a = this.pop();
        this.push(Object.freeze([a]));
        return;
      }
      case OP.TUPLE2: {
        const b = this.pop();
        const a = this.pop();
        this.push(Object.freeze([a, b]));
        return;
      }
      case OP.TUPLE3: {
        const c = this.pop();
        const b = this.pop();
        const a = this.pop();
        this.push(Object.freeze([a, b, c]));
        return;
      }
      case OP.EMPTY_LIST:
        this.push([]);
        return;
      case OP.LIST:
        this.push(this.popMark());
        return;
      case OP.APPEND: {
        const x = this.pop();
        this.appendItems(this.top(), [x]);
        return;
      }
      case OP.APPENDS: {
        const items = this.popMark();
        this.appendItems(this.top(), items);
        return;
      }
      case OP.EMPTY_DICT:
        this.push(new Map());
        return;
      case OP.DICT: {
        const d = new Map();
        this.setItems(d, this.popMark());
        this.push(d);
        return;
      }
      case OP.SETITEM: {
        const v = this.pop();
        const k = this.pop();
        this.setItems(this.top(), [k, v]);
        return;
      }
      case OP.SETITEMS: {
        const items = this.popMark();
        this.setItems(this.top(), items);
        return;
      }
      case OP.EMPTY_SET:
        this.push(new Set());
        return;
      case OP.ADDITEMS: {
        const items = this.popMark();
        const s = this.top();
        if (!(s instanceof Set)) throw new PickleError(`ADDITEMS on ${describe(s)}, expected a set`);
        for (const x of items) s.add(x);
        return;
      }
      case OP.FROZENSET:
        this.push(new Set(this.popMark()));
        return;
      case OP.GET:
        this.push(this.memoGet(Number(parseIntText(this.line().trim()))));
        return;
      case OP.BINGET:
        this.push(this.memoGet(this.u8()));
        return;
      case OP.LONG_BINGET:
        this.push(this.memoGet(this.u32()));
        return;
      case OP.PUT:
        this.memo.set(Number(parseIntText(this.line().trim())), this.top());
        return;
      case OP.BINPUT:
        this.memo.set(this.u8(), this.top());
        return;
      case OP.LONG_BINPUT:
        this.memo.set(this.u32(), this.top());
        return;
      case OP.MEMOIZE:
        this.memo.set(this.memo.size, this.top());
        return;
      case OP.GLOBAL: {
        const module = this.line();
        const name = this.line();
        this.push(this.resolveGlobal(module, name));
        return;
      }
      case OP.STACK_GLOBAL: {
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== 'string' || typeof name !== 'string') {
          throw new PickleError('module and name must be strings');
        }
        this.push(this.resolveGlobal(module, name));
        return;
      }
      case OP.REDUCE: {
        const args = this.pop();
        const fn = this.pop();
        if (!Array.isArray(args)) throw new PickleError(`arguments are ${describe(args)}, expected a tuple`);
        this.push(this.call(fn, args, 'REDUCE'));
        return;
      }
      case OP.NEWOBJ: {
        const args = this.pop();
        const cls = this.pop();
        if (!Array.isArray(args)) throw new PickleError(`arguments are ${describe(args)}, expected a tuple`);
        this.push(this.call(cls, args, 'NEWOBJ'));
        return;
      }
      case OP.NEWOBJ_EX: {
        const kwargs = this.pop();
        const args = this.pop();
        const cls = this.pop();
        if (!Array.isArray(args)) throw new PickleError(`arguments are ${describe(args)}, expected a tuple`);
        if (!(kwargs instanceof Map))
          throw new PickleError(`keyword arguments are ${describe(kwargs)}, expected a dict`);
        this.push(this.call(cls, kwargs.size ? [...args, kwargs] : args, 'NEWOBJ_EX'));
        return;
      }
      case OP.BUILD: {
        const state = this.pop();
        this.build(this.top(), state);
        return;
      }
      case OP.PERSID:
        this.push(this.persistent(this.line()));
        return;
      case OP.BINPERSID:
        this.push(this.persistent(this.pop()));
        return;
      default: {
        const what = UNSUPPORTED[op];
        if (what) throw new PickleError(`unsupported opcode ${what}`);
        throw new PickleError(`unknown opcode 0x${op.toString(16).padStart(2, '0')}: not a pickle, or corrupt`);
      }
    }
  }
}
