/**
 * Image input as the official PyTorch code sees it:
 *
 *     img = Image.open(f).convert('RGB')                       # decodeImage
 *     x = Compose([Resize((224, 224)), ToTensor()])(img)        # toUnitCHW
 *     x = Normalize(mean, std)(x)                               # toModelInput / normalizeCHW
 *
 * Decoding goes through sharp (libvips; its JPEG decoder is libjpeg-turbo based, with the same default islow DCT and
 * "fancy" chroma upsampling as Pillow's libjpeg-turbo), resizing through an exact port of Pillow's bilinear resampler.
 * On the golden ImageNet-style JPEGs both the decoded bytes and the resized float32 tensors agree bit for bit.
 *
 * How `convert('RGB')` is reproduced:
 * - greyscale (L, 1-bit, 2/4-bit): the grey value is copied into R, G and B;
 * - an alpha channel (LA, RGBA, palette with transparency) is dropped, without compositing over any background;
 * - CMYK JPEGs: sharp gives the raw CMYK samples (Adobe-inverted files are un-inverted by the decoder, as in Pillow),
 *   then Pillow 9.4's `cmyk2rgb` is applied: nk = 255 − K, R = nk − MULDIV255(C, nk), where
 *   MULDIV255(a, b) = ((a·b + 128) >> 8 + a·b + 128) >> 8 (rounded a·b/255), likewise G from M and B from Y.
 *   No ICC colour management, exactly like Pillow;
 * - embedded ICC profiles are ignored (Pillow does not colour-manage in `convert`);
 * - EXIF orientation is ignored (`Image.open` does not rotate);
 * - 16-bit samples are reduced to 8 bits by `>> 8`. This is what Pillow does for 16-bit RGB/RGBA/LA PNGs; a 16-bit
 *   greyscale PNG (Pillow mode I) is instead clipped to 255 by Pillow, which is not reproduced (deliberate choice);
 * - truncated files are errors (as with Pillow's default `LOAD_TRUNCATED_IMAGES = False`); recoverable libjpeg
 *   warnings such as extraneous bytes before a marker are not;
 * - multi-frame files (GIF, TIFF, WebP): the first frame.
 * Known difference: in a GIF, sharp returns transparent pixels as black, Pillow as their palette colour.
 */
import { readFile } from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';
import { FileFormatError } from '../formats/host-tensor.js';
import { resizeBilinear } from './pillow-resize.js';

/** An 8-bit RGB image, HWC interleaved, row-major: `data.length = height · width · 3`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface ImageSize {
  height: number;
  width: number;
}

/** Pillow refuses images above 2 · `Image.MAX_IMAGE_PIXELS` pixels (DecompressionBombError); so do we. */
const MAX_PIXELS = 2 * 89478485;

/** Raster formats that both sharp and Pillow read. (sharp would also rasterise SVG/PDF, which Pillow cannot open.) */
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff']);

const SHARP_OPTIONS = {
  ignoreIcc: true,
  autoOrient: false,
  failOn: 'truncated',
  limitInputPixels: MAX_PIXELS,
  pages: 1,
  page: 0,
} as const;

function message(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  // libvips repeats its messages over several lines; the first one says it.
  return s.split('\n')[0]!.trim();
}

/** Reads and decodes an image file to RGB like `PIL.Image.open(file).convert('RGB')`. */
export async function decodeImage(file: string): Promise<RgbImage> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory' : message(e);
    throw new FileFormatError(file, `cannot read image: ${why}`);
  }
  return decodeImageBuffer(buf, file);
}

/** Decodes image bytes to RGB like `PIL.Image.open(...).convert('RGB')`; `name` is used in error messages. */
export async function decodeImageBuffer(buf: Uint8Array, name: string): Promise<RgbImage> {
  if (buf.length === 0) throw new FileFormatError(name, 'empty file, not an image');
  let meta: Metadata;
  try {
    meta = await sharp(buf, SHARP_OPTIONS).metadata();
  } catch (e) {
    throw new FileFormatError(name, `not a readable image (${message(e)})`);
  }
  if (!FORMATS.has(meta.format)) {
    throw new FileFormatError(
      name,
      `unsupported image format '${meta.format}' (expected JPEG, PNG, WebP, GIF or TIFF)`,
    );
  }
  if (!meta.width || !meta.height) {
    throw new FileFormatError(name, `image has zero size (${meta.width ?? 0}×${meta.height ?? 0})`);
  }
  try {
    if (meta.space === 'cmyk') return await decodeCmyk(buf, name);
    const { data, info } = await sharp(buf, SHARP_OPTIONS)
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`decoder returned ${info.channels} channels, ${data.length} bytes`);
    }
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    if (e instanceof FileFormatError) throw e;
    throw new FileFormatError(name, `cannot decode ${meta.format} pixels (${message(e)})`);
  }
}

/** MULDIV255 of Pillow's Convert.c: a·b/255 rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

async function decodeCmyk(buf: Uint8Array, name: string): Promise<RgbImage> {
  const { data, info } = await sharp(buf, SHARP_OPTIONS)
    .pipelineColourspace('cmyk')
    .toColourspace('cmyk')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 4 || data.length !== info.width * info.height * 4) {
    throw new FileFormatError(name, `CMYK decoder returned ${info.channels} channels, ${data.length} bytes`);
  }
  const n = info.width * info.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const nk = 255 - data[i * 4 + 3]!;
    // Pillow clips with CLIP8; nk − MULDIV255(c, nk) is always within [0, 255].
    out[i * 3] = nk - mulDiv255(data[i * 4]!, nk);
    out[i * 3 + 1] = nk - mulDiv255(data[i * 4 + 1]!, nk);
    out[i * 3 + 2] = nk - mulDiv255(data[i * 4 + 2]!, nk);
  }
  return { width: info.width, height: info.height, data: out };
}

function checkRgb(rgb: RgbImage): void {
  const { width, height, data } = rgb;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`image size must be positive integers, got ${width}×${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new RangeError(`RGB image ${width}×${height} needs ${width * height * 3} bytes, got ${data.length}`);
  }
}

/** `Image.resize((w, h), BILINEAR)` when the size differs (as torchvision's `Resize((h, w))`), else the same pixels. */
export function resizeRgb(rgb: RgbImage, size: ImageSize): RgbImage {
  checkRgb(rgb);
  if (rgb.width === size.width && rgb.height === size.height) return rgb;
  const data = resizeBilinear(rgb.data, rgb.width, rgb.height, 3, size.width, size.height);
  return { width: size.width, height: size.height, data };
}

/** v/255 in float32 for every byte: torch's `uint8 → float32` then `div(255)`. */
const UNIT = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) t[v] = v / 255; // storing into a Float32Array rounds the float64 quotient once
  return t;
})();

/**
 * `ToTensor()(img.resize(size, BILINEAR))`: the [0, 1] float32 image in CHW order, before normalisation. It is what
 * the official scripts store as `image` in their HDF5 files.
 */
export function toUnitCHW(rgb: RgbImage, size: ImageSize): Float32Array {
  const { width, height, data } = resizeRgb(rgb, size);
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    out[p] = UNIT[data[p * 3]!]!;
    out[plane + p] = UNIT[data[p * 3 + 1]!]!;
    out[2 * plane + p] = UNIT[data[p * 3 + 2]!]!;
  }
  return out;
}

/**
 * The inverse of toUnitCHW for display: [0, 1] values in CHW order (clamped, rounded) as an RGB picture.
 * A picture with fewer than three channels repeats its last one.
 */
export function unitCHWToRgb(chw: ArrayLike<number>, width: number, height: number, channels = 3): RgbImage {
  const plane = width * height;
  const data = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++)
    for (let c = 0; c < 3; c++) {
      const v = chw[Math.min(c, channels - 1) * plane + p]!;
      data[p * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, v)));
    }
  return { width, height, data };
}

/** The channel count and plane size of a CHW tensor normalised by per-channel mean and std; checks they fit. */
function channelPlanes(
  chw: Float32Array,
  mean: readonly number[],
  std: readonly number[],
): { channels: number; plane: number } {
  const channels = mean.length;
  if (channels === 0 || std.length !== channels) {
    throw new RangeError(`mean and std need one value per channel, got ${mean.length} and ${std.length}`);
  }
  if (chw.length % channels !== 0) {
    throw new RangeError(`tensor of ${chw.length} values is not ${channels} equal channel planes`);
  }
  return { channels, plane: chw.length / channels };
}

/**
 * torchvision `Normalize(mean, std)` on a CHW float32 image, as torch computes it in float32:
 * `(x − mean_c) / std_c` with mean and std rounded to float32 and each operation rounded to float32.
 * Returns a new array; `chw.length` must be a multiple of `mean.length`.
 */
export function normalizeCHW(chw: Float32Array, mean: readonly number[], std: readonly number[]): Float32Array {
  const { channels, plane } = channelPlanes(chw, mean, std);
  const out = new Float32Array(chw.length);
  for (let c = 0; c < channels; c++) {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    if (s === 0) throw new RangeError(`std[${c}] is zero in float32, normalisation would divide by zero`);
    const base = c * plane;
    for (let i = base; i < base + plane; i++) out[i] = Math.fround(chw[i]! - m) / s; // the store rounds to float32
  }
  return out;
}

/**
 * The float64 twin of normalizeCHW, for the float64 forward pass (`--forward f64`): what torch computes when its
 * default dtype is float64, as the official code's float64 runs do. There `ToTensor` gives u/255 in float64 for an
 * 8-bit sample u, and `Normalize` works in float64. A value of `chw` that is the float32 rounding of u/255 (as
 * toUnitCHW makes every value of a decoded image) is taken as u/255 exactly; any other value as it is.
 *
 * Why it matters: the ill-conditioned methods are that sensitive to their input. On the golden perturbation run,
 * feeding the float32-rounded image to the official code in float64 moved its transformer attribution map by
 * 6.9e-5 of max (image 16), enough to change the pixels removed at a step.
 */
export function normalizeCHWF64(chw: Float32Array, mean: readonly number[], std: readonly number[]): Float64Array {
  const { channels, plane } = channelPlanes(chw, mean, std);
  const out = new Float64Array(chw.length);
  for (let c = 0; c < channels; c++) {
    const m = mean[c]!;
    const s = std[c]!;
    if (s === 0) throw new RangeError(`std[${c}] is zero, normalisation would divide by zero`);
    for (let i = c * plane; i < (c + 1) * plane; i++) {
      const v = chw[i]!;
      const u = Math.round(v * 255);
      const x = u >= 0 && u <= 255 && UNIT[u] === v ? u / 255 : v;
      out[i] = (x - m) / s;
    }
  }
  return out;
}

/** The model input: bilinear resize (Pillow), `ToTensor`, `Normalize(mean, std)`; float32, CHW, C = 3. */
export function toModelInput(
  rgb: RgbImage,
  size: ImageSize,
  mean: readonly number[],
  std: readonly number[],
): Float32Array {
  if (mean.length !== 3 || std.length !== 3) {
    throw new RangeError(`mean and std need 3 values (RGB), got ${mean.length} and ${std.length}`);
  }
  return normalizeCHW(toUnitCHW(rgb, size), mean, std);
}
