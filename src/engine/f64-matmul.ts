/**
 * Products accumulated in float64, for the precise forward pass (src/models/vit-f64.ts): onnxruntime-node's
 * double GEMM (one intra-op thread; parallelism comes from `--workers`) when it is installed, else plain
 * JavaScript. Both give each output as a float64 dot product of float32 (or float64) operands; rounded to float32
 * they agree except where an output falls on a rounding boundary.
 */
import { DOUBLE, FLOAT, Graph, modelBytes, valueInfo } from '../formats/onnx-writer.js';
import { loadOnnxRuntime, type OrtSession, ortSession } from './onnx.js';

/**
 * How a shared float32 weight B enters the product. `transposed`: B is stored [n, k] and used as its transpose
 * (g·W of a Linear whose host weight is Wᵀ [in, out]: the backward pass, src/models/bert-backward-f64.ts).
 * `part` (W⁺, W⁻, |W|) is not implemented on this branch.
 */
export interface WeightUse {
  part?: 'pos' | 'neg' | 'abs';
  transposed?: boolean;
}

/** C = A·B per group: A [g, m, k] float64; B [g, k, n], or one [k, n] (float32 weights) for every group. */
export type F64MatMul = (
  a: Float64Array,
  b: Float64Array | Float32Array,
  g: number,
  m: number,
  k: number,
  n: number,
  use?: WeightUse,
) => Promise<Float64Array>;

function checkUse(b: Float64Array | Float32Array, k: number, n: number, use: WeightUse | undefined): boolean {
  if (use?.part) throw new Error(`float64 products: weight part '${use.part}' is not implemented`);
  if (!use?.transposed) return false;
  if (!(b instanceof Float32Array) || b.length !== k * n)
    throw new Error('float64 products: only a shared float32 weight can be used transposed');
  return true;
}

/** Plain JavaScript float64 products. */
export const jsMatMulF64: F64MatMul = async (a, b, g, m, k, n, use) => {
  const out = new Float64Array(g * m * n);
  if (checkUse(b, k, n, use)) {
    // B stored [n, k]: C[i, j] = Σ_kk A[i, kk]·B[j, kk], accumulated in the same order.
    for (let gi = 0; gi < g; gi++)
      for (let i = 0; i < m; i++) {
        const ao = (gi * m + i) * k;
        const oo = (gi * m + i) * n;
        for (let j = 0; j < n; j++) {
          let s = 0;
          const bo = j * k;
          for (let kk = 0; kk < k; kk++) s += a[ao + kk]! * b[bo + kk]!;
          out[oo + j] = s;
        }
      }
    return out;
  }
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
function matMulF64OnnxModel(b: 'float32' | 'float64' | 'float32T'): Uint8Array {
  const g = new Graph();
  const cast = b === 'float64' ? 'b' : g.op('Cast', ['b'], { to: DOUBLE });
  const bIn = b === 'float32T' ? g.op('Transpose', [cast], { perm: [1, 0] }) : cast;
  g.op('MatMul', ['a', bIn], {}, 'c');
  const bDims = b === 'float32' ? ['K', 'N'] : b === 'float32T' ? ['N', 'K'] : ['G', 'K', 'N'];
  const graph = g.encode(
    `matmul_f64_${b}`,
    [valueInfo('a', ['G', 'M', 'K'], DOUBLE), valueInfo('b', bDims, b === 'float64' ? DOUBLE : FLOAT)],
    [valueInfo('c', ['G', 'M', 'N'], DOUBLE)],
  );
  return modelBytes(graph, 'bench src/engine/f64-matmul.ts');
}

let ortProducts: Promise<F64MatMul> | undefined;

/** onnxruntime's double MatMul, or undefined when onnxruntime-node is not installed. */
function onnxMatMulF64(): Promise<F64MatMul> | undefined {
  const { ort } = loadOnnxRuntime();
  if (!ort) return undefined;
  ortProducts ??= (async () => {
    const sessions: Record<'float32' | 'float64' | 'float32T', OrtSession> = {
      float32: await ortSession(ort, matMulF64OnnxModel('float32'), 1),
      float64: await ortSession(ort, matMulF64OnnxModel('float64'), 1),
      float32T: await ortSession(ort, matMulF64OnnxModel('float32T'), 1),
    };
    const Tensor = ort.Tensor as unknown as new (
      type: 'float32' | 'float64',
      data: Float32Array | Float64Array,
      dims: number[],
    ) => { data: Float64Array };
    return async (a, b, g, m, k, n, use) => {
      const transposed = checkUse(b, k, n, use);
      const weights = b instanceof Float32Array;
      if (weights && b.length !== k * n) throw new Error('float32 operands of the float64 products are shared weights');
      const feeds = {
        a: new Tensor('float64', a, [g, m, k]),
        b: weights ? new Tensor('float32', b, transposed ? [n, k] : [k, n]) : new Tensor('float64', b, [g, k, n]),
      };
      const out = await sessions[transposed ? 'float32T' : weights ? 'float32' : 'float64'].run(feeds as never);
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
