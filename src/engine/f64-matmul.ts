/**
 * Products accumulated in float64, for the precise forward pass (src/models/vit-f64.ts): onnxruntime-node's
 * double GEMM (one intra-op thread; parallelism comes from `--workers`) when it is installed, else plain
 * JavaScript. Both give each output as a float64 dot product of float32 (or float64) operands; rounded to float32
 * they agree except where an output falls on a rounding boundary.
 */
import { DOUBLE, FLOAT, Graph, modelBytes, valueInfo } from '../formats/onnx-writer.js';
import { loadOnnxRuntime, type OrtSession, ortSession } from './onnx.js';

/**
 * How a float32 weight operand enters a product (the relevance rules' derived weights): `part` W⁺ = max(W, 0),
 * W⁻ = min(W, 0) or |W| of the stored values (exact in any precision), and `transposed`: the operand is stored
 * [n, k] and used as its transpose (the backward-like products g·W of a weight kept as Wᵀ).
 */
export interface WeightUse {
  part?: 'pos' | 'neg' | 'abs';
  transposed?: boolean;
}

/**
 * C = A·B per group: A [g, m, k] float64; B [g, k, n], or one [k, n] (float32 weights) for every group. With `use`
 * (float32 weights only): B is that derived form of the stored weight.
 */
export type F64MatMul = (
  a: Float64Array,
  b: Float64Array | Float32Array,
  g: number,
  m: number,
  k: number,
  n: number,
  use?: WeightUse,
) => Promise<Float64Array>;

/** The weight operand as used: `use` applied to the stored float32 values, as a [k, n] float64 array. */
export function derivedWeight(b: Float32Array, k: number, n: number, use: WeightUse): Float64Array {
  const out = new Float64Array(k * n);
  const f =
    use.part === 'pos'
      ? (v: number) => Math.max(v, 0)
      : use.part === 'neg'
        ? (v: number) => Math.min(v, 0)
        : use.part === 'abs'
          ? Math.abs
          : (v: number) => v;
  for (let i = 0; i < k; i++)
    for (let j = 0; j < n; j++) out[i * n + j] = f(use.transposed ? b[j * k + i]! : b[i * n + j]!);
  return out;
}

function checkUse(b: Float64Array | Float32Array, k: number, n: number, use: WeightUse | undefined): void {
  if (!use) return;
  if (!(b instanceof Float32Array) || b.length !== k * n)
    throw new Error('a derived weight operand of the float64 products is one float32 weight shared by every group');
}

/** Plain JavaScript float64 products. */
export const jsMatMulF64: F64MatMul = async (a, b0, g, m, k, n, use) => {
  checkUse(b0, k, n, use);
  const b = use ? derivedWeight(b0 as Float32Array, k, n, use) : b0;
  const out = new Float64Array(g * m * n);
  const shared = b.length === k * n;
  const acc = new Float64Array(n);
  for (let gi = 0; gi < g; gi++) {
    const bo = shared ? 0 : gi * k * n;
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      const ao = (gi * m + i) * k;
      for (let kk = 0; kk < k; kk++) {
        const av = a[ao + kk]!;
        const row = bo + kk * n;
        for (let j = 0; j < n; j++) acc[j]! += av * b[row + j]!;
      }
      out.set(acc, (gi * m + i) * n);
    }
  }
  return out;
};

/**
 * A one-node model for float64 products: `c = MatMul(a, b)` with `a` double [G, M, K] and `b` [G, K, N] or [K, N],
 * double or (`b` 'float32') float32 cast to double inside the graph, so that float32 weights need no float64 copy.
 * All dimensions are dynamic.
 */
function matMulF64OnnxModel(b: 'float32' | 'float64'): Uint8Array {
  const g = new Graph();
  const bIn = b === 'float32' ? g.op('Cast', ['b'], { to: DOUBLE }) : 'b';
  g.op('MatMul', ['a', bIn], {}, 'c');
  const graph = g.encode(
    `matmul_f64_${b}`,
    [
      valueInfo('a', ['G', 'M', 'K'], DOUBLE),
      valueInfo('b', b === 'float32' ? ['K', 'N'] : ['G', 'K', 'N'], b === 'float32' ? FLOAT : DOUBLE),
    ],
    [valueInfo('c', ['G', 'M', 'N'], DOUBLE)],
  );
  return modelBytes(graph, 'bench src/engine/f64-matmul.ts');
}

/**
 * A one-node model for a derived weight operand: `c = Gemm(a, P(Cast(b)))` with `a` double [M, K], `b` float32 [K, N]
 * (or [N, K] with `transposed`: Gemm's transB, so no transposed copy is made) and P the part (Relu; −Relu(−·); Abs).
 */
function weightGemmOnnxModel(use: WeightUse): Uint8Array {
  const g = new Graph();
  let w = g.op('Cast', ['b'], { to: DOUBLE });
  if (use.part === 'pos') w = g.op('Relu', [w]);
  else if (use.part === 'neg') w = g.op('Neg', [g.op('Relu', [g.op('Neg', [w])])]);
  else if (use.part === 'abs') w = g.op('Abs', [w]);
  g.op('Gemm', ['a', w], use.transposed ? { transB: 1 } : {}, 'c');
  const graph = g.encode(
    `gemm_f64_${use.part ?? 'w'}${use.transposed ? '_t' : ''}`,
    [valueInfo('a', ['M', 'K'], DOUBLE), valueInfo('b', use.transposed ? ['N', 'K'] : ['K', 'N'], FLOAT)],
    [valueInfo('c', ['M', 'N'], DOUBLE)],
  );
  return modelBytes(graph, 'bench src/engine/f64-matmul.ts');
}

let ortProducts: Promise<F64MatMul> | undefined;

/** onnxruntime's double MatMul, or undefined when onnxruntime-node is not installed. */
function onnxMatMulF64(): Promise<F64MatMul> | undefined {
  const { ort } = loadOnnxRuntime();
  if (!ort) return undefined;
  ortProducts ??= (async () => {
    const sessions: Record<'float32' | 'float64', OrtSession> = {
      float32: await ortSession(ort, matMulF64OnnxModel('float32'), 1),
      float64: await ortSession(ort, matMulF64OnnxModel('float64'), 1),
    };
    // The derived-weight sessions, made on first use.
    const derived = new Map<string, Promise<OrtSession>>();
    const derivedSession = (use: WeightUse) => {
      const key = `${use.part ?? 'w'}:${use.transposed ? 't' : 'n'}`;
      let s = derived.get(key);
      if (!s) {
        s = ortSession(ort, weightGemmOnnxModel(use), 1);
        derived.set(key, s);
      }
      return s;
    };
    const Tensor = ort.Tensor as unknown as new (
      type: 'float32' | 'float64',
      data: Float32Array | Float64Array,
      dims: number[],
    ) => { data: Float64Array };
    return async (a, b, g, m, k, n, use) => {
      checkUse(b, k, n, use);
      const weights = b instanceof Float32Array;
      if (weights && b.length !== k * n) throw new Error('float32 operands of the float64 products are shared weights');
      if (use && (use.part || use.transposed)) {
        const feeds = {
          a: new Tensor('float64', a, [g * m, k]),
          b: new Tensor('float32', b, use.transposed ? [n, k] : [k, n]),
        };
        const out = await (await derivedSession(use)).run(feeds as never);
        return (out.c as unknown as { data: Float64Array }).data;
      }
      const feeds = {
        a: new Tensor('float64', a, [g, m, k]),
        b: weights ? new Tensor('float32', b, [k, n]) : new Tensor('float64', b, [g, k, n]),
      };
      const out = await sessions[weights ? 'float32' : 'float64'].run(feeds as never);
      return (out.c as unknown as { data: Float64Array }).data;
    };
  })();
  return ortProducts;
}

/** The float64 products this process uses, and a line that names them. */
export async function f64Products(): Promise<{ matmul: F64MatMul; engine: string }> {
  const ort = onnxMatMulF64();
  if (ort) return { matmul: await ort, engine: 'onnxruntime-node double GEMM' };
  return { matmul: jsMatMulF64, engine: 'JavaScript (onnxruntime-node is not installed: slow for large models)' };
}
