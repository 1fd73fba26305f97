/**
 * Heat-map overlays as the paper's notebooks draw them (`show_cam_on_image`):
 *
 *     heatmap = cv2.applyColorMap(np.uint8(255 * mask), cv2.COLORMAP_JET) / 255
 *     cam = heatmap + img;  cam = cam / np.max(cam);  vis = np.uint8(255 * cam)
 *
 * with everything kept in RGB order here. (The notebooks add OpenCV's BGR heat map to an RGB image and then swap the
 * channels for display, which shows the photo with red and blue exchanged; that quirk is not reproduced.)
 */
import type { OverlayOptions } from 'sharp';
import { writeFileAtomic } from '../util/files.js';

function clamp01(x: number): number {
  return Math.min(Math.max(x, 0), 1);
}

/**
 * The "jet" colour map (blue → cyan → green → yellow → red) at v ∈ [0, 1] (clamped), as RGB floats in [0, 1]:
 * r = clamp(1.5 − |4v − 3|), g = clamp(1.5 − |4v − 2|), b = clamp(1.5 − |4v − 1|). This is the piecewise-linear
 * jet of OpenCV's COLORMAP_JET and MATLAB (jet(0) = dark blue (0, 0, 0.5), jet(1) = dark red (0.5, 0, 0)); it is
 * within a few 1/255 of matplotlib's 'jet'.
 */
export function jet(v: number): [number, number, number] {
  const x = Number.isNaN(v) ? 0 : clamp01(v);
  return [clamp01(1.5 - Math.abs(4 * x - 3)), clamp01(1.5 - Math.abs(4 * x - 2)), clamp01(1.5 - Math.abs(4 * x - 1))];
}

/** 256-entry uint8 jet table, like the one `cv2.applyColorMap` indexes with a uint8 image. */
const JET_LUT = (() => {
  const t = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = jet(i / 255);
    t[i * 3] = Math.round(r * 255);
    t[i * 3 + 1] = Math.round(g * 255);
    t[i * 3 + 2] = Math.round(b * 255);
  }
  return t;
})();

/**
 * Overlays `map` (h × w, values in [0, 1]) on `imageRGB` (HWC uint8, w × h): heat = jet(uint8(255·map)) / 255,
 * cam = heat + img / 255, cam /= max(cam), result uint8(255·cam) (truncated, as numpy's cast). All in float32 as the
 * notebooks compute it. Returns HWC RGB uint8.
 */
export function overlayHeatmap(imageRGB: Uint8Array, map: Float32Array, w: number, h: number): Uint8Array {
  const n = w * h;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w <= 0 || h <= 0) {
    throw new RangeError(`overlay size must be positive integers, got ${w}×${h}`);
  }
  if (imageRGB.length !== n * 3) throw new RangeError(`overlay image needs ${n * 3} bytes, got ${imageRGB.length}`);
  if (map.length !== n) throw new RangeError(`overlay map needs ${n} values, got ${map.length}`);
  const f = Math.fround;
  const cam = new Float32Array(n * 3);
  let max = 0;
  for (let p = 0; p < n; p++) {
    const m = map[p]!;
    // np.uint8(255 * mask): float32 product, truncated; values outside [0, 1] are clamped instead of wrapping.
    const scaled = Number.isNaN(m) ? 0 : f(255 * m);
    const idx = scaled <= 0 ? 0 : scaled >= 255 ? 255 : Math.trunc(scaled);
    for (let c = 0; c < 3; c++) {
      const v = f(f(JET_LUT[idx * 3 + c]! / 255) + f(imageRGB[p * 3 + c]! / 255));
      cam[p * 3 + c] = v;
      if (v > max) max = v;
    }
  }
  const out = new Uint8Array(n * 3);
  if (max === 0) return out;
  for (let i = 0; i < n * 3; i++) {
    const v = f(255 * f(cam[i]! / max));
    out[i] = v >= 255 ? 255 : Math.trunc(v);
  }
  return out;
}

export interface Panel {
  title: string;
  /** HWC RGB uint8, `width · height · 3` bytes. */
  rgb: Uint8Array;
  width: number;
  height: number;
}

const MARGIN = 8;
const GAP = 8;
const TITLE_HEIGHT = 24;
const FONT_SIZE = 14;

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/**
 * Writes the panels side by side (top-aligned, on white) with each title centred above its panel, as a PNG. Titles
 * are rendered from an SVG text overlay with the system's fonts (DejaVu Sans or any sans-serif); a title too wide for
 * its panel is set in a smaller font. The parent folder is created if needed.
 */
export async function writePanelsPng(file: string, panels: readonly Panel[]): Promise<void> {
  if (panels.length === 0) throw new RangeError('writePanelsPng: no panels');
  for (const [i, p] of panels.entries()) {
    if (!Number.isInteger(p.width) || !Number.isInteger(p.height) || p.width <= 0 || p.height <= 0) {
      throw new RangeError(`panel ${i} ('${p.title}'): size must be positive integers, got ${p.width}×${p.height}`);
    }
    if (p.rgb.length !== p.width * p.height * 3) {
      throw new RangeError(`panel ${i} ('${p.title}'): needs ${p.width * p.height * 3} bytes, got ${p.rgb.length}`);
    }
  }
  const totalWidth = 2 * MARGIN + panels.reduce((s, p) => s + p.width, 0) + GAP * (panels.length - 1);
  const maxHeight = Math.max(...panels.map((p) => p.height));
  const totalHeight = MARGIN + TITLE_HEIGHT + maxHeight + MARGIN;

  const composites: OverlayOptions[] = [];
  const texts: string[] = [];
  let left = MARGIN;
  for (const p of panels) {
    composites.push({
      input: Buffer.from(p.rgb.buffer, p.rgb.byteOffset, p.rgb.byteLength),
      raw: { width: p.width, height: p.height, channels: 3 },
      left,
      top: MARGIN + TITLE_HEIGHT,
    });
    // About 0.6 em per character for DejaVu Sans; shrink the font for long titles.
    const size = Math.max(7, Math.min(FONT_SIZE, Math.floor((p.width - 4) / (0.6 * Math.max(1, p.title.length)))));
    texts.push(
      `<text x="${left + p.width / 2}" y="${MARGIN + TITLE_HEIGHT - 7}" font-size="${size}" text-anchor="middle">` +
        `${escapeXml(p.title)}</text>`,
    );
    left += p.width + GAP;
  }
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalWidth}" height="${totalHeight}">` +
    `<g font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" fill="#000">${texts.join('')}</g></svg>`;
  composites.push({ input: Buffer.from(svg), left: 0, top: 0 });

  const { default: sharp } = await import('sharp'); // loaded when a panel is written, not with the module
  // Compositing the SVG adds an (opaque) alpha channel; drop it so the PNG is plain RGB.
  const { data, info } = await sharp({
    create: { width: totalWidth, height: totalHeight, channels: 3, background: '#ffffff' },
  })
    .composite(composites)
    .raw()
    .toBuffer({ resolveWithObject: true });
  // Encoded in memory and written by writeFileAtomic: a write error (a full disk) is one line naming the file,
  // without libvips's own messages, and a half-written PNG is never left behind.
  const png = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
    .removeAlpha()
    .png()
    .toBuffer();
  writeFileAtomic(file, png);
}
