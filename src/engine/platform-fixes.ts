import { SAFE_DIVIDE_EPS, SAFE_DIVIDE_KERNEL } from './ops.js';
import * as tf from './tf.js';

/**
 * The one place that papers over TF.js 4.22 gaps (docs/architecture.md, "TensorFlow.js on Node"). Our own model code needs none of these
 * (it computes its backward pass by hand with plain matmuls), but user code and tf.grad on the same engine
 * do, so they are installed whenever a backend is initialised:
 *  - comparison ops have no registered gradient on any backend (tf.where(greater(a,b), …) fails in tf.grad);
 *  - 'UnsortedSegmentSum' (the gradient of gather) is missing on wasm.
 * And one performance fix that everything benefits from:
 *  - the wasm 'Slice' kernel copies its WHOLE input out of the heap (`readSync`) before taking the slice,
 *    so splitting a [12, 197, 197] tensor into its 12 heads copies it 12 times (a third of a ViT-B forward
 *    pass went there). Ours reads the input through a view of the heap instead; same bytes out.
 * And one memory fix:
 *  - the wasm heap fragments without bound under the explanation passes' allocation pattern (installWasmSizeClasses).
 */
const done = new Set<string>();

export function applyPlatformFixes(backend: string): void {
  if (!done.has('gradients')) {
    for (const kernelName of ['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual']) {
      if (tf.getGradient(kernelName)) continue;
      tf.registerGradient({
        kernelName,
        inputsToSave: ['a', 'b'],
        gradFunc: (_dy, saved) => {
          const [a, b] = saved as [tf.Tensor, tf.Tensor];
          return { a: () => tf.zerosLike(a), b: () => tf.zerosLike(b) };
        },
      });
    }
    done.add('gradients');
  }
  if (backend === 'wasm' && !done.has('wasm') && !tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    tf.registerKernel({
      kernelName: 'UnsortedSegmentSum',
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend: be, attrs }) => {
        // biome-ignore lint/suspicious/noExplicitAny: the wasm backend's heap helpers are not in tfjs' public types
        const wasm = be as any;
        const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
        const n = (attrs as { numSegments: number }).numSegments;
        const innerShape = x.shape.slice(segmentIds.shape.length);
        const inner = tf.util.sizeFromShape(innerShape);
        const out = wasm.makeOutput([n, ...innerShape], x.dtype);
        const xv = wasm.typedArrayFromHeap(x);
        const ids = wasm.typedArrayFromHeap(segmentIds);
        const ov = wasm.typedArrayFromHeap(out);
        ov.fill(0);
        for (let i = 0; i < ids.length; i++) {
          const s = ids[i];
          if (s >= 0 && s < n) for (let j = 0; j < inner; j++) ov[s * inner + j] += xv[i * inner + j];
        }
        return out;
      },
    });
    done.add('wasm');
  }
  if (backend === 'wasm') installWasmSizeClasses(tf.engine().backend as WasmBackend);
  if (backend === 'wasm' && !done.has('wasm-slice')) {
    installWasmSlice();
    installWasmSafeDivide();
    done.add('wasm-slice');
  }
}

/**
 * Kernel SAFE_DIVIDE_KERNEL: `safe_divide(a, b)` (ops.ts) for same-shape float32 tensors in one pass. As eight wasm kernels it costs
 * ~40× a plain division: the comparisons against a scalar take the backend's slow broadcasting loop.
 * It is evaluated here in float64 and rounded to float32 after each step, which gives exactly the
 * float32 results of the composite (each step is one correctly rounded +, / or ×).
 */
function installWasmSafeDivide(): void {
  if (tf.getKernel(SAFE_DIVIDE_KERNEL, 'wasm')) return;
  const eps = Math.fround(SAFE_DIVIDE_EPS);
  tf.registerKernel({
    kernelName: SAFE_DIVIDE_KERNEL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend: be }) => {
      const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const wasm = be as WasmBackend;
      const out = wasm.makeOutput(a.shape, 'float32');
      // Views only after makeOutput: allocating may grow the heap, which detaches older views.
      const av: Float32Array = wasm.typedArrayFromHeap(a);
      const bv: Float32Array = wasm.typedArrayFromHeap(b);
      const ov: Float32Array = wasm.typedArrayFromHeap(out);
      for (let i = 0; i < ov.length; i++) {
        const bi = bv[i]!;
        let den = Math.fround(bi + eps);
        if (den === 0) den = eps;
        ov[i] = Math.fround(av[i]! / den) * (bi !== 0 ? 1 : 0);
      }
      return out;
    },
  });
}

// biome-ignore lint/suspicious/noExplicitAny: the wasm backend's heap helpers are not in tfjs' public types
type WasmBackend = any;

/** Size classes per doubling for tensor buffers (see installWasmSizeClasses): at most 1/8 = 12.5 % over. */
export const WASM_SIZE_CLASSES_PER_OCTAVE = 8;
/** Buffers below this many bytes keep their exact size (the allocator's own small bins serve them well). */
const SIZE_CLASS_MIN_BYTES = 4096;

/** The byte count a tensor buffer of `bytes` is allocated with on wasm: rounded up to its size class. */
export function wasmSizeClass(bytes: number): number {
  if (bytes < SIZE_CLASS_MIN_BYTES) return bytes;
  const step = 2 ** Math.floor(Math.log2(bytes)) / WASM_SIZE_CLASSES_PER_OCTAVE;
  return Math.ceil(bytes / step) * step;
}

/**
 * The wasm backend's tensor buffers come from the module's malloc (dlmalloc) in exactly the bytes asked for, in
 * the same heap as XNNPACK's own allocations. Over the relevance passes this fragments the heap without bound:
 * a free gap left by one tensor is split for a smaller request, and the next tensor of the first size no longer
 * fits, so the heap grows. Measured (`results/soak/`, the embedded model, transformer attribution): the heap grew
 * about 0.3 MiB per image, to 1.1 GiB after 4,276 images, while the live tensors stayed the same, and 130 of
 * 144 MiB sat free in pieces between 64 KiB and 1 MiB. Rounding every buffer of 4 KiB or more up to one of eight
 * size classes per doubling makes freed gaps fit the next buffer of the same class: the heap then stays flat
 * (16 MiB over the same loop). Only the reservation grows; the tensor sees its own size, so no value changes.
 */
function installWasmSizeClasses(be: WasmBackend): void {
  const mod = be?.wasm;
  if (!mod || mod.benchSizeClasses) return;
  // Emscripten binds _malloc and _free lazily: the first call replaces the property with the raw export. Call
  // both once so that the wrapper below is not overwritten.
  mod._free(mod._malloc(8));
  const malloc: (n: number) => number = mod._malloc;
  mod._malloc = (n: number) => malloc(wasmSizeClass(n));
  mod.benchSizeClasses = true;
}

function installWasmSlice(): void {
  const original = tf.getKernel('Slice', 'wasm');
  if (!original) return;
  tf.unregisterKernel('Slice', 'wasm');
  tf.registerKernel({
    kernelName: 'Slice',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: tf.TensorInfo };
      if (x.dtype === 'string') return original.kernelFunc(args);
      const be = args.backend as WasmBackend;
      const { begin, size } = args.attrs as unknown as { begin: number | number[]; size?: number | number[] };
      const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size) as [number[], number[]];
      const out = be.makeOutput(s, x.dtype);
      // Views only after makeOutput: allocating may grow the heap, which detaches older views.
      copySlice(be.typedArrayFromHeap(x), x.shape, be.typedArrayFromHeap(out), b, s);
      return out;
    },
  });
}

/** Copy the box [begin, begin + size) of a row-major array of `shape` into `out`, in contiguous runs. */
function copySlice(
  src: tf.TypedArray,
  shape: readonly number[],
  out: tf.TypedArray,
  begin: readonly number[],
  size: readonly number[],
): void {
  const total = size.reduce((a, b) => a * b, 1);
  if (total === 0) return;
  const rank = shape.length;
  if (rank === 0) {
    out[0] = src[0]!;
    return;
  }
  const strides = new Array<number>(rank);
  for (let i = rank - 1, st = 1; i >= 0; i--) {
    strides[i] = st;
    st *= shape[i]!;
  }
  // The longest contiguous run: trailing axes taken whole, plus the first partial one.
  let inner = rank - 1;
  let run = size[rank - 1] ?? 1;
  while (inner > 0 && size[inner] === shape[inner]) {
    inner--;
    run *= size[inner]!;
  }
  const outer = inner; // axes [0, outer) are iterated; axis `inner` onwards forms one run
  const idx = new Array<number>(outer).fill(0);
  let base = 0;
  for (let i = 0; i < rank; i++) base += begin[i]! * strides[i]!;
  for (let o = 0; o < total; o += run) {
    let off = base;
    for (let i = 0; i < outer; i++) off += idx[i]! * strides[i]!;
    out.set(src.subarray(off, off + run), o);
    for (let i = outer - 1; i >= 0; i--) {
      if (++idx[i]! < size[i]!) break;
      idx[i] = 0;
    }
  }
}
