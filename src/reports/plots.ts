import type * as vl from 'vega-lite';
import { writeFileAtomic } from '../util/files.js';

/**
 * Line plots rendered headlessly: Vega-Lite → SVG (vega's 'none' renderer, no canvas package needed) →
 * PNG through sharp's librsvg. Used for the perturbation curves and the token-F1 curves. Vega, Vega-Lite
 * and sharp are imported when a plot is drawn (about a second of loading that a run needs only at its end).
 */
export interface LinePoint {
  x: number;
  y: number;
  series: string;
  /** Optional facet (one small panel per value). */
  panel?: string;
}

export interface LineChartOptions {
  title: string;
  xTitle: string;
  yTitle: string;
  seriesTitle?: string;
  yDomain?: [number, number];
  /** Panels per row when faceted. */
  columns?: number;
}

export async function lineChartSvg(points: readonly LinePoint[], o: LineChartOptions): Promise<string> {
  const faceted = points.some((p) => p.panel !== undefined);
  const layer = {
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: o.xTitle },
      y: { field: 'y', type: 'quantitative', title: o.yTitle, ...(o.yDomain ? { scale: { domain: o.yDomain } } : {}) },
      color: { field: 'series', type: 'nominal', title: o.seriesTitle ?? 'method' },
    },
  };
  const spec = faceted
    ? {
        $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
        title: o.title,
        data: { values: points },
        facet: { field: 'panel', type: 'nominal', title: null },
        columns: o.columns ?? 2,
        spec: { width: 260, height: 180, ...layer },
      }
    : {
        $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
        title: o.title,
        data: { values: points },
        width: 420,
        height: 280,
        ...layer,
      };
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vegaLite.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Write `<base>.svg` and `<base>.png` (rendered at 2× for legibility). */
export async function writeLineChart(
  base: string,
  points: readonly LinePoint[],
  o: LineChartOptions,
): Promise<{ svg: string; png: string }> {
  const svg = await lineChartSvg(points, o);
  writeFileAtomic(`${base}.svg`, svg);
  const { default: sharp } = await import('sharp');
  const png = await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toBuffer();
  writeFileAtomic(`${base}.png`, png);
  return { svg: `${base}.svg`, png: `${base}.png` };
}
