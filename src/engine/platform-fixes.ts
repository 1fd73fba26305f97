import * as tf from '@tensorflow/tfjs';

/**
 * The one place that papers over TF.js 4.22 gaps (PLATFORM.md §2). Our own model code needs none of these
 * (it computes its backward pass by hand with plain matmuls), but user code and tf.grad on the same engine
 * do, so they are installed whenever a backend is initialised:
 *  - comparison ops have no registered gradient on any backend (tf.where(greater(a,b), …) fails in tf.grad);
 *  - 'UnsortedSegmentSum' (the gradient of gather) is missing on wasm.
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
}
