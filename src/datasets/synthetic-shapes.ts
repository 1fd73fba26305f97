import type { RgbImage } from '../data/image.js';
import { Rng } from '../util/random.js';

/**
 * The embedded default data: one striped object (a disc, square, triangle or cross, with its exact mask)
 * on smooth clutter of random colours. The class is the colour of the object's stripes, and only the
 * object is striped, so a classifier has to find the object and read it: a good explanation of its
 * decision covers the object's pixels. That is what makes the segmentation and perturbation benchmarks
 * meaningful on this data. (The colour is a local cue that a small ViT learns in minutes on two CPU
 * cores; the shape kind needs far longer training.) Everything is a pure function of the seed.
 */
export const SHAPE_CLASSES = ['red', 'green', 'blue', 'yellow'] as const;

const CLASS_COLORS: Color[] = [
  [220, 40, 40],
  [40, 190, 60],
  [50, 80, 230],
  [235, 210, 40],
];

type Color = [number, number, number];

export interface Mask {
  width: number;
  height: number;
  /** 0 = background, 1 = object; row-major. */
  data: Uint8Array;
}

export interface ShapeSample {
  image: RgbImage;
  mask: Mask;
  label: number;
}

function randomColor(rng: Rng): Color {
  return [rng.uniform(20, 235), rng.uniform(20, 235), rng.uniform(20, 235)];
}

/** Is (u, v), in the shape's own rotated frame and in units of its size, inside a shape of this kind? */
function inside(kind: number, u: number, v: number): boolean {
  switch (kind) {
    case 0:
      return u * u + v * v <= 1;
    case 1:
      return Math.abs(u) <= 0.82 && Math.abs(v) <= 0.82;
    case 2: {
      // Equilateral triangle with its circumradius 1.15, apex up.
      const r = 1.15;
      const y0 = -r;
      const y1 = r / 2;
      if (v < y0 || v > y1) return false;
      const halfWidth = ((v - y0) / (y1 - y0)) * r * Math.sin(Math.PI / 3);
      return Math.abs(u) <= halfWidth;
    }
    default:
      return (Math.abs(u) <= 0.32 && Math.abs(v) <= 1) || (Math.abs(v) <= 0.32 && Math.abs(u) <= 1);
  }
}

export function renderShapeSample(seed: number, width: number, height: number, label?: number): ShapeSample {
  const rng = new Rng(seed * 7919 + 17);
  const cls = label ?? rng.int(0, SHAPE_CLASSES.length);
  const kind = rng.int(0, 4);
  const n = width * height;
  const img = new Float32Array(n * 3);
  // Background: a two-colour gradient.
  const c0 = randomColor(rng);
  const c1 = randomColor(rng);
  const ang = rng.uniform(0, 2 * Math.PI);
  const gx = Math.cos(ang) / width;
  const gy = Math.sin(ang) / height;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + (x - width / 2) * gx + (y - height / 2) * gy));
      const p = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) img[p + c] = c0[c]! * (1 - t) + c1[c]! * t;
    }
  }
  // Clutter: soft blobs and thick smooth strokes, no stripes.
  const side = Math.min(width, height);
  const blobs = rng.int(5, 10);
  for (let b = 0; b < blobs; b++) {
    const cx = rng.uniform(0, width);
    const cy = rng.uniform(0, height);
    const r = rng.uniform(0.06, 0.2) * side;
    const col = randomColor(rng);
    const x0 = Math.max(0, Math.floor(cx - 2 * r));
    const x1 = Math.min(width, Math.ceil(cx + 2 * r));
    const y0 = Math.max(0, Math.floor(cy - 2 * r));
    const y1 = Math.min(height, Math.ceil(cy + 2 * r));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const d2 = ((x - cx) ** 2 + (y - cy) ** 2) / (r * r);
        const a = 0.85 * Math.exp(-d2);
        const p = (y * width + x) * 3;
        for (let c = 0; c < 3; c++) img[p + c] = img[p + c]! * (1 - a) + col[c]! * a;
      }
    }
  }
  const strokes = rng.int(2, 5);
  for (let s = 0; s < strokes; s++) {
    const ax = rng.uniform(0, width);
    const ay = rng.uniform(0, height);
    const th = rng.uniform(0, Math.PI);
    const nx = -Math.sin(th);
    const ny = Math.cos(th);
    const half = rng.uniform(0.01, 0.03) * side;
    const col = randomColor(rng);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const d = Math.abs((x - ax) * nx + (y - ay) * ny);
        if (d > half + 1) continue;
        const a = Math.min(1, half + 1 - d) * 0.8;
        const p = (y * width + x) * 3;
        for (let c = 0; c < 3; c++) img[p + c] = img[p + c]! * (1 - a) + col[c]! * a;
      }
    }
  }
  // The object: a striped, shaded shape.
  const size = rng.uniform(0.17, 0.27) * side;
  const cx = rng.uniform(size * 1.2, width - size * 1.2);
  const cy = rng.uniform(size * 1.2, height - size * 1.2);
  const rot = rng.uniform(0, 2 * Math.PI);
  const cr = Math.cos(rot);
  const sr = Math.sin(rot);
  const base = CLASS_COLORS[cls]!;
  const ca: Color = [base[0] + rng.uniform(-20, 20), base[1] + rng.uniform(-20, 20), base[2] + rng.uniform(-20, 20)];
  const dark = rng.uniform(0.25, 0.45);
  const cb: Color = [ca[0] * dark, ca[1] * dark, ca[2] * dark];
  const period = rng.uniform(5, 9);
  const stripeAng = rng.uniform(0, Math.PI);
  const su = Math.cos(stripeAng);
  const sv = Math.sin(stripeAng);
  const mask = new Uint8Array(n);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const u = (dx * cr + dy * sr) / size;
      const v = (-dx * sr + dy * cr) / size;
      if (!inside(kind, u, v)) continue;
      mask[y * width + x] = 1;
      const stripe = Math.sin(((dx * su + dy * sv) / period) * 2 * Math.PI) > 0 ? 1 : 0;
      const shade = 0.8 + 0.2 * (1 - Math.min(1, Math.hypot(u, v)));
      const p = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) img[p + c] = (stripe ? ca[c]! : cb[c]!) * shade;
    }
  }
  // Sensor noise.
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n * 3; i++) data[i] = Math.max(0, Math.min(255, Math.round(img[i]! + 6 * rng.normal())));
  return { image: { width, height, data }, mask: { width, height, data: mask }, label: cls };
}
