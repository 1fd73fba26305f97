/**
 * A minimal ONNX writer: the protobuf wire encoding of the few messages a model needs (onnx.proto: ModelProto,
 * GraphProto, NodeProto, TensorProto, ValueInfoProto, AttributeProto), so that bench builds its ONNX models (the ViT
 * classifier, src/models/onnx-vit.ts; the float64 products, src/engine/f64-matmul.ts) with no Python and no `onnx`
 * package. Models are IR version 8, opset 17.
 */

/** Protobuf wire encoding of one message: fields appended in order. */
export class Msg {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }

  private varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x) byte |= 0x80;
      out.push(byte);
    } while (x);
    this.push(Uint8Array.from(out));
  }

  private key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number): this {
    this.key(field, 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(b.length);
    this.push(b);
    return this;
  }

  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  msg(field: number, m: Msg): this {
    return this.bytes(field, m.encode());
  }

  encode(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

// ONNX enums (onnx.proto).
export const FLOAT = 1;
const INT64 = 7;
export const DOUBLE = 11;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

export type Attr = number | number[] | { float: number };

function attribute(name: string, v: Attr): Msg {
  const a = new Msg().str(1, name);
  if (Array.isArray(v)) {
    for (const x of v) a.int(8, x);
    return a.int(20, ATTR_INTS);
  }
  if (typeof v === 'object') return a.float(2, v.float).int(20, ATTR_FLOAT);
  return a.int(3, v).int(20, ATTR_INT);
}

function tensorProto(name: string, dims: number[], data: Float32Array | BigInt64Array): Msg {
  const t = new Msg();
  for (const d of dims) t.int(1, d);
  t.int(2, data instanceof Float32Array ? FLOAT : INT64);
  t.str(8, name);
  return t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

export function valueInfo(name: string, dims: (number | string)[], elemType = FLOAT): Msg {
  const shape = new Msg();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().str(2, d));
  const tensorType = new Msg().int(1, elemType).msg(2, shape);
  return new Msg().str(1, name).msg(2, new Msg().msg(1, tensorType));
}

/** A graph under construction: nodes in topological order, initialisers, fresh value names. */
export class Graph {
  private readonly nodes: Msg[] = [];
  private readonly inits: Msg[] = [];
  private n = 0;

  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}, output?: string): string {
    const out = output ?? `t${this.n++}`;
    const node = new Msg();
    for (const i of inputs) node.str(1, i);
    node
      .str(2, out)
      .str(3, `${type}_${this.n++}`)
      .str(4, type);
    for (const [k, v] of Object.entries(attrs)) node.msg(5, attribute(k, v));
    this.nodes.push(node);
    return out;
  }

  init(name: string, dims: number[], data: Float32Array | BigInt64Array): string {
    this.inits.push(tensorProto(name, dims, data));
    return name;
  }

  ints(name: string, values: number[]): string {
    return this.init(name, [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  scalar(name: string, v: number): string {
    return this.init(name, [], Float32Array.of(v));
  }

  encode(name: string, inputs: Msg[], outputs: Msg[]): Msg {
    const g = new Msg();
    for (const n of this.nodes) g.msg(1, n);
    g.str(2, name);
    for (const i of this.inits) g.msg(5, i);
    for (const i of inputs) g.msg(11, i);
    for (const o of outputs) g.msg(12, o);
    return g;
  }
}

/** A model (IR version 8, opset 17) around an encoded graph. */
export function modelBytes(graph: Msg, producer: string): Uint8Array {
  return new Msg()
    .int(1, 8) // ir_version
    .str(2, producer)
    .msg(7, graph)
    .msg(8, new Msg().str(1, '').int(2, 17))
    .encode();
}
