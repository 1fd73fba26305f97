import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { bench } from './helpers/cli.js';

/**
 * bench report --method and bench regress --method (issue 17): the report and the comparison restricted to some
 * methods, built-in names, aliases, groups and plug-in files alike (a plug-in file gives the name in its module), on
 * fabricated result folders: two segmentation runs of one model (the newer without the plug-in), one perturbation
 * run with three methods and one ERASER run.
 */

const IXG = resolve('examples/methods/input-x-gradient.ts');

function summary(root: string, dir: string, value: object, ageSeconds: number): void {
  mkdirSync(join(root, dir), { recursive: true });
  const file = join(root, dir, 'summary.json');
  writeFileSync(file, JSON.stringify(value));
  const t = new Date(Date.now() - ageSeconds * 1000);
  utimesSync(file, t, t);
}

function fabricatedResults(): string {
  const root = mkdtempSync(join(tmpdir(), 'bench-report-methods-'));
  const seg = (pixelAccuracy: number) => ({
    pixelAccuracy,
    mIoU: pixelAccuracy - 20,
    mAP: pixelAccuracy + 5,
    iouBackground: pixelAccuracy - 1,
    iouForeground: pixelAccuracy - 40,
    rowF1: 20,
  });
  const model = 'vit_shapes_tiny';
  summary(
    root,
    'seg/vit_shapes_tiny/new',
    { benchmark: 'segmentation', model, images: 32, methods: { rollout: seg(70), transformer_attribution: seg(90) } },
    10,
  );
  summary(
    root,
    'seg/vit_shapes_tiny/old',
    { benchmark: 'segmentation', model, images: 32, methods: { input_x_gradient: seg(60), rollout: seg(71) } },
    100,
  );
  const steps = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
  const curve = (auc: number) => ({
    accuracy: steps.map((s) => Math.max(0, 1 - s * (1 - auc / 100) * 2)),
    counts: steps.map(() => 1),
    auc,
    images: 24,
  });
  const pert = (neg: number, pos: number) => ({ top: { negative: curve(neg), positive: curve(pos) } });
  summary(
    root,
    'perturb/vit_shapes_tiny/run',
    {
      benchmark: 'perturbation',
      model,
      ties: 'torch',
      steps,
      pixelsRemoved: steps.map((s) => Math.round(s * 50176)),
      results: {
        rollout: pert(71.11, 41.11),
        transformer_attribution: pert(83.75, 28.96),
        input_x_gradient: pert(80.63, 50.42),
      },
      files: {},
      shard: null,
    },
    50,
  );
  const ks = [5, 10, 20];
  const f1 = (v: number) => ({ tokenF1: Object.fromEntries(ks.map((k) => [k, v + k / 1000])) });
  summary(
    root,
    'eraser/bert/run',
    {
      benchmark: 'eraser',
      model: 'bert-embedded-eraser',
      documents: 6,
      accuracy: 1,
      ks,
      methods: { rollout: f1(0.2), input_x_gradient: f1(0.3), generic_attention: f1(0.4) },
    },
    50,
  );
  return root;
}

describe('bench report --method', () => {
  const root = fabricatedResults();

  test('a plug-in file and a built-in: only those rows, each from the newest run holding it; plots redrawn', () => {
    const out = join(root, 'report-ixg');
    const r = bench([
      'report',
      '--results',
      root,
      '--out',
      out,
      '--method',
      IXG,
      '--method',
      'transformer_attribution',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /methods: input_x_gradient, transformer_attribution/);
    assert.match(r.stdout, /sections: segmentation, perturbation, eraser/);
    const md = readFileSync(join(out, 'index.md'), 'utf8');
    assert.match(md, /Methods: `input_x_gradient`, `transformer_attribution`\./);
    // Segmentation: the newer run for transformer attribution, the older one for the plug-in; no rollout row.
    const segPart = md.slice(md.indexOf('## ImageNet-segmentation'), md.indexOf('## Perturbation test'));
    assert.match(
      segPart,
      /### vit_shapes_tiny: `seg\/vit_shapes_tiny\/new` [^\n]*\n\n[^\n]*\n\|---[^\n]*\n\| transformer_attribution \| 90\.00 \| 70\.00 \| 95\.00 \| – \|\n\n/,
    );
    assert.match(
      segPart,
      /### vit_shapes_tiny: `seg\/vit_shapes_tiny\/old` [^\n]*\n\n[^\n]*\n\|---[^\n]*\n\| input_x_gradient \| 60\.00 \| 40\.00 \| 65\.00 \| – \|\n\n/,
    );
    assert.doesNotMatch(md, /\| rollout \|/);
    // Perturbation: the methods in the order asked; the plot drawn again with them alone.
    assert.match(
      md,
      /\| input_x_gradient \| top \| 80\.63 \| 50\.42 \| 24 \|\n\| transformer_attribution \| top \| 83\.75 \| 28\.96 \| 24 \|\n/,
    );
    assert.match(md, /!\[perturbation curves\]\(assets\/perturbation-vit_shapes_tiny\.png\)/);
    const svg = readFileSync(join(out, 'assets', 'perturbation-vit_shapes_tiny.svg'), 'utf8');
    assert.match(svg, /input_x_gradient/);
    assert.doesNotMatch(svg, /rollout/);
    // ERASER: the plug-in only (transformer attribution is not in that run).
    assert.match(md, /\| input_x_gradient \| 0\.305 \| 0\.310 \| 0\.320 \|/);
    assert.doesNotMatch(md, /\| generic_attention \|/);
    assert.ok(existsSync(join(out, 'assets', 'token_f1-bert-embedded-eraser.png')));
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.doesNotMatch(html, /<img src="(?!data:)/);
  });

  test("a plug-in's results by name, an alias and a group; a method no run holds is noted, not an error", () => {
    const out = join(root, 'report-names');
    const r = bench(['report', '--results', root, '--out', out, '--method', 'input_x_gradient,full_lrp,paper']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /methods: input_x_gradient, lrp, rollout, raw_attention, gradcam, partial_lrp, transformer_attribution\n/,
    );
    assert.match(r.stderr, /no finished run under .* holds lrp, raw_attention, gradcam, partial_lrp\n/);
    const md = readFileSync(join(out, 'index.md'), 'utf8');
    assert.match(md, /No finished run here holds `lrp`, `raw_attention`, `gradcam`, `partial_lrp`\./);
    // Each run once; rollout from the newest segmentation run that has it.
    assert.match(md, /`seg\/vit_shapes_tiny\/new`[\s\S]*\| rollout \| 70\.00 \|[\s\S]*`seg\/vit_shapes_tiny\/old`/);
    assert.doesNotMatch(md, /\| rollout \| 71\.00 \|/);
  });

  test('an unknown method: one error line naming it, nothing written', () => {
    const out = join(root, 'report-bad');
    const r = bench(['report', '--results', root, '--out', out, '--method', 'rollout', '--method', 'grad_rollout']);
    assert.equal(r.code, 1);
    const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('bench: note:'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^bench: error: --method grad_rollout: unknown method: not a built-in name or alias, 'all', 'paper' or a plug-in file, and no finished run under .* holds it \(they hold [^)]*input_x_gradient[^)]*\)$/,
    );
    assert.ok(!existsSync(out));
    const missing = bench(['report', '--results', root, '--out', out, '--method', './no-such-method.mjs']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /bench: error: plug-in method .*no-such-method\.mjs: no such file\n/);
    assert.ok(!existsSync(out));
  });
});

describe('bench regress --method', () => {
  const root = fabricatedResults();
  const expected = join(root, 'expected.json');
  const oneError = (stderr: string) => {
    const lines = stderr.split('\n').filter((l) => l && !l.startsWith('bench: note:'));
    assert.equal(lines.length, 1, stderr);
    return lines[0]!;
  };

  test("a plug-in's numbers are recorded, compared alone by its file or name, and updated alone", () => {
    const made = bench(['regress', '--expected', expected, '--results', root, '--update']);
    assert.equal(made.code, 0, made.stderr);
    const file = JSON.parse(readFileSync(expected, 'utf8'));
    assert.deepEqual(Object.keys(file.benchmarks.perturbation.numbers), [
      'rollout',
      'transformer_attribution',
      'input_x_gradient',
    ]);
    for (const method of [IXG, 'input_x_gradient']) {
      const r = bench(['regress', '--expected', expected, '--results', root, '--method', method]);
      assert.equal(r.code, 0, r.stderr);
      // Perturbation (negative and positive) and ERASER (k = 5, 10, 20): the plug-in's five numbers only.
      assert.match(r.stdout, /PASS: all 5 numbers within tolerance/);
      assert.match(
        r.stdout,
        /\| perturbation \| input_x_gradient \| negative AUC, top class \| 80\.63\d* \| 80\.63\d* \| 0 \|/,
      );
      assert.doesNotMatch(r.stdout, /\| rollout \|/);
    }
    // --update with --method: only the plug-in's numbers are rewritten; the others keep theirs.
    const zeroed = JSON.parse(readFileSync(expected, 'utf8'));
    for (const b of Object.values(zeroed.benchmarks) as { numbers: Record<string, unknown> }[])
      b.numbers = JSON.parse(JSON.stringify(b.numbers).replace(/"expected":[^,}]+/g, '"expected":0'));
    const other = join(root, 'zeroed.json');
    writeFileSync(other, JSON.stringify(zeroed));
    const up = bench(['regress', '--expected', other, '--results', root, '--update', '--method', IXG]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /kept the expected numbers of rollout, transformer_attribution/);
    const after = JSON.parse(readFileSync(other, 'utf8'));
    assert.deepEqual(
      after.benchmarks.perturbation.numbers.input_x_gradient,
      file.benchmarks.perturbation.numbers.input_x_gradient,
    );
    assert.equal(after.benchmarks.perturbation.numbers.rollout.top.negative.expected, 0);
    assert.deepEqual(Object.keys(after.benchmarks.eraser.numbers), [
      'rollout',
      'input_x_gradient',
      'generic_attention',
    ]);
  });

  test('the embedded baseline and a plug-in: the built-in compared, the plug-in named as not in the file', () => {
    const r = bench([
      'regress',
      '--suite',
      'embedded',
      '--results',
      root,
      '--method',
      `${IXG},transformer_attribution`,
    ]);
    // The fabricated runs are not the embedded numbers: FAIL, but only transformer attribution's rows are there.
    assert.equal(r.code, 1);
    assert.match(r.stdout, /\| segmentation \| transformer_attribution \| pixelAccuracy \|/);
    assert.doesNotMatch(r.stdout, /\| (segmentation|perturbation|eraser) \| (rollout|input_x_gradient) \|/);
    assert.match(r.stdout, /Note: input_x_gradient: not in the expected file, so not compared/);
    const only = bench(['regress', '--suite', 'embedded', '--results', root, '--method', IXG]);
    assert.equal(only.code, 1);
    assert.match(
      oneError(only.stderr),
      /^bench: error: --method input_x_gradient: .*embedded-baseline\.json has no numbers of this method \(it has rollout, .*\); record them with --update --expected FILE$/,
    );
  });

  test('an unknown method: one error line naming it', () => {
    const r = bench(['regress', '--suite', 'embedded', '--results', root, '--method', 'grad_rollout']);
    assert.equal(r.code, 1);
    assert.match(oneError(r.stderr), /^bench: error: --method grad_rollout: unknown method: /);
  });
});
