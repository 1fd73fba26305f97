import { extname } from 'node:path';
import { googleVitToTimm, isGoogleVit } from './google-vit.js';
import { FileFormatError, readInputFile, type StateDict } from './host-tensor.js';
import { isNpy } from './npy.js';
import { parseNpz } from './npz.js';
import { isZip, parsePytorchCheckpoint } from './pytorch.js';
import { parseSafetensors } from './safetensors.js';
import { listZip } from './zip.js';

/**
 * Read a weights file of any supported format into a state dict (timm key names, float32 for floating data).
 * The format is recognised from the content, not the extension:
 * - safetensors (u64 header length + JSON header);
 * - PyTorch zip checkpoints (a zip with `…/data.pkl`) and legacy pickles (.pth / .pt / .bin);
 * - NumPy .npz (a zip of `.npy` entries); Google/JAX ViT naming is converted to timm keys.
 */

const EXPECTED =
  'expected safetensors, a PyTorch checkpoint (.pth/.pt/.bin, zip or legacy format) or a NumPy .npz archive';

function looksLikeSafetensors(b: Uint8Array): boolean {
  if (b.length < 10) return false;
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(b.length - 8) && b[8] === 0x7b; // '{'
}

function zipNames(bytes: Uint8Array, file: string): string[] {
  return listZip(bytes, file).map((e) => e.name);
}

export function readWeights(file: string): StateDict {
  return parseWeights(readInputFile(file), file);
}

/** `readWeights` on bytes already in memory; `file` names them in errors (its extension is only a hint). */
export function parseWeights(bytes: Uint8Array, file: string): StateDict {
  if (bytes.length === 0) throw new FileFormatError(file, `the file is empty; ${EXPECTED}`);
  if (isZip(bytes)) {
    const names = zipNames(bytes, file);
    if (names.some((n) => n === 'data.pkl' || n.endsWith('/data.pkl'))) return parsePytorchCheckpoint(bytes, file);
    if (names.some((n) => n.endsWith('.npy'))) {
      const npz = parseNpz(bytes, file);
      return isGoogleVit(npz.keys()) ? googleVitToTimm(npz, file) : npz;
    }
    throw new FileFormatError(
      file,
      `a zip archive with neither data.pkl (PyTorch) nor .npy entries (NumPy .npz) (entries: ${names.slice(0, 5).join(', ') || 'none'}); ${EXPECTED}`,
    );
  }
  // Before the pickle test: a safetensors header length can start with the byte 0x80 too.
  if (looksLikeSafetensors(bytes)) return parseSafetensors(bytes, file).tensors;
  if (bytes[0] === 0x80) return parsePytorchCheckpoint(bytes, file);
  if (extname(file).toLowerCase() === '.safetensors') {
    // For a .safetensors name the parser's own message (bad header length, JSON…) is the useful one.
    return parseSafetensors(bytes, file).tensors;
  }
  if (isNpy(bytes)) {
    throw new FileFormatError(file, `a single NumPy .npy array, not a set of named weights; ${EXPECTED}`);
  }
  const hints: [number[], string][] = [
    [[0x89, 0x48, 0x44, 0x46], 'an HDF5 file (Keras .h5?)'],
    [[0x1f, 0x8b], 'a gzip file'],
  ];
  const hint = hints.find(([m]) => m.every((b, i) => bytes[i] === b));
  throw new FileFormatError(file, `unrecognised weights format${hint ? ` (looks like ${hint[1]})` : ''}; ${EXPECTED}`);
}
