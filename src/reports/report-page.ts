import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';
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
  log?: (s: string) => void;
}

export interface ReportFiles {
  markdown: string;
  html: string;
  sections: string[];
}

const f2 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(2));

export async function writeReport(opts: ReportOptions): Promise<ReportFiles> {
  const index = indexResults(opts.resultsDir);
  const assets = join(opts.outDir, 'assets');
  mkdirSync(assets, { recursive: true });
  const ctx: Ctx = { index, outDir: opts.outDir, assets, log: opts.log ?? (() => {}) };
  const md: string[] = [
    '# bench report',
    '',
    `Results folder: \`${opts.resultsDir}\`. Made ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC.`,
    'Each section shows the newest finished run of each model.',
    '',
  ];
  const sections: string[] = [];
  const add = (name: string, lines: string[]) => {
    if (lines.length === 0) return;
    sections.push(name);
    md.push(...lines, '');
  };
  add('regression', regressionSection(ctx));
  const paper = opts.paperFile && existsSync(opts.paperFile) ? readExpectedFile(opts.paperFile) : undefined;
  add('segmentation', segmentationSection(ctx, paper));
  add('perturbation', perturbationSection(ctx, paper));
  add('eraser', eraserSection(ctx));
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
}

/** The newest run of each model, for one benchmark. */
function newestPerModel<B extends BenchmarkRun['benchmark']>(
  ctx: Ctx,
  b: B,
): Extract<BenchmarkRun, { benchmark: B }>[] {
  const seen = new Set<string>();
  const out: Extract<BenchmarkRun, { benchmark: B }>[] = [];
  for (const r of ctx.index.runs) {
    if (r.benchmark !== b || seen.has(r.summary.model)) continue;
    seen.add(r.summary.model);
    out.push(r as Extract<BenchmarkRun, { benchmark: B }>);
  }
  return out;
}

/** Copies a file into assets/ under a unique name; returns its path relative to the report. */
function asset(ctx: Ctx, file: string, name: string): string {
  const stem = name.endsWith(extname(file)) ? name.slice(0, -extname(file).length) : name;
  const target = join(ctx.assets, `${stem.replace(/[^A-Za-z0-9_.-]+/g, '_')}${extname(file)}`);
  copyFileSync(file, target);
  return relative(ctx.outDir, target);
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
  const runs = newestPerModel(ctx, 'segmentation');
  if (runs.length === 0) return [];
  const lines = [
    '## ImageNet-segmentation',
    '',
    'Pixel accuracy and mIoU from data-set-level counts; mAP = mean of per-image AP (percent; higher is better).',
    '',
  ];
  for (const r of runs) {
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
      for (const [m, v] of Object.entries(s.methods))
        lines.push(
          `| ${m} | ${f2(v.pixelAccuracy)} | ${f2(p[m]?.pixelAccuracy)} | ${f2(v.mIoU)} | ${f2(p[m]?.mIoU)} | ${f2(v.mAP)} | ${f2(p[m]?.mAP)} |`,
        );
    } else {
      lines.push('| method | pixel accuracy | mIoU | mAP | constant maps |', '|---|---|---|---|---|');
      for (const [m, v] of Object.entries(s.methods))
        lines.push(`| ${m} | ${f2(v.pixelAccuracy)} | ${f2(v.mIoU)} | ${f2(v.mAP)} | ${v.constantMaps ?? '–'} |`);
    }
    const imgDir = join(r.dir, 'images');
    if (existsSync(imgDir)) {
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

function perturbationSection(ctx: Ctx, paper: ReturnType<typeof readExpectedFile> | undefined): string[] {
  const runs = newestPerModel(ctx, 'perturbation');
  if (runs.length === 0) return [];
  const lines = [
    '## Perturbation test',
    '',
    'AUC (percent) of top-1 accuracy against the fraction of pixels removed: negative (least relevant first) is',
    'better when higher, positive (most relevant first) when lower.',
    '',
  ];
  for (const r of runs) {
    const s = r.summary;
    lines.push(runHeading(r, `ties: ${s.ties ?? 'unknown'}`), '');
    const p = paper && paper.benchmarks.perturbation?.model === s.model ? expectedPerturbationTable(paper) : undefined;
    lines.push(
      p
        ? '| method | vis class | negative AUC ↑ | paper | positive AUC ↓ | paper | images |'
        : '| method | vis class | negative AUC ↑ | positive AUC ↓ | images |',
      p ? '|---|---|---|---|---|---|---|' : '|---|---|---|---|---|',
    );
    for (const [m, byVis] of Object.entries(s.results))
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
    if (existsSync(png)) lines.push('', `![perturbation curves](${asset(ctx, png, `perturbation-${s.model}`)})`);
    lines.push('');
  }
  return lines;
}

function eraserSection(ctx: Ctx): string[] {
  const runs = newestPerModel(ctx, 'eraser');
  if (runs.length === 0) return [];
  const lines = [
    '## ERASER movie reviews',
    '',
    'Token-F1 (ERASER metrics.py, token-level instance-macro F1) of the top-k words of each explanation.',
    '',
  ];
  for (const r of runs) {
    const s = r.summary;
    const all = s.ks ?? [];
    const ks = all.filter((k) => [5, 10, 20, 40, 80].includes(k));
    const shown = ks.length ? ks : all.slice(0, 6);
    lines.push(runHeading(r, `${s.documents} documents, classifier accuracy ${(100 * s.accuracy).toFixed(1)}%`), '');
    lines.push(`| method | ${shown.map((k) => `k=${k}`).join(' | ')} |`, `|---|${shown.map(() => '---').join('|')}|`);
    for (const [m, v] of Object.entries(s.methods))
      lines.push(`| ${m} | ${shown.map((k) => v.tokenF1[k]?.toFixed(3) ?? '–').join(' | ')} |`);
    const png = join(r.dir, 'token_f1.png');
    if (existsSync(png)) lines.push('', `![token-F1 against k](${asset(ctx, png, `token_f1-${s.model}`)})`);
    lines.push('');
  }
  return lines;
}

/** The newest visualize run of each model and vis class. */
function newestVisualizations(ctx: Ctx): VisualizeRun[] {
  const seen = new Set<string>();
  return ctx.index.visualize.filter((r) => {
    const key = `${r.summary.model}/${r.summary.visClass}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function gallerySection(ctx: Ctx, count: number): Promise<string[]> {
  const runs = newestVisualizations(ctx);
  if (runs.length === 0) return [];
  const lines = [
    '## Gallery of explanations',
    '',
    `The first ${count} images of each visualisation run, per method.`,
    '',
  ];
  for (const r of runs) {
    const s = r.summary;
    lines.push(runHeading(r, `${s.visClass} class, ${s.images} images`), '');
    for (const [method, file] of Object.entries(s.files)) {
      if (!existsSync(file)) {
        lines.push(`- ${method}: \`${file}\` is missing`);
        continue;
      }
      const png = join(ctx.assets, `gallery-${s.model}-${s.visClass}-${method}.png`.replace(/[^A-Za-z0-9_.-]+/g, '_'));
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
