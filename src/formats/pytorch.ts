import { decodeStrided, ELEMENT_SIZE, type ElementType } from './element-decode.js';
import { FileFormatError, type HostTensor, readInputFile, type StateDict } from './host-tensor.js';
import { isTuple, PickleError, type UnpickleResult, unpickle } from './pickle.js';
import { unzipChecked } from './zip.js';

/**
 * PyTorch checkpoints (`torch.save`), read without Python:
 * - zip format (torch ≥ 1.6): `<prefix>/data.pkl` is a pickle whose tensors refer, through persistent ids
 *   ('storage', storage_type, key, location, numel), to raw storages in `<prefix>/data/<key>`;
 *   `<prefix>/byteorder` (when present) says whether they are little or big endian;
 * - legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`): back-to-back pickles (magic number,
 *   protocol version, sys_info, the object with persistent ids ('storage', storage_type, root_key, location,
 *   numel, view_metadata), the list of storage keys), then per key an int64 element count and the raw bytes.
 *
 * Tensors are materialised in C order (non-contiguous views are gathered), floating ones as Float32Array.
 * Wrappers such as `{"model": state_dict, "epoch": 3}` are unwrapped and a DataParallel `module.` prefix is
 * stripped. Only tensors reachable from the state dict are decoded.
 */

/** Magic number at the start of legacy files (0x1950a86a20f9469cfc6c). */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const WRAPPER_KEYS = ['state_dict', 'model', 'model_state', 'model_state_dict', 'module'];

const STORAGE_TYPES: Record<string, ElementType> = {
  FloatStorage: 'f32',
  DoubleStorage: 'f64',
  HalfStorage: 'f16',
  BFloat16Storage: 'bf16',
  LongStorage: 'i64',
  IntStorage: 'i32',
  ShortStorage: 'i16',
  CharStorage: 'i8',
  ByteStorage: 'u8',
  BoolStorage: 'bool',
  UntypedStorage: 'u8',
};

const DTYPES: Record<string, ElementType> = {
  float32: 'f32',
  float: 'f32',
  float64: 'f64',
  double: 'f64',
  float16: 'f16',
  half: 'f16',
  bfloat16: 'bf16',
  int64: 'i64',
  long: 'i64',
  int32: 'i32',
  int: 'i32',
  int16: 'i16',
  short: 'i16',
  int8: 'i8',
  uint8: 'u8',
  bool: 'bool',
};

class StorageType {
  constructor(
    readonly name: string,
    readonly type: ElementType,
  ) {}
}

class DType {
  constructor(
    readonly name: string,
    readonly type: ElementType,
  ) {}
}

/** A storage a tensor points to: `offset`/`numel` in elements of `type` within the root storage `key`. */
class StorageRef {
  constructor(
    readonly key: string,
    readonly type: ElementType,
    readonly offset: number,
    readonly numel: number,
  ) {}
}

/** A tensor as the pickle describes it; decoded only if it ends up in the state dict. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly type: ElementType,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

/** Marker for classes the pickle may name in `_rebuild_from_type_v2` (Tensor, Parameter). */
class TypeMarker {
  constructor(readonly name: string) {}
}

function intList(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw new Error(`${what} is not a tuple of non-negative integers`);
  }
  return v as number[];
}

function asKey(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return String.fromCharCode(...v);
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  throw new Error('storage key is not a string');
}

function rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown, dtype?: ElementType) {
  if (!(storage instanceof StorageRef)) throw new Error('the first argument is not a storage');
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new Error('storage_offset is not a non-negative integer');
  }
  const sz = intList(size, 'size');
  const st = intList(stride, 'stride');
  if (sz.length !== st.length) throw new Error(`size ${sz.length}-d but stride ${st.length}-d`);
  return new TensorRef(storage, dtype ?? storage.type, offset, [...sz], [...st]);
}

function torchGlobals(): Map<string, unknown> {
  const g = new Map<string, unknown>();
  g.set('torch._utils._rebuild_tensor_v2', (s: unknown, o: unknown, size: unknown, stride: unknown) =>
    rebuildTensor(s, o, size, stride),
  );
  g.set('torch._utils._rebuild_tensor', (s: unknown, o: unknown, size: unknown, stride: unknown) =>
    rebuildTensor(s, o, size, stride),
  );
  g.set(
    'torch._utils._rebuild_tensor_v3',
    (s: unknown, o: unknown, size: unknown, stride: unknown, _rg: unknown, _h: unknown, dtype: unknown) => {
      if (!(dtype instanceof DType)) throw new Error('dtype argument is not a torch dtype');
      return rebuildTensor(s, o, size, stride, dtype.type);
    },
  );
  g.set('torch._utils._rebuild_parameter', (data: unknown) => data);
  g.set('torch._utils._rebuild_parameter_with_state', (data: unknown) => data);
  g.set('torch._utils._rebuild_from_type_v2', (fn: unknown, _type: unknown, args: unknown) => {
    if (typeof fn !== 'function' || !Array.isArray(args)) throw new Error('unexpected arguments');
    return (fn as (...a: unknown[]) => unknown)(...args);
  });
  for (const name of ['torch.Tensor', 'torch._tensor.Tensor', 'torch.nn.parameter.Parameter']) {
    g.set(name, new TypeMarker(name));
  }
  g.set('collections.OrderedDict', (items?: unknown) => {
    const m = new Map<unknown, unknown>();
    if (Array.isArray(items)) {
      for (const kv of items) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
    }
    return m;
  });
  for (const b of ['builtins', '__builtin__']) {
    g.set(`${b}.set`, (items?: unknown) => new Set(Array.isArray(items) ? items : []));
    g.set(`${b}.frozenset`, (items?: unknown) => new Set(Array.isArray(items) ? items : []));
  }
  for (const [name, type] of Object.entries(STORAGE_TYPES)) {
    g.set(`torch.${name}`, new StorageType(name, type));
    if (name === 'UntypedStorage') g.set('torch.storage.UntypedStorage', new StorageType(name, type));
  }
  for (const [name, type] of Object.entries(DTYPES)) g.set(`torch.${name}`, new DType(name, type));
  return g;
}

function storageTypeOf(v: unknown): ElementType {
  if (v instanceof StorageType) return v.type;
  if (v instanceof DType) return v.type;
  throw new Error('storage type is not a known torch storage class');
}

function storageIdParts(pid: unknown): unknown[] {
  if (!isTuple(pid) || pid.length < 5) throw new Error('persistent id is not a storage record');
  const kind = pid[0] instanceof Uint8Array ? asKey(pid[0]) : pid[0];
  if (kind !== 'storage') throw new Error(`unsupported persistent id kind ${JSON.stringify(String(kind))}`);
  return [...pid];
}

function globalHint(e: PickleError): string {
  return /unsupported Python global '(?!torch\.)/.test(e.message)
    ? ' (the checkpoint pickles Python objects other than tensors, e.g. a whole nn.Module; save and load model.state_dict() instead)'
    : '';
}

function badCheckpoint(file: string, e: unknown): never {
  if (e instanceof FileFormatError) throw e;
  throw new FileFormatError(file, e instanceof Error ? e.message : String(e));
}

// --- the state dict inside the object -------------------------------------------------------------------------

function tensorEntries(m: Map<unknown, unknown>): [string, TensorRef][] {
  const out: [string, TensorRef][] = [];
  for (const [k, v] of m) if (typeof k === 'string' && v instanceof TensorRef) out.push([k, v]);
  return out;
}

function findStateDict(root: unknown, file: string): [string, TensorRef][] {
  if (root instanceof TensorRef)
    throw new FileFormatError(file, 'the checkpoint holds a single tensor, not a state dict');
  if (!(root instanceof Map)) {
    throw new FileFormatError(file, 'the checkpoint does not hold a dict of tensors (state dict)');
  }
  let obj: Map<unknown, unknown> = root;
  for (let depth = 0; depth < 8; depth++) {
    if (tensorEntries(obj).length > 0) break;
    const inner = WRAPPER_KEYS.map((k) => obj.get(k)).find((v): v is Map<unknown, unknown> => v instanceof Map);
    if (!inner) break;
    obj = inner;
  }
  const entries = tensorEntries(obj);
  if (entries.length === 0) {
    const keys = [...obj.keys()].slice(0, 10).map((k) => String(k));
    throw new FileFormatError(
      file,
      `no tensors found in the checkpoint (top-level keys: ${keys.join(', ') || 'none'}; expected a state dict, possibly under ${WRAPPER_KEYS.join('/')})`,
    );
  }
  if (entries.every(([k]) => k.startsWith('module.'))) {
    return entries.map(([k, v]) => [k.slice('module.'.length), v]);
  }
  return entries;
}

/** Decode the referenced tensors; `rootBytes(key)` gives the raw bytes of a root storage. */
function materialise(
  entries: [string, TensorRef][],
  rootBytes: (key: string) => Uint8Array | undefined,
  littleEndian: boolean,
  file: string,
): StateDict {
  const out: StateDict = new Map();
  for (const [name, t] of entries) {
    const s = t.storage;
    const bytes = rootBytes(s.key);
    if (bytes === undefined) throw new FileFormatError(file, `tensor '${name}': missing storage record '${s.key}'`);
    const sSize = ELEMENT_SIZE[s.type];
    const begin = s.offset * sSize;
    const wanted = s.numel * sSize;
    if (begin + wanted > bytes.length) {
      throw new FileFormatError(
        file,
        `tensor '${name}': storage '${s.key}' should hold ${wanted} bytes from byte ${begin}, but has only ${Math.max(0, bytes.length - begin)}; the file is truncated`,
      );
    }
    const view = bytes.subarray(begin, begin + wanted);
    const data = decodeStrided(view, t.type, littleEndian, t.offset, t.size, t.stride, file, `tensor '${name}'`);
    const ht: HostTensor = { shape: t.size, data };
    out.set(name, ht);
  }
  return out;
}

// --- zip format -----------------------------------------------------------------------------------------------

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5);
}

function readZipCheckpoint(bytes: Uint8Array, file: string): StateDict {
  const entries = Object.fromEntries(
    unzipChecked(
      bytes,
      file,
      (name) => name.endsWith('data.pkl') || name.endsWith('byteorder') || /(^|\/)data\/[^/]+$/.test(name),
    ),
  );
  const pkl = Object.keys(entries)
    .filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl'))
    .sort((a, b) => a.length - b.length)[0];
  if (pkl === undefined) {
    throw new FileFormatError(file, 'zip archive without a data.pkl entry: not a PyTorch checkpoint');
  }
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const order = entries[`${prefix}byteorder`];
  let little = true;
  if (order !== undefined) {
    const o = String.fromCharCode(...order).trim();
    if (o !== 'little' && o !== 'big') throw new FileFormatError(file, `unknown byteorder '${o}'`);
    little = o === 'little';
  }
  const persistentLoad = (pid: unknown): StorageRef => {
    try {
      const [, stype, key, , numel] = storageIdParts(pid);
      if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0)
        throw new Error('invalid storage size');
      return new StorageRef(asKey(key), storageTypeOf(stype), 0, numel);
    } catch (e) {
      return badCheckpoint(file, e);
    }
  };
  let value: unknown;
  try {
    value = unpickle(entries[pkl]!, { globals: torchGlobals(), persistentLoad }).value;
  } catch (e) {
    if (e instanceof PickleError) throw new FileFormatError(file, `${pkl}: ${e.message}${globalHint(e)}`);
    throw e;
  }
  const sd = findStateDict(value, file);
  return materialise(sd, (key) => entries[`${prefix}data/${key}`], little, file);
}

// --- legacy format --------------------------------------------------------------------------------------------

/** Legacy files start with PROTO 2 and LONG1 (the magic number). */
export function isLegacyTorch(bytes: Uint8Array): boolean {
  if (bytes.length < 3 || bytes[0] !== 0x80 || bytes[2] !== 0x8a) return false;
  try {
    return unpickle(bytes.subarray(0, 64)).value === LEGACY_MAGIC;
  } catch {
    return false;
  }
}

function readLegacyCheckpoint(bytes: Uint8Array, file: string): StateDict {
  const magic = unpickle(bytes, { file });
  if (magic.value !== LEGACY_MAGIC) {
    throw new FileFormatError(file, 'not a PyTorch checkpoint: a pickle without the legacy torch magic number');
  }
  const proto = unpickle(bytes, { offset: magic.end, file });
  if (proto.value !== 1001)
    throw new FileFormatError(file, `unsupported legacy protocol version ${String(proto.value)}`);
  const sysInfo = unpickle(bytes, { offset: proto.end, file });
  let little = true;
  if (sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false) little = false;

  const roots = new Map<string, { type: ElementType; numel: number }>();
  const persistentLoad = (pid: unknown): StorageRef => {
    try {
      const [, stype, rootKey, , numel, view] = storageIdParts(pid);
      if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0)
        throw new Error('invalid storage size');
      const type = storageTypeOf(stype);
      const key = asKey(rootKey);
      const prev = roots.get(key);
      if (prev === undefined) roots.set(key, { type, numel });
      if (view === null || view === undefined) return new StorageRef(key, type, 0, numel);
      if (!isTuple(view) || view.length !== 3) throw new Error('invalid view metadata');
      const [, off, viewSize] = view;
      if (typeof off !== 'number' || typeof viewSize !== 'number' || off < 0 || viewSize < 0) {
        throw new Error('invalid view metadata');
      }
      return new StorageRef(key, type, off, viewSize);
    } catch (e) {
      return badCheckpoint(file, e);
    }
  };
  let obj: UnpickleResult;
  try {
    obj = unpickle(bytes, { offset: sysInfo.end, globals: torchGlobals(), persistentLoad });
  } catch (e) {
    if (e instanceof PickleError) throw new FileFormatError(file, `pickle: ${e.message}${globalHint(e)}`);
    throw e;
  }
  const keyList = unpickle(bytes, { offset: obj.end, file });
  if (!Array.isArray(keyList.value)) throw new FileFormatError(file, 'the storage key list is not a list');

  const storages = new Map<string, Uint8Array>();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keyList.end;
  for (const k of keyList.value) {
    const key = asKey(k);
    const root = roots.get(key);
    if (root === undefined) {
      throw new FileFormatError(file, `storage '${key}' is listed but no tensor refers to it (unknown element size)`);
    }
    if (pos + 8 > bytes.length) {
      throw new FileFormatError(
        file,
        `truncated: the data of storage '${key}' should start at byte ${pos}, past the end`,
      );
    }
    const count = dv.getBigInt64(pos, true);
    const size = ELEMENT_SIZE[root.type];
    if (count < 0n || count * BigInt(size) > BigInt(bytes.length - pos - 8)) {
      throw new FileFormatError(
        file,
        `truncated: storage '${key}' has ${count} elements (${count * BigInt(size)} bytes) at byte ${pos + 8}, but only ${bytes.length - pos - 8} bytes are left`,
      );
    }
    const nbytes = Number(count) * size;
    storages.set(key, bytes.subarray(pos + 8, pos + 8 + nbytes));
    pos += 8 + nbytes;
  }
  // torch.save writes nothing after the last storage. Extra bytes mean a count or a length earlier in the file is
  // wrong, and the storages would be read shifted: refuse rather than return other numbers.
  if (pos !== bytes.length) {
    throw new FileFormatError(
      file,
      `${bytes.length - pos} unexpected bytes after the last storage (at byte ${pos}); the file is corrupt`,
    );
  }
  const sd = findStateDict(obj.value, file);
  return materialise(sd, (key) => storages.get(key), little, file);
}

// --- entry points ---------------------------------------------------------------------------------------------

/** Decode a PyTorch checkpoint already in memory (zip or legacy format) into a state dict. */
export function parsePytorchCheckpoint(bytes: Uint8Array, file: string): StateDict {
  if (isZip(bytes)) return readZipCheckpoint(bytes, file);
  if (isLegacyTorch(bytes)) return readLegacyCheckpoint(bytes, file);
  throw new FileFormatError(
    file,
    'not a PyTorch checkpoint: neither a zip archive (torch >= 1.6) nor a legacy pickle with the torch magic number',
  );
}

export function readPytorchCheckpoint(file: string): StateDict {
  const buf = readInputFile(file);
  return parsePytorchCheckpoint(buf, file);
}
