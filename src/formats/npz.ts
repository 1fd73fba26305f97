import { FileFormatError, readInputFile, type StateDict } from './host-tensor.js';
import { parseNpy } from './npy.js';
import { unzipChecked } from './zip.js';

/**
 * NumPy `.npz`: a zip archive (stored or deflated) of `.npy` files, one per array; the key is the entry name
 * without `.npy` (e.g. `Transformer/encoder_norm/scale`). Entries that are not `.npy` files are ignored.
 */
export function readNpz(file: string): StateDict {
  const buf = readInputFile(file);
  return parseNpz(buf, file);
}

export function parseNpz(bytes: Uint8Array, file: string): StateDict {
  const entries = unzipChecked(bytes, file, (name) => name.endsWith('.npy'));
  const out: StateDict = new Map();
  for (const [name, data] of entries) {
    try {
      out.set(name.slice(0, -'.npy'.length), parseNpy(data, name));
    } catch (e) {
      if (e instanceof FileFormatError) throw new FileFormatError(file, `entry ${e.message}`);
      throw e;
    }
  }
  if (out.size === 0) throw new FileFormatError(file, 'the .npz archive contains no .npy arrays');
  return out;
}
