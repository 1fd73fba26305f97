import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { TieRule } from '../benchmarks/perturbation-core.js';
import { type ModelArgs, SHARD_OPTION, STEAL_LOCK_OPTION, WORKERS_OPTION, withModelOptions } from './options.js';

export interface PerturbArgs extends ModelArgs {
  vis?: string[];
  'vis-dir'?: string;
  method?: string[];
  pos: boolean;
  neg: boolean;
  ties: TieRule;
  'batch-size': number;
  'classifier-engine': 'auto' | 'tfjs' | 'onnxruntime';
  out?: string;
  name?: string;
  json?: string;
  limit?: number;
  shard?: string;
  workers?: number;
  resume: boolean;
  'steal-lock'?: boolean;
  quiet: boolean;
}

export const perturbCommand: CommandModule<object, PerturbArgs> = {
  command: 'perturb',
  describe:
    'positive/negative perturbation test (accuracy while removing pixels by relevance, and its AUC) over bench visualize outputs',
  builder: (y: Argv) =>
    withModelOptions(y)
      .option('vis', {
        type: 'string',
        array: true,
        describe: 'results.hdf5 file(s) from bench visualize (or the official generate_visualizations.py)',
      })
      .option('vis-dir', { type: 'string', describe: 'a folder: every <method>/<vis-class>/results.hdf5 under it' })
      .option('method', {
        type: 'string',
        array: true,
        describe:
          "only these methods, in this order: built-in names, 'all', 'paper', or plug-in files (their names). With --vis/--vis-dir: the files of these methods; with neither (the embedded default): the methods explained first, a plug-in into its own cached folder",
      })
      .option('pos', {
        type: 'boolean',
        default: false,
        describe: 'positive perturbation: remove the most relevant pixels first (lower AUC is better)',
      })
      .option('neg', {
        type: 'boolean',
        default: false,
        describe:
          'negative perturbation: remove the least relevant pixels first (higher AUC is better); both when neither is given',
      })
      .option('ties', {
        choices: ['torch', 'stable'] as const,
        default: 'torch' as TieRule,
        describe:
          "pixels tied at the cut: 'torch' = the official torch.topk (libstdc++ nth_element) selection; 'stable' = value, then pixel index",
      })
      .option('batch-size', {
        alias: 'batch',
        type: 'number',
        // Measured on wasm (one thread, busy 2-core machine), classifier seconds per classified copy: embedded
        // model 16.9 ms at batch 1, 16.3 at 16, 16.2 at 24; ViT-B/16 geometry 1.27–1.35 s at 1, 2, 4, 8 and 16
        // alike. No size is measurably faster, so the default is the official script's 16 (README, perturb).
        default: 16,
        describe:
          'images per classifier batch: the unperturbed images, then each step’s perturbed copies, go through the model as one batch; any size gives the same numbers (none measured faster on wasm; 16 is the official script’s)',
      })
      .option('classifier-engine', {
        choices: ['auto', 'tfjs', 'onnxruntime'] as const,
        default: 'auto' as const,
        // Measured (results/speed/README.md, 2026-12-02): onnxruntime-node ran the ViT-B/16 classifier pass 3.7× (1
        // thread) and 3.0× (2 threads) faster than wasm per image, with the same top-1 decisions on every golden
        // perturbation case.
        describe:
          "what runs the classifier passes: 'onnxruntime' (onnxruntime-node, CPU, one thread per worker; an optional dependency), 'tfjs' (the --backend in use); 'auto': onnxruntime when it is installed and the backend is wasm or cpu, else tfjs",
      })
      .option('out', {
        type: 'string',
        describe: 'output folder (default results/perturb/<model>/<name or timestamp>/)',
      })
      .option('name', { type: 'string', describe: 'run name for the default output folder' })
      .option('json', {
        type: 'string',
        describe: 'write { <method>: { <top|target>: { negative: { accuracy: [10], auc }, positive: {…} } } }',
      })
      .option('limit', { type: 'number', describe: 'only the first N images of each file' })
      .option('shard', SHARD_OPTION)
      .option('workers', WORKERS_OPTION)
      .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted run in --out' })
      .option('steal-lock', STEAL_LOCK_OPTION)
      .option('quiet', {
        type: 'boolean',
        default: false,
        describe: 'no progress output',
      }) as unknown as Argv<PerturbArgs>,
  handler: async (args: ArgumentsCamelCase<PerturbArgs>) => {
    const { runPerturbCommand } = await import('./perturb-run.js');
    await runPerturbCommand(args);
  },
};
