import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { zipSync } from 'fflate';
import { googleVitToTimm } from '../src/formats/google-vit.js';
import { FileFormatError, type HostTensor, type StateDict } from '../src/formats/host-tensor.js';
import { encodeNpy, parseNpy } from '../src/formats/npy.js';
import { parseNpz, readNpz } from '../src/formats/npz.js';
import { isTuple, PickleError, pyAttributes, unpickle } from '../src/formats/pickle.js';
import { readPytorchCheckpoint } from '../src/formats/pytorch.js';
import { readSafetensors } from '../src/formats/safetensors.js';
import { readWeights } from '../src/formats/weights.js';
import { goldenPath } from './helpers/golden.js';
import { npyWithHeader } from './helpers/npy-writer.js';
import { legacyTorchFileWithView, PickleWriter, torchTensor } from './helpers/pickle-writer.js';

const FORMATS = goldenPath('vit', 'S1', 'formats');
const reference = readSafetensors(goldenPath('vit', 'S1', 'weights.safetensors')).tensors;

const tmp = mkdtempSync(path.join(tmpdir(), 'formats-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
function tmpFile(name: string, bytes: Uint8Array | string): string {
  const f = path.join(tmp, name);
  writeFileSync(f, bytes);
  return f;
}

/** float32 value → nearest float16 value (round half to even), as torch's .half() does. */
function roundToHalf(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Number.POSITIVE_INFINITY;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const q = 2 ** (Math.max(e, -14) - 10);
  const r = a / q;
  let f = Math.floor(r);
  const d = r - f;
  if (d > 0.5 || (d === 0.5 && f % 2 === 1)) f++;
  return Math.sign(x) * f * q;
}

function assertSameStateDict(got: StateDict, want: StateDict, label: string, map: (x: number) => number = (x) => x) {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${label}: key set`);
  for (const [k, w] of want) {
    const g = got.get(k)!;
    assert.deepEqual(g.shape, w.shape, `${label}: shape of ${k}`);
    assert.ok(g.data instanceof Float32Array, `${label}: ${k} is float32`);
    assert.equal(g.data.length, w.data.length, `${label}: length of ${k}`);
    for (let i = 0; i < w.data.length; i++) {
      const expected = map(w.data[i] as number);
      if (!Object.is(g.data[i], expected)) {
        assert.fail(`${label}: ${k}[${i}] = ${g.data[i]}, expected ${expected}`);
      }
    }
  }
}

/** The values of a float32 tensor (asserting that it is one). */
function floats(t: HostTensor | undefined): number[] {
  assert.ok(t?.data instanceof Float32Array, 'a Float32Array tensor');
  return Array.from(t.data);
}

function f32Bytes(xs: number[], littleEndian = true): Uint8Array {
  const b = new Uint8Array(xs.length * 4);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < xs.length; i++) dv.setFloat32(4 * i, xs[i]!, littleEndian);
  return b;
}

// --- golden files ---------------------------------------------------------------------------------------------

describe('golden checkpoint formats (S1)', () => {
  const files = readdirSync(FORMATS).filter((f) => f !== 'README.md');
  test('the folder holds the files its README lists', () => {
    const readme = readFileSync(path.join(FORMATS, 'README.md'), 'utf8');
    for (const f of files) assert.ok(readme.includes(f), `${f} is described in README.md`);
    assert.ok(files.length >= 6);
  });
  for (const f of files) {
    test(`readWeights(${f}) equals weights.safetensors`, () => {
      const sd = readWeights(path.join(FORMATS, f));
      if (f.includes('f16')) assertSameStateDict(sd, reference, f, roundToHalf);
      else assertSameStateDict(sd, reference, f);
    });
  }
  test('readPytorchCheckpoint and readNpz directly', () => {
    assertSameStateDict(readPytorchCheckpoint(path.join(FORMATS, 'weights.legacy.pth')), reference, 'legacy');
    const npz = readNpz(path.join(FORMATS, 'weights.google.npz'));
    assert.deepEqual(npz.get('embedding/kernel')?.shape, [16, 16, 3, 48]);
    assert.deepEqual(
      npz.get('Transformer/encoderblock_0/MultiHeadDotProductAttention_1/out/kernel')?.shape,
      [3, 16, 48],
    );
  });
});

// --- Google ViT mapping ---------------------------------------------------------------------------------------

describe('googleVitToTimm', () => {
  const npzFile = path.join(FORMATS, 'weights.google.npz');
  test('strips a common prefix and passes pre_logits through unmapped', () => {
    const npz = parseNpz(readFileSync(npzFile), npzFile);
    const prefixed: StateDict = new Map();
    for (const [k, v] of npz) prefixed.set(`opt/target/${k}`, v);
    const pre: HostTensor = { shape: [48, 48], data: new Float32Array(48 * 48) };
    prefixed.set('opt/target/pre_logits/kernel', pre);
    const sd = googleVitToTimm(prefixed, 'x.npz');
    assert.equal(sd.get('opt/target/pre_logits/kernel'), pre);
    sd.delete('opt/target/pre_logits/kernel');
    assertSameStateDict(sd, reference, 'prefixed npz');
    assert.equal([...sd.keys()][0], 'cls_token');
  });
  test('missing value kernel is reported by name', () => {
    const npz = parseNpz(readFileSync(npzFile), npzFile);
    npz.delete('Transformer/encoderblock_1/MultiHeadDotProductAttention_1/value/kernel');
    assert.throws(
      () => googleVitToTimm(npz, 'x.npz'),
      (e: unknown) =>
        e instanceof FileFormatError && /encoderblock_1\/MultiHeadDotProductAttention_1\/value\/kernel/.test(e.message),
    );
  });
});

// --- npy ------------------------------------------------------------------------------------------------------

describe('npy', () => {
  test('encodeNpy → parseNpy round trip', () => {
    const data = Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.sin(i) * 1e3);
    data[3] = -0;
    data[4] = Number.POSITIVE_INFINITY;
    const bytes = encodeNpy({ shape: [2, 3, 5], data });
    const headerEnd = bytes.indexOf(0x0a) + 1;
    assert.equal(headerEnd % 64, 0, 'data starts 64-byte aligned');
    assert.match(
      String.fromCharCode(...bytes.subarray(10, headerEnd)),
      /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3, 5\), \}/,
    );
    const t = parseNpy(bytes, 'rt.npy');
    assert.deepEqual(t.shape, [2, 3, 5]);
    assert.ok(t.data instanceof Float32Array);
    assert.deepEqual(floats(t), Array.from(data));
    const scalar = parseNpy(encodeNpy({ shape: [], data: Float32Array.of(2.5) }), 's.npy');
    assert.deepEqual(scalar.shape, []);
    assert.deepEqual(floats(scalar), [2.5]);
  });
  test('fortran_order arrays come out in C order', () => {
    // A = [[0, 1, 2], [3, 4, 5]] stored column by column: 0 3 1 4 2 5
    const f = f32Bytes([0, 3, 1, 4, 2, 5]);
    const t = parseNpy(npyWithHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f), 'f.npy');
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(floats(t), [0, 1, 2, 3, 4, 5]);
  });
  test('big-endian float64, version 2.0 header, integers and bool', () => {
    const be = new Uint8Array(16);
    new DataView(be.buffer).setFloat64(0, 1.5, false);
    new DataView(be.buffer).setFloat64(8, -2.25, false);
    const t = parseNpy(npyWithHeader("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", be, 2), 'be.npy');
    assert.ok(t.data instanceof Float32Array);
    assert.deepEqual(floats(t), [1.5, -2.25]);
    const i8 = new Uint8Array(new BigInt64Array([-3n, 7n]).buffer);
    const ti = parseNpy(npyWithHeader("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", i8), 'i.npy');
    assert.ok(ti.data instanceof BigInt64Array);
    assert.deepEqual(Array.from(ti.data), [-3n, 7n]);
    const tb = parseNpy(
      npyWithHeader("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", Uint8Array.of(1, 0, 1)),
      'b.npy',
    );
    assert.ok(tb.data instanceof Uint8Array);
    assert.deepEqual(Array.from(tb.data), [1, 0, 1]);
  });
  test('truncated data and unsupported dtypes are FileFormatErrors', () => {
    const bytes = encodeNpy({ shape: [4, 4], data: new Float32Array(16) });
    assert.throws(() => parseNpy(bytes.subarray(0, bytes.length - 4), 'cut.npy'), /cut\.npy: truncated \.npy data/);
    const obj = npyWithHeader("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8));
    assert.throws(
      () => parseNpy(obj, 'o.npy'),
      (e: unknown) => e instanceof FileFormatError && /object arrays/.test(e.message),
    );
  });
});

// --- pickle ---------------------------------------------------------------------------------------------------

describe('pickle', () => {
  test('a hand-assembled pickle decodes', () => {
    const p = new PickleWriter().op(0x80, 4); // PROTO 4
    p.op(0x95, 0, 0, 0, 0, 0, 0, 0, 0); // FRAME (length ignored)
    p.op(0x7d, 0x94); // EMPTY_DICT MEMOIZE → memo 0
    p.mark();
    p.op(0x8c, 1, 0x61).int(1); // 'a': 1
    p.op(0x8c, 1, 0x62)
      .op(0x4a)
      .u32(-5 >>> 0); // 'b': -5
    p.op(0x8c, 1, 0x63).op(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1); // 'c': 2**64 (LONG1)
    p.op(0x8c, 1, 0x64).op(0x8a, 1, 0xff); // 'd': -1 (LONG1)
    p.op(0x8c, 1, 0x65).op(0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0); // 'e': 1.5 (BINFLOAT, big endian)
    p.op(0x8c, 1, 0x66).op(0x5d, 0x94).mark().op(0x4e, 0x88, 0x89).op(0x65); // 'f': [None, True, False]
    p.op(0x8c, 1, 0x67).op(0x43, 2, 9, 8); // 'g': b'\x09\x08'
    p.op(0x8c, 1, 0x68).int(7).str('x').op(0x86); // 'h': (7, 'x')
    p.op(0x8c, 1, 0x69).op(0x68, 1); // 'i': the list again (BINGET 1)
    p.op(0x8c, 1, 0x6a).op(0x8f).mark().int(3).int(4).op(0x90); // 'j': {3, 4}
    p.op(0x8c, 1, 0x6b); // 'k': STACK_GLOBAL test.Point(1, 2), then BUILD {'z': 3}
    p.op(0x8c, 4, ...new TextEncoder().encode('test'), 0x8c, 5, ...new TextEncoder().encode('Point'), 0x93);
    p.int(1).int(2).op(0x86, 0x81); // NEWOBJ
    p.op(0x7d).op(0x8c, 1, 0x7a).int(3).op(0x73).op(0x62); // BUILD
    p.op(0x75).stop(); // SETITEMS STOP
    const bytes = p.bytes();
    const { value, end, bytesRead } = unpickle(bytes, {
      globals: { 'test.Point': (x: unknown, y: unknown) => ({ x, y }) },
    });
    assert.equal(end, bytes.length);
    assert.equal(bytesRead, bytes.length);
    assert.ok(value instanceof Map);
    const d = value as Map<string, unknown>;
    assert.equal(d.get('a'), 1);
    assert.equal(d.get('b'), -5);
    assert.equal(d.get('c'), 2n ** 64n);
    assert.equal(d.get('d'), -1);
    assert.equal(d.get('e'), 1.5);
    assert.deepEqual(d.get('f'), [null, true, false]);
    assert.deepEqual(d.get('g'), Uint8Array.of(9, 8));
    assert.ok(isTuple(d.get('h')));
    assert.deepEqual([...(d.get('h') as unknown[])], [7, 'x']);
    assert.equal(d.get('i'), d.get('f'), 'memo returns the same object');
    assert.deepEqual(d.get('j'), new Set([3, 4]));
    assert.deepEqual(d.get('k'), { x: 1, y: 2, z: 3 });
  });

  test('reports bytes consumed for back-to-back pickles', () => {
    const a = new PickleWriter().op(0x80, 2).int(1001).stop().bytes();
    const b = new PickleWriter().op(0x80, 2).str('next').stop().bytes();
    const both = new Uint8Array([...a, ...b, 0xde, 0xad]);
    const r1 = unpickle(both);
    assert.equal(r1.value, 1001);
    assert.equal(r1.end, a.length);
    const r2 = unpickle(both, { offset: r1.end });
    assert.equal(r2.value, 'next');
    assert.equal(r2.bytesRead, b.length);
  });

  test('OrderedDict BUILD state becomes attributes, not items', () => {
    const p = new PickleWriter().op(0x80, 2).global('collections', 'OrderedDict').op(0x29, 0x52);
    p.mark().str('w').int(1).op(0x75);
    p.op(0x7d).str('_metadata').op(0x7d).op(0x73).op(0x62).stop();
    const { value } = unpickle(p.bytes(), { globals: { 'collections.OrderedDict': () => new Map() } });
    assert.deepEqual([...(value as Map<unknown, unknown>).keys()], ['w']);
    assert.ok(pyAttributes(value as object)?.has('_metadata'));
  });

  test('unknown globals, unknown opcodes and truncation give clear errors', () => {
    const g = new PickleWriter().op(0x80, 2).global('os', 'system').str('echo hi').op(0x85, 0x52).stop().bytes();
    assert.throws(
      () => unpickle(g),
      (e: unknown) => e instanceof PickleError && /'os\.system'/.test(e.message),
    );
    assert.throws(
      () => unpickle(g, { file: 'evil.pkl' }),
      (e: unknown) => e instanceof FileFormatError && /^evil\.pkl: .*os\.system/.test(e.message),
    );
    // prototype keys are not globals
    const proto = new PickleWriter().op(0x80, 2).global('constructor', 'x').stop().bytes();
    assert.throws(() => unpickle(proto, { globals: {} }), /unsupported Python global 'constructor\.x'/);
    assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0xff)), /unknown opcode 0xff/);
    const full = new PickleWriter().op(0x80, 2).str('a fairly long string').stop().bytes();
    for (let n = 0; n < full.length; n++) {
      assert.throws(
        () => unpickle(full.subarray(0, n), { file: 'cut.pkl' }),
        (e: unknown) => e instanceof FileFormatError && /cut\.pkl/.test(e.message) && /truncated/.test(e.message),
      );
    }
    assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0x74, 0x2e)), /no MARK/);
    assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0x2e)), /stack underflow/);
    assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0x68, 5, 0x2e)), /memo key 5/);
    assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0x4e, 0x4e, 0x52, 0x2e)), /expected a tuple/);
    assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0x4e, 0x29, 0x52, 0x2e)), /not callable/);
  });
});

// --- PyTorch checkpoints built by hand ------------------------------------------------------------------------

describe('pytorch (hand-made checkpoints)', () => {
  test('zip format: dtypes, views, parameters, module. prefix, OrderedDict', () => {
    const p = new PickleWriter().op(0x80, 2).global('collections', 'OrderedDict').op(0x29, 0x52).mark();
    p.str('module.long');
    torchTensor(p, 'LongStorage', '0', 6, 0, [2, 3], [3, 1]);
    p.str('module.half');
    p.global('torch._utils', '_rebuild_parameter');
    p.mark();
    torchTensor(p, 'HalfStorage', '1', 4, 1, [3], [1]);
    p.op(0x88).global('collections', 'OrderedDict').op(0x29, 0x52).tuple().op(0x52);
    p.str('module.transposed');
    torchTensor(p, 'FloatStorage', '2', 6, 0, [3, 2], [1, 3]);
    p.str('module.bool');
    torchTensor(p, 'BoolStorage', '3', 2, 0, [2], [1]);
    p.str('module.scalar');
    torchTensor(p, 'DoubleStorage', '4', 1, 0, [], []);
    p.op(0x75);
    p.op(0x7d).str('_metadata').op(0x7d).op(0x73).op(0x62).stop(); // BUILD {'_metadata': {}}
    const half = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7c00]).buffer); // 1, -2, 0.5, inf
    const f64 = new Uint8Array(new Float64Array([0.1]).buffer);
    const zip = zipSync(
      {
        'ckpt/data.pkl': p.bytes(),
        'ckpt/byteorder': new TextEncoder().encode('little'),
        'ckpt/data/0': new Uint8Array(new BigInt64Array([1n, 2n, 3n, -4n, 5n, 2n ** 40n]).buffer),
        'ckpt/data/1': half,
        'ckpt/data/2': f32Bytes([0, 1, 2, 3, 4, 5]),
        'ckpt/data/3': Uint8Array.of(1, 0),
        'ckpt/data/4': f64,
        'ckpt/version': new TextEncoder().encode('3\n'),
      },
      { level: 0 },
    );
    const f = tmpFile('hand.pt', zip);
    const sd = readWeights(f);
    assert.deepEqual([...sd.keys()], ['long', 'half', 'transposed', 'bool', 'scalar']);
    assert.deepEqual(sd.get('long')!.data, new BigInt64Array([1n, 2n, 3n, -4n, 5n, 2n ** 40n]));
    assert.deepEqual(sd.get('half')!.data, Float32Array.of(-2, 0.5, Number.POSITIVE_INFINITY));
    // storage [0..5] seen as (3, 2) with stride (1, 3): row r = [r, r + 3]
    assert.deepEqual(sd.get('transposed')!.shape, [3, 2]);
    assert.deepEqual(floats(sd.get('transposed')!), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(sd.get('bool')!.data, Uint8Array.of(1, 0));
    assert.deepEqual(sd.get('scalar')!.shape, []);
    assert.deepEqual(sd.get('scalar')!.data, Float32Array.of(0.1));

    // big-endian storages
    const q = new PickleWriter().op(0x80, 2).op(0x7d).str('w');
    torchTensor(q, 'FloatStorage', '0', 2, 0, [2], [1]);
    q.op(0x73).stop();
    const be = zipSync(
      {
        'a/data.pkl': q.bytes(),
        'a/byteorder': new TextEncoder().encode('big'),
        'a/data/0': f32Bytes([1.25, -3], false),
      },
      { level: 0 },
    );
    assert.deepEqual(readWeights(tmpFile('be.pth', be)).get('w')!.data, Float32Array.of(1.25, -3));

    // a view that reaches past its storage, and a missing storage entry
    const r = new PickleWriter().op(0x80, 2).op(0x7d).str('w');
    torchTensor(r, 'FloatStorage', '0', 4, 2, [2, 2], [2, 1]);
    r.op(0x73).stop();
    const bad = zipSync({ 'a/data.pkl': r.bytes(), 'a/data/0': f32Bytes([1, 2, 3, 4]) }, { level: 0 });
    assert.throws(() => readWeights(tmpFile('badview.pth', bad)), /badview\.pth: tensor 'w'.*needs 6 elements/);
    const missing = zipSync({ 'a/data.pkl': r.bytes() }, { level: 0 });
    assert.throws(
      () => readWeights(tmpFile('missing.pth', missing)),
      /missing\.pth: tensor 'w': missing storage record '0'/,
    );
  });

  test('legacy format with a storage view', () => {
    const file = legacyTorchFileWithView();
    const sd = readWeights(tmpFile('legacy.pth', file));
    assert.deepEqual(floats(sd.get('full')!), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(floats(sd.get('view')!), [4, 6]);
    assert.throws(
      () => readWeights(tmpFile('legacy-cut.pth', file.subarray(0, file.length - 5))),
      (e: unknown) => e instanceof FileFormatError && /legacy-cut\.pth: truncated: storage 'root'/.test(e.message),
    );
  });

  test('a pickled nn.Module names the unsupported class', () => {
    const p = new PickleWriter()
      .op(0x80, 2)
      .global('timm.models.vision_transformer', 'VisionTransformer')
      .op(0x29, 0x81)
      .stop();
    const zip = zipSync({ 'm/data.pkl': p.bytes() }, { level: 0 });
    assert.throws(
      () => readWeights(tmpFile('module.pth', zip)),
      /module\.pth.*'timm\.models\.vision_transformer\.VisionTransformer'/,
    );
  });
});

// --- error handling -------------------------------------------------------------------------------------------

describe('readWeights errors', () => {
  const isFFE = (file: string, re: RegExp) => (e: unknown) =>
    e instanceof FileFormatError && e.file === file && e.message.includes(file) && re.test(e.message);

  test('missing file', () => {
    const f = path.join(tmp, 'does-not-exist.pth');
    assert.throws(() => readWeights(f), isFFE(f, /file not found/));
  });

  for (const name of ['weights.zip.pth', 'weights.legacy.pth', 'weights.google.npz']) {
    test(`first half of ${name}`, () => {
      const full = readFileSync(path.join(FORMATS, name));
      const f = tmpFile(`half-${name}`, full.subarray(0, full.length >> 1));
      assert.throws(() => readWeights(f), isFFE(f, /truncated|corrupt|not a valid zip/));
    });
  }

  test('random bytes', () => {
    let s = 12345;
    const rnd = new Uint8Array(4096).map(() => ((s = (s * 1103515245 + 12345) >>> 0) >>> 24) & 0xff);
    rnd[0] = 0x17;
    const f = tmpFile('random.bin', rnd);
    assert.throws(
      () => readWeights(f),
      isFFE(f, /unrecognised weights format; expected safetensors, a PyTorch checkpoint/),
    );
    rnd[0] = 0x80;
    const g = tmpFile('random.pth', rnd);
    assert.throws(() => readWeights(g), isFFE(g, /not a PyTorch checkpoint/));
    const e = tmpFile('empty.safetensors', new Uint8Array(0));
    assert.throws(() => readWeights(e), isFFE(e, /empty/));
  });

  test('safetensors whose header lies about data_offsets', () => {
    const make = (offsets: [number, number], dataBytes: number) => {
      // padded to 0x180 bytes: the file then starts with 0x80, like a pickle
      const json = JSON.stringify({ w: { dtype: 'F32', shape: [2, 2], data_offsets: offsets } }).padEnd(0x180);
      const h = new TextEncoder().encode(json);
      const out = new Uint8Array(8 + h.length + dataBytes);
      new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
      out.set(h, 8);
      return out;
    };
    const ok = tmpFile('ok.safetensors', make([0, 16], 16));
    assert.deepEqual(readWeights(ok).get('w')!.shape, [2, 2]);
    const short = tmpFile('short.safetensors', make([0, 8], 16));
    assert.throws(() => readWeights(short), isFFE(short, /data_offsets \[0, 8\] hold 8 bytes/));
    const past = tmpFile('past.safetensors', make([16, 32], 16));
    assert.throws(() => readWeights(past), isFFE(past, /past the end/));
  });

  test('a zip that is neither a checkpoint nor an npz', () => {
    const f = tmpFile('other.zip', zipSync({ 'readme.txt': new TextEncoder().encode('hi') }));
    assert.throws(() => readWeights(f), isFFE(f, /neither data\.pkl.*readme\.txt/));
  });
});
