import { createRequire } from 'node:module';
import type * as TF from '@tensorflow/tfjs';

/**
 * TensorFlow.js for the project's modules: `import * as tf from '../engine/tf.js'`, then tf.tidy, tf.Tensor4D, …
 *
 * Why not `import * as tf from '@tensorflow/tfjs'`: Node imports a CommonJS package into an ES module by
 * first scanning its source for export names (cjs-module-lexer), and @tensorflow/tfjs is several MB of
 * CommonJS bundles: the scan took longer than loading the package (issue 12: 1.0 s against 0.25 s with
 * require() on a busy 2-core machine, most of a command's start). So the package is loaded with require()
 * (the same instance an `import` elsewhere gets) and the names the project uses are re-exported here, with
 * tfjs' own types. A name missing here is a compile error: add it to the list.
 */
const tf = createRequire(import.meta.url)('@tensorflow/tfjs') as typeof TF;

/** The whole TensorFlow.js namespace, the instance bench runs on (what plug-in methods get as PassContext.tf). */
export const tfjs: typeof TF = tf;

export const {
  abs,
  add,
  addN,
  argMax,
  cast,
  clone,
  concat,
  customGrad,
  dispose,
  div,
  engine,
  env,
  equal,
  erf,
  exp,
  expandDims,
  eye,
  fill,
  gather,
  getBackend,
  getGradient,
  getKernel,
  grad,
  greater,
  keep,
  matMul,
  max,
  mean,
  min,
  moments,
  mul,
  notEqual,
  oneHot,
  ones,
  onesLike,
  ready,
  registerGradient,
  registerKernel,
  relu,
  reshape,
  rsqrt,
  setBackend,
  slice,
  slice_util,
  softmax,
  square,
  sub,
  sum,
  tanh,
  tensor,
  tensor1d,
  tensor2d,
  tensor3d,
  tensor4d,
  tidy,
  tile,
  transpose,
  unregisterKernel,
  util,
  where,
  zeros,
  zerosLike,
} = tf;

export type {
  GradSaveFunc,
  Tensor,
  Tensor1D,
  Tensor2D,
  Tensor3D,
  Tensor4D,
  TensorInfo,
  TypedArray,
} from '@tensorflow/tfjs';
