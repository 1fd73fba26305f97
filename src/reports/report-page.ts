import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join, relative } from 'node:path';
import { marked } from 'marked';
import { unitCHWToRgb } from '../data/image.js';
import { readExplanations } from '../formats/expl-hdf5.js';
import { minMaxInPlace } from '../methods/postprocess.js';
import { writeFileAtomic } from '../util/files.js';
import { overlayHeatmap, type Panel, writePanelsPng } from './overlay.js';
import { expectedPerturbationTable, expectedSegmentationTable, readExpectedFile } from './regression.js';
import { type BenchmarkRun, indexResults, type ResultsIndex, type VisualizeRun } from './results-index.js';

/**
 * `bench report`: one page over a results folder: every benchmark's newest table per model, the
 * perturbation and token-F1 plots, a gallery of explanation overlays per method, and the verdicts of any
 * regression checks. Written as Markdown (images in `assets/`) and as one self-contained HTML file (images
 * inlined), so it opens in a browser from disk with no server.
 */
export interface ReportOptions {
  resultsDir: string;
  outDir: string;
  /** Expected-numbers file whose segmentation table is shown beside runs of its model (the paper's). */
  paperFile?: string;
  /** Images per method in the gallery. */
  galleryImages?: number;
  /**
   * Only these methods (result names, in this order): each table, plot and gallery shows them, per model from the
   * newest finished run holding each. Undefined: every method of the newest run of each model.
   */
  methods?: readonly string[];
  /** The results folder's index, when the caller has made it already. */
  index?: ResultsIndex;
  log?: (s: string) => void;
}

export interface ReportFiles {
  markdown: string;
  html: string;
  sections: string[];
}

const f2 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(2));

export async function writeReport(opts: ReportOptions): Promise<ReportFiles> {
  const index = opts.index ?? indexResults(opts.resultsDir);
  const assets = join(opts.outDir, 'assets');
  mkdirSync(assets, { recursive: true });
  const ctx: Ctx = {
    index,
    outDir: opts.outDir,
    assets,
    log: opts.log ?? (() => {}),
    methods: opts.methods,
    used: new Set(),
  };
  const md: string[] = [
    '# bench report',
    '',
    `Results folder: \`${opts.resultsDir}\`. Made ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC.`,
  ];
  if (opts.methods) {
    const found = methodsInResults(index);
    const absent = opts.methods.filter((m) => !found.has(m));
    md.push(
      `Methods: ${opts.methods.map((m) => `\`${m}\``).join(', ')}. Each section shows, for each model, the newest finished run holding each of them (a method of an older run when a newer one lacks it).`,
    );
    if (absent.length) {
      md.push(`No finished run here holds ${absent.map((m) => `\`${m}\``).join(', ')}.`);
      ctx.log(`no finished run under ${opts.resultsDir} holds ${absent.join(', ')}`);
    }
  } else md.push('Each section shows the newest finished run of each model.');
  md.push('');
  const sections: string[] = [];
  const add = (name: string, lines: string[]) => {
    if (lines.length === 0) return;
    sections.push(name);
    md.push(...lines, '');
  };
  add('regression', regressionSection(ctx));
  const paper = opts.paperFile && existsSync(opts.paperFile) ? readExpectedFile(opts.paperFile) : undefined;
  add('segmentation', segmentationSection(ctx, paper));
  add('perturbation', await perturbationSection(ctx, paper));
  add('eraser', await eraserSection(ctx));
  add('gallery', await gallerySection(ctx, opts.galleryImages ?? 6));
  if (sections.length === 0)
    md.push(
      'No finished benchmark runs were found here (a run is finished when its `summary.json` exists). ' +
        'Run `bench seg`, `bench perturb` or `bench eraser` first, or `bench regress --suite embedded`.',
      '',
    );
  const markdown = md.join('\n');
  const mdFile = join(opts.outDir, 'index.md');
  const htmlFile = join(opts.outDir, 'index.html');
  writeFileAtomic(mdFile, markdown);
  writeFileAtomic(htmlFile, toHtml(markdown, opts.outDir));
  return { markdown: mdFile, html: htmlFile, sections };
}

interface Ctx {
  index: ResultsIndex;
  outDir: string;
  assets: string;
  log: (s: string) => void;
  methods: readonly string[] | undefined;
  /** Asset paths given out (no two figures share a file). */
  used: Set<string>;
}

/** A run to show, and which of its methods (in the order shown). */
interface Picked<R> {
  run: R;
  methods: string[];
  /** Whether `methods` are all of the run's. */
  all: boolean;
}

/**
 * The runs to show, grouped by `key` (model, or model and vis class) in the order of `runs` (newest first). With
 * no method selection: the newest run of each group, every method of it. With one: for each method the newest run
 * of the group holding it; runs holding none are left out.
 */
function pickRuns<R>(
  runs: readonly R[],
  key: (r: R) => string,
  methodsOf: (r: R) => string[],
  wanted: readonly string[] | undefined,
): Picked<R>[] {
  const groups = new Map<string, R[]>();
  for (const r of runs) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  const out: Picked<R>[] = [];
  for (const rs of groups.values()) {
    if (!wanted) {
      out.push({ run: rs[0]!, methods: methodsOf(rs[0]!), all: true });
      continue;
    }
    const chosen = new Map<R, string[]>();
    for (const m of wanted) {
      const r = rs.find((x) => methodsOf(x).includes(m));
      if (r) chosen.set(r, [...(chosen.get(r) ?? []), m]);
    }
    for (const r of rs) {
      const ms = chosen.get(r);
      if (ms) out.push({ run: r, methods: ms, all: ms.length === methodsOf(r).length });
    }
  }
  return out;
}

/** The runs of one benchmark to show, per model. */
function benchmarkRuns<B extends BenchmarkRun['benchmark']>(
  ctx: Ctx,
  b: B,
): Picked<Extract<BenchmarkRun, { benchmark: B }>>[] {
  const runs = ctx.index.runs.filter((r): r is Extract<BenchmarkRun, { benchmark: B }> => r.benchmark === b);
  return pickRuns(runs, (r) => r.summary.model, runMethods, ctx.methods);
}

/** The methods a run holds, in its order. */
function runMethods(r: BenchmarkRun | VisualizeRun): string[] {
  switch (r.benchmark) {
    case 'perturbation':
      return Object.keys(r.summary.results);
    case 'visualize':
      return Object.keys(r.summary.files);
    default:
      return Object.keys(r.summary.methods);
  }
}

/** Every method name in the finished runs of an index (built-ins and plug-ins alike). */
export function methodsInResults(index: ResultsIndex): Set<string> {
  return new Set([...index.runs, ...index.visualize].flatMap(runMethods));
}

/** The entries of `o` for `keys`, in that order. */
function only<T>(o: Record<string, T>, keys: readonly string[]): [string, T][] {
  return keys.filter((k) => k in o).map((k) => [k, o[k]!]);
}

/** Copies a file into assets/ under a unique name; returns its path relative to the report. */
function asset(ctx: Ctx, file: string, name: string): string {
  const stem = name.endsWith(extname(file)) ? name.slice(0, -extname(file).length) : name;
  const target = `${uniqueAsset(ctx, stem)}${extname(file)}`;
  copyFileSync(file, target);
  return relative(ctx.outDir, target);
}

/** A path in assets/ (without extension) made of `name`, not yet used by this report. */
function uniqueAsset(ctx: Ctx, name: string): string {
  const stem = name.replace(/[^A-Za-z0-9_.-]+/g, '_');
  let base = join(ctx.assets, stem);
  for (let i = 2; ctx.used.has(base); i++) base = join(ctx.assets, `${stem}-${i}`);
  ctx.used.add(base);
  return base;
}

function regressionSection(ctx: Ctx): string[] {
  const files = readdirSync(ctx.index.root)
    .filter((f) => /^regress-.+\.md$/.test(f))
    .sort();
  if (files.length === 0) return [];
  const lines = ['## Regression checks', ''];
  for (const f of files) {
    const text = readFileSync(join(ctx.index.root, f), 'utf8');
    const verdict = text.match(/^\*\*((?:PASS|FAIL)[^*]*)\*\*$/m)?.[1] ?? 'no verdict found';
    const copy = asset(ctx, join(ctx.index.root, f), f.replace(/\.md$/, ''));
    lines.push(`- \`${f}\`: **${verdict}** ([table](${copy}))`);
  }
  return lines;
}

function runHeading(r: { summary: { model: string }; label: string }, detail: string): string {
  return `### ${r.summary.model}: \`${r.label}\` (${detail})`;
}

function segmentationSection(ctx: Ctx, paper: ReturnType<typeof readExpectedFile> | undefined): string[] {
  const runs = benchmarkRuns(ctx, 'segmentation');
  if (runs.length === 0) return [];
  const lines = [
    '## ImageNet-segmentation',
    '',
    'Pixel accuracy and mIoU from data-set-level counts; mAP = mean of per-image AP (percent; higher is better).',
    '',
  ];
  for (const { run: r, methods, all } of runs) {
    const s = r.summary;
    lines.push(
      runHeading(
        r,
        [
          `${s.images} images${s.data ? ` of \`${basename(s.data)}\`` : ''}`,
          s.startLayer !== undefined ? `start layer ${s.startLayer}` : '',
          s.secondsPerImage !== undefined ? `${s.secondsPerImage.toFixed(3)} s/image` : '',
        ]
          .filter(Boolean)
          .join(', '),
      ),
      '',
    );
    const p = paper && paper.benchmarks.segmentation?.model === s.model ? expectedSegmentationTable(paper) : undefined;
    if (p) {
      lines.push('| method | pixel accuracy | paper | mIoU | paper | mAP | paper |', '|---|---|---|---|---|---|---|');
      for (const [m, v] of only(s.methods, methods))
        lines.push(
          `| ${m} | ${f2(v.pixelAccuracy)} | ${f2(p[m]?.pixelAccuracy)} | ${f2(v.mIoU)} | ${f2(p[m]?.mIoU)} | ${f2(v.mAP)} | ${f2(p[m]?.mAP)} |`,
        );
    } else {
      lines.push('| method | pixel accuracy | mIoU | mAP | constant maps |', '|---|---|---|---|---|');
      for (const [m, v] of only(s.methods, methods))
        lines.push(`| ${m} | ${f2(v.pixelAccuracy)} | ${f2(v.mIoU)} | ${f2(v.mAP)} | ${v.constantMaps ?? '–'} |`);
    }
    const imgDir = join(r.dir, 'images');
    if (!all && existsSync(imgDir)) {
      lines.push('', `(Its per-image figures are left out: they show every method of the run, not only these.)`);
    } else if (existsSync(imgDir)) {
      const pngs = readdirSync(imgDir)
        .filter((f) => f.endsWith('.png'))
        .sort()
        .slice(0, 4);
      if (pngs.length) {
        lines.push('', 'Image, ground-truth mask and each method’s map:', '');
        for (const f of pngs) lines.push(`![${f}](${asset(ctx, join(imgDir, f), `seg-${s.model}-${f}`)})`, '');
      }
    }
    lines.push('');
  }
  return lines;
}

async function perturbationSection(
  ctx: Ctx,
  paper: ReturnType<typeof readExpectedFile> | undefined,
): Promise<string[]> {
  const runs = benchmarkRuns(ctx, 'perturbation');
  if (runs.length === 0) return [];
  const lines = [
    '## Perturbation test',
    '',
    'AUC (percent) of top-1 accuracy against the fraction of pixels removed: negative (least relevant first) is',
    'better when higher, positive (most relevant first) when lower.',
    '',
  ];
  for (const { run: r, methods, all } of runs) {
    const s = r.summary;
    lines.push(runHeading(r, `ties: ${s.ties ?? 'unknown'}`), '');
    const p = paper && paper.benchmarks.perturbation?.model === s.model ? expectedPerturbationTable(paper) : undefined;
    lines.push(
      p
        ? '| method | vis class | negative AUC ↑ | paper | positive AUC ↓ | paper | images |'
        : '| method | vis class | negative AUC ↑ | positive AUC ↓ | images |',
      p ? '|---|---|---|---|---|---|---|' : '|---|---|---|---|---|',
    );
    for (const [m, byVis] of only(s.results, methods))
      for (const [v, x] of Object.entries(byVis)) {
        const images = (x.negative ?? x.positive)?.images ?? '–';
        const pp = p?.[m]?.[v];
        lines.push(
          p
            ? `| ${m} | ${v} | ${f2(x.negative?.auc)} | ${f2(pp?.negative)} | ${f2(x.positive?.auc)} | ${f2(pp?.positive)} | ${images} |`
            : `| ${m} | ${v} | ${f2(x.negative?.auc)} | ${f2(x.positive?.auc)} | ${images} |`,
        );
      }
    const png = join(r.dir, 'perturbation.png');
    if (!all) {
      // The run's plot shows every method of it: drawn again with these.
      const { writePerturbationPlot } = await import('../benchmarks/perturbation.js');
      const base = uniqueAsset(ctx, `perturbation-${s.model}`);
      await writePerturbationPlot(base, { ...s, results: Object.fromEntries(only(s.results, methods)) });
      lines.push('', `![perturbation curves](${relative(ctx.outDir, `${base}.png`)})`);
    } else if (existsSync(png)) lines.push('', `![perturbation curves](${asset(ctx, png, `perturbation-${s.model}`)})`);
    lines.push('');
  }
  return lines;
}

async function eraserSection(ctx: Ctx): Promise<string[]> {
  const runs = benchmarkRuns(ctx, 'eraser');
  if (runs.length === 0) return [];
  const lines = [
    '## ERASER movie reviews',
    '',
    'Token-F1 (ERASER metrics.py, token-level instance-macro F1) of the top-k words of each explanation.',
    '',
  ];
  for (const { run: r, methods, all } of runs) {
    const s = r.summary;
    const allKs = s.ks ?? [];
    const ks = allKs.filter((k) => [5, 10, 20, 40, 80].includes(k));
    const shown = ks.length ? ks : allKs.slice(0, 6);
    lines.push(runHeading(r, `${s.documents} documents, classifier accuracy ${(100 * s.accuracy).toFixed(1)}%`), '');
    lines.push(`| method | ${shown.map((k) => `k=${k}`).join(' | ')} |`, `|---|${shown.map(() => '---').join('|')}|`);
    for (const [m, v] of only(s.methods, methods))
      lines.push(`| ${m} | ${shown.map((k) => v.tokenF1[k]?.toFixed(3) ?? '–').join(' | ')} |`);
    const png = join(r.dir, 'token_f1.png');
    if (!all) {
      const { writeTokenF1Plot } = await import('../benchmarks/eraser.js');
      const base = uniqueAsset(ctx, `token_f1-${s.model}`);
      await writeTokenF1Plot(
        dirname(base),
        { ...s, methods: Object.fromEntries(only(s.methods, methods)) },
        basename(base),
      );
      lines.push('', `![token-F1 against k](${relative(ctx.outDir, `${base}.png`)})`);
    } else if (existsSync(png)) lines.push('', `![token-F1 against k](${asset(ctx, png, `token_f1-${s.model}`)})`);
    lines.push('');
  }
  return lines;
}

async function gallerySection(ctx: Ctx, count: number): Promise<string[]> {
  const runs = pickRuns(
    ctx.index.visualize,
    (r) => `${r.summary.model}/${r.summary.visClass}`,
    runMethods,
    ctx.methods,
  );
  if (runs.length === 0) return [];
  const lines = [
    '## Gallery of explanations',
    '',
    `The first ${count} images of each visualisation run, per method.`,
    '',
  ];
  for (const { run: r, methods } of runs) {
    const s = r.summary;
    lines.push(runHeading(r, `${s.visClass} class, ${s.images} images`), '');
    for (const [method, file] of only(s.files, methods)) {
      if (!existsSync(file)) {
        lines.push(`- ${method}: \`${file}\` is missing`);
        continue;
      }
      const png = `${uniqueAsset(ctx, `gallery-${s.model}-${s.visClass}-${method}`)}.png`;
      await galleryStrip(file, png, count);
      lines.push(`#### ${method}`, '', `![${method}](${relative(ctx.outDir, png)})`, '');
    }
  }
  return lines;
}

/** One PNG: the first `count` rows of an explanation file as heat-map overlays. */
async function galleryStrip(file: string, png: string, count: number): Promise<void> {
  const reader = await readExplanations(file);
  try {
    const n = Math.min(count, reader.rows);
    const { height: h, width: w } = reader;
    const rows = reader.readRows(0, n);
    const panels: Panel[] = [];
    for (let i = 0; i < n; i++) {
      const plane = h * w;
      const { data: rgb } = unitCHWToRgb(rows.image.subarray(i * 3 * plane, (i + 1) * 3 * plane), w, h);
      const map = rows.vis.subarray(i * plane, (i + 1) * plane);
      panels.push({
        title: `#${rows.index[i]} (class ${rows.target[i]})`,
        rgb: overlayHeatmap(rgb, normalized(map), w, h),
        width: w,
        height: h,
      });
    }
    if (panels.length) await writePanelsPng(png, panels);
  } finally {
    reader.close();
  }
}

/** A min–max normalised copy (the files hold normalised maps already; others may not). */
function normalized(map: Float32Array): Float32Array {
  const copy = Float32Array.from(map);
  minMaxInPlace(copy);
  return copy;
}

/** Markdown → one HTML page with its images inlined as data URIs (so the file alone is the whole report). */
function toHtml(markdown: string, baseDir: string): string {
  const body = (marked.parse(markdown, { async: false }) as string)
    .replace(/<img src="([^"]+)"/g, (whole, src: string) => {
      const file = join(baseDir, decodeURI(src));
      if (!existsSync(file) || !src.endsWith('.png')) return whole;
      return `<img src="data:image/png;base64,${readFileSync(file).toString('base64')}"`;
    })
    .replace(/<a href="([^"]+\.md)">/g, (whole, href: string) => {
      // Linked tables are inlined too: the HTML file has to stand alone.
      const file = join(baseDir, decodeURI(href));
      if (!existsSync(file)) return whole;
      return `<a href="data:text/markdown;charset=utf-8,${encodeURIComponent(readFileSync(file, 'utf8'))}">`;
    });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>bench report</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2em; }
</style>
</head>
<body>
${body}
</body>
</html>
`;
}
