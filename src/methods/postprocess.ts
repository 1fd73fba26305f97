/**
 * The scripts' post-processing of a raw map (docs/methods.md#post-processing), bit for bit with torch 1.13 CPU:
 * `F.interpolate(raw.reshape(1, 1, h, w), scale_factor=factor, mode='bilinear')` (align_corners False),
 * then `(x − min) / (max − min)` in float32. Exactness matters beyond cosmetics: the maps hold many exactly
 * equal values (the ×16 upsampling replicates borders), and equal values decide which pixels the
 * perturbation test's top-k removes, so a one-ulp difference changes which pixels are removed.
 *
 * torch's kernel rounds each output once from a wider sum, which a float64 evaluation reproduces (checked
 * against every stored map of golden/e2e/perturb_S1); the weights themselves are computed in float32.
 */

/** Bilinear upsampling by an integer factor, as torch's `interpolate(scale_factor=factor)`. */
export function upsampleBilinearTorch(raw: ArrayLike<number>, h: number, w: number, factor: number): Float32Array {
  if (raw.length !== h * w) throw new RangeError(`map of ${raw.length} values is not ${h}×${w}`);
  const H = h * factor;
  const W = w * factor;
  const wy = linearWeights(h, H, factor);
  const wx = linearWeights(w, W, factor);
  const out = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    const r0 = wy.i0[y]! * w;
    const r1 = wy.i1[y]! * w;
    const a0 = wy.l0[y]!;
    const a1 = wy.l1[y]!;
    for (let x = 0; x < W; x++) {
      const c0 = wx.i0[x]!;
      const c1 = wx.i1[x]!;
      const b0 = wx.l0[x]!;
      const b1 = wx.l1[x]!;
      out[y * W + x] = (raw[r0 + c0]! * b0 + raw[r0 + c1]! * b1) * a0 + (raw[r1 + c0]! * b0 + raw[r1 + c1]! * b1) * a1;
    }
  }
  return out;
}

/**
 * `(x − min) / (max − min)` in float32, in place. Returns false for a constant map, which is then set to
 * zeros (where the reference would produce 0/0 = NaN).
 */
export function minMaxInPlace(map: Float32Array): boolean {
  const [lo, hi] = bounds(map);
  const range = Math.fround(hi - lo);
  if (!(range > 0)) {
    map.fill(0);
    return false;
  }
  for (let i = 0; i < map.length; i++) map[i] = Math.fround(map[i]! - lo) / range; // the store rounds to float32
  return true;
}

/**
 * `(x − min) / (max − min)` of float64 values, each result rounded to float32 once: the normalisation of a float64
 * reference, for a raw map held in float64 (`--forward f64`). Returns null for a constant map.
 */
export function minMaxF64(raw: ArrayLike<number>): Float32Array | null {
  const [lo, hi] = bounds(raw);
  const range = hi - lo;
  if (!(range > 0)) return null;
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = (raw[i]! - lo) / range;
  return out;
}

/** The smallest and the largest value. */
function bounds(x: ArrayLike<number>): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** torch's `compute_source_index_and_lambda` (align_corners False) for an integer scale factor, in float32. */
function linearWeights(inSize: number, outSize: number, factor: number) {
  const f = Math.fround;
  const scale = f(1 / factor);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const l0 = new Float32Array(outSize);
  const l1 = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(f(f(scale * f(o + 0.5)) - 0.5), 0);
    const idx = Math.trunc(src);
    i0[o] = idx;
    i1[o] = idx < inSize - 1 ? idx + 1 : idx;
    const lambda = Math.min(Math.max(f(src - idx), 0), 1);
    l1[o] = lambda;
    l0[o] = f(1 - lambda);
  }
  return { i0, i1, l0, l1 };
}
