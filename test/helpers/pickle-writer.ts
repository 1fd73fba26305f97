/** A tiny pickle writer for hand-made test data (formats and fuzz tests). */
export class PickleWriter {
  private readonly out: number[] = [];
  op(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  u32(n: number): this {
    return this.op(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  /** BINUNICODE */
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.op(0x58)
      .u32(b.length)
      .op(...b);
  }
  /** BININT / BININT1 / BININT2 as fits */
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8);
    return this.op(0x4a).u32(n >>> 0);
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  ints(xs: number[]): this {
    this.mark();
    for (const x of xs) this.int(x);
    return this.tuple();
  }
  stop(): this {
    return this.op(0x2e);
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/** Emit `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` for a torch storage record. */
export function torchTensor(
  p: PickleWriter,
  storageType: string,
  key: string,
  numel: number,
  offset: number,
  size: number[],
  stride: number[],
  view?: [string, number, number],
) {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', storageType).str(key).str('cpu').int(numel);
  if (view) p.mark().str(view[0]).int(view[1]).int(view[2]).tuple();
  p.tuple().op(0x51); // BINPERSID
  p.int(offset).ints(size).ints(stride).op(0x89); // NEWFALSE
  p.global('collections', 'OrderedDict').op(0x29, 0x52); // EMPTY_TUPLE REDUCE
  p.tuple().op(0x52); // REDUCE
}

/**
 * A legacy (pre-1.6, non-zip) torch.save file: one FloatStorage 'root' of the values 0…7 holding two
 * tensors, 'full' (2×4) and 'view' (storage[3:8], offset 1, stride 2 → [4, 6]).
 */
export function legacyTorchFileWithView(): Uint8Array {
  const magic = new PickleWriter()
    .op(0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19)
    .stop();
  const proto = new PickleWriter().op(0x80, 2).int(1001).stop();
  const sys = new PickleWriter().op(0x80, 2).op(0x7d).str('little_endian').op(0x88, 0x73).stop();
  const obj = new PickleWriter().op(0x80, 2).op(0x7d).str('model').op(0x7d).mark();
  obj.str('full');
  torchTensor(obj, 'FloatStorage', 'root', 8, 0, [2, 4], [4, 1]);
  obj.str('view');
  torchTensor(obj, 'FloatStorage', 'root', 8, 1, [2], [2], ['v', 3, 5]);
  obj.op(0x75).op(0x73).stop();
  const keys = new PickleWriter().op(0x80, 2).op(0x5d).mark().str('root').op(0x65).stop();
  const count = new Uint8Array(new BigInt64Array([8n]).buffer);
  const data = new Uint8Array(Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7).buffer);
  const parts = [magic, proto, sys, obj, keys].map((w) => w.bytes());
  return new Uint8Array([...parts.flatMap((b) => [...b]), ...count, ...data]);
}
