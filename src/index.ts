/**
 * The package entry point: the public API for plug-in explanation methods (docs/writing-a-method.md).
 *
 *   import type { ExplanationMethod } from 'bench';
 *   export default { name: 'my_method', … } satisfies ExplanationMethod;
 *
 * A plug-in is loaded by `--method ./my-method.ts` and joins the built-ins' shared pass. Only types are exported:
 * a plug-in computes with `ctx.tf`, the TensorFlow.js instance bench runs on.
 */
export type { ModelFamily, ModelInfo } from './methods/model-pass.js';
export type { ClassRequest, PassContext } from './methods/pass.js';
export type { ExplanationMethod, HeadKind, MethodOptions, Need } from './methods/types.js';
export type { RuleSetName } from './rules/types.js';
