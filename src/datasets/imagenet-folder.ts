/**
 * ImageNet validation images as the official export script reads them (docs/formats.md#imagenet-folders,
 * docs/benchmarks.md#explanation-export):
 *
 *     torchvision.datasets.ImageNet(DIR, split='val', transform=Compose([Resize((224, 224)), ToTensor()]))
 *
 * which is a torchvision `ImageFolder` over `DIR/val`: classes = the sorted sub-folder names (WordNet ids, so the class
 * index is the standard ImageNet index when all 1000 are present), samples ordered by class, then by path.
 *
 * Accepted layouts (tried in this order):
 * 1. class folders: sub-folders named by WordNet id (`n01440764/…`). Exactly `ImageFolder`: each class folder is walked
 *    recursively (`sorted(os.walk(dir, followlinks=True))`, files `sorted()` within each folder), strings are ordered
 *    as Python's `sorted()` orders `str` (by code point, not by locale), and a file is a sample when its name ends, in
 *    any case, with one of torchvision's `IMG_EXTENSIONS` (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp), so the
 *    sample list and indices match torchvision's even in folders holding formats we cannot decode (those fail at
 *    load time, naming the file). Differences: a sub-folder that is not a WordNet id is an error (torchvision would make
 *    it a class and shift every later index); an empty class folder keeps its index instead of failing.
 * 2. an ImageNet root holding `val/`: `val/` is opened with layouts 1 or 3 (label files are also looked for in the root).
 * 3. a flat folder of images plus a label file, given with `labels` or found by name in the folder, its parent, or
 *    their `ILSVRC2012_devkit_t12/data/`:
 *    - `LOC_val_solution.csv` (Kaggle: `ImageId,PredictionString`, the wnid is the first token of PredictionString,
 *      ImageId is the file name without extension). Class index = the line number of the wnid in
 *      `LOC_synset_mapping.txt` (sorted-wnid order, i.e. the standard index) when that file is given with `meta` or
 *      found; otherwise the position of the wnid among the sorted set of wnids appearing in the csv — the standard
 *      index only when the csv mentions all 1000 classes (as the full file does). `labelSource` says which.
 *    - `ILSVRC2012_validation_ground_truth.txt` (devkit: line j is the ILSVRC2012_ID of `ILSVRC2012_val_{j+1:08d}`).
 *      ILSVRC2012_IDs (1…1000) follow the devkit's own synset order, not the sorted-wnid order, so they are translated
 *      through the devkit's `meta.mat` (`synsets`: ILSVRC2012_ID → WNID, leaves = num_children 0, as torchvision's
 *      `parse_meta_mat`), given with `meta` or found. Classes = the sorted leaf wnids (or LOC_synset_mapping.txt's
 *      order when that file is also available). `LOC_synset_mapping.txt` alone cannot translate devkit ids (it lists
 *      the sorted order, which is a different permutation), so that case is an error explaining what is needed.
 *    Samples are ordered by (class index, file name): the order torchvision's `ImageNet` gives after its
 *    `prepare_val_folder` has moved the flat images into wnid folders. Every image needs a label; by default every
 *    label needs an image too (`partial: true` accepts a folder holding only some of the labelled images).
 *
 * `load(i)` decodes like `PIL.Image.open(f).convert('RGB')` and returns `ToTensor(Resize((h, w))(img))`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { decodeImage, type ImageSize, toUnitCHW } from '../data/image.js';
import { FileFormatError } from '../formats/host-tensor.js';
import { type MatValue, readMat5 } from '../formats/mat5.js';

export interface ImageFolderItem {
  /** Path of the image (the folder path given, joined with the relative path, as torchvision joins them). */
  file: string;
  /** Class index. */
  label: number;
  /** WordNet id of the class. */
  wnid?: string;
}

export interface ImageFolderOptions {
  /** Label file for a flat folder: LOC_val_solution.csv or ILSVRC2012_validation_ground_truth.txt. */
  labels?: string;
  /** Class list / id translation: the devkit's meta.mat or LOC_synset_mapping.txt. */
  meta?: string;
  /** Output size: a number for a square, default 224 (Resize((224, 224))). */
  size?: number | ImageSize;
  /** Flat folders: accept labels whose images are not in the folder (a subset of the validation set). */
  partial?: boolean;
}

export type ImageFolderLayout = 'class-folders' | 'flat';

export interface ImageFolder {
  /** The folder holding the images or class folders (`…/val` for an ImageNet root). */
  readonly root: string;
  readonly layout: ImageFolderLayout;
  /** How labels were obtained (folder names, which label file, which class list). */
  readonly labelSource: string;
  readonly length: number;
  readonly items: readonly ImageFolderItem[];
  /** WordNet ids; `classes[label]` is the class of a label. */
  readonly classes: readonly string[];
  readonly size: ImageSize;
  /** Image i as float32 CHW [3, H, W] in [0, 1] (before normalisation) and its label. */
  load(i: number): Promise<{ image: Float32Array; label: number }>;
}

/** torchvision.datasets.folder.IMG_EXTENSIONS. */
export const IMG_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'] as const;

const WNID = /^n\d{8}$/;
const GROUND_TRUTH = 'ILSVRC2012_validation_ground_truth.txt';
const LOC_CSV = 'LOC_val_solution.csv';
const LOC_MAPPING = 'LOC_synset_mapping.txt';
const META_MAT = 'meta.mat';
const DEVKIT_DATA = path.join('ILSVRC2012_devkit_t12', 'data');

const LAYOUTS =
  'expected (1) class sub-folders named by WordNet id (n01440764/…, as torchvision ImageFolder), ' +
  '(2) an ImageNet root holding val/ with such sub-folders, or (3) a flat folder of images ' +
  `(ILSVRC2012_val_00000001.JPEG, …) with ${LOC_CSV}, or ${GROUND_TRUTH} plus the devkit's ${META_MAT}`;

/** Python's `str` ordering: by code point (UTF-16 order differs only between astral and U+E000–U+FFFF). */
export function comparePyStr(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x < 0xd800 && y < 0xd800) return x - y;
    return a.codePointAt(i)! - b.codePointAt(i)!;
  }
  return a.length - b.length;
}

function pySorted(names: Iterable<string>): string[] {
  return [...names].sort(comparePyStr);
}

export function hasImageExtension(name: string): boolean {
  const lower = name.toLowerCase();
  return IMG_EXTENSIONS.some((e) => lower.endsWith(e));
}

function errno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'not found';
  if (code === 'ENOTDIR') return 'not a folder';
  if (code === 'EACCES') return 'permission denied';
  return code ?? (e instanceof Error ? e.message : String(e));
}

/** `os.path.isdir` (follows links; false on any error). */
function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function listDir(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw new FileFormatError(dir, `cannot list the folder (${errno(e)})`);
  }
}

/** Splits entries like `os.walk`: `is_dir()` follows symbolic links. */
function splitEntries(dir: string, entries: fs.Dirent[]): { dirs: string[]; files: string[] } {
  const dirs: string[] = [];
  const files: string[] = [];
  for (const e of entries) {
    const dirLike = e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(dir, e.name)));
    (dirLike ? dirs : files).push(e.name);
  }
  return { dirs, files };
}

/** `sorted(os.walk(top, followlinks=True))` → image files, in ImageFolder's order. */
function walkImages(top: string): string[] {
  const walked: { root: string; files: string[] }[] = [];
  const seen = new Set<string>();
  const visit = (root: string): void => {
    let real: string;
    try {
      real = fs.realpathSync(root);
    } catch {
      real = root;
    }
    if (seen.has(real)) return; // a link cycle (os.walk would recurse forever)
    seen.add(real);
    const { dirs, files } = splitEntries(root, listDir(root));
    walked.push({ root, files });
    for (const d of dirs) visit(`${root}/${d}`); // os.path.join: plain concatenation with '/'
  };
  visit(top);
  walked.sort((a, b) => comparePyStr(a.root, b.root));
  const out: string[] = [];
  for (const { root, files } of walked) {
    for (const f of pySorted(files)) if (hasImageExtension(f)) out.push(`${root}/${f}`);
  }
  return out;
}

function fewOf(names: readonly string[], n = 5): string {
  const shown = names.slice(0, n).join(', ');
  return names.length > n ? `${shown} and ${names.length - n} more` : shown;
}

// ---------------------------------------------------------------------------------------------------------------
// Class files.

/** LOC_synset_mapping.txt: `n01440764 tench, Tinca tinca` per line; index = line number. */
export function readSynsetMapping(file: string): string[] {
  const text = readText(file, 'the class list');
  const wnids: string[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((line, k) => {
    if (line.trim() === '') return;
    const m = /^\s*(n\d{8})(?:\s|$)/.exec(line);
    if (!m) {
      throw new FileFormatError(
        file,
        `line ${k + 1}: expected a WordNet id and names ('n01440764 tench, Tinca tinca'), found '${line.slice(0, 60)}'`,
      );
    }
    if (seen.has(m[1]!)) throw new FileFormatError(file, `line ${k + 1}: ${m[1]} is listed twice`);
    seen.add(m[1]!);
    wnids.push(m[1]!);
  });
  if (wnids.length === 0) throw new FileFormatError(file, 'no WordNet ids found (expected one class per line)');
  return wnids;
}

function scalar(v: MatValue | undefined): number | null {
  if (v?.kind !== 'numeric' || v.data.length !== 1) return null;
  return Number(v.data[0]);
}

/** The devkit's meta.mat: ILSVRC2012_ID → wnid over the leaf synsets (num_children == 0), as torchvision reads it. */
export function readDevkitMeta(file: string): Map<number, string> {
  const vars = readMat5(file);
  const synsets = vars.get('synsets');
  if (synsets?.kind !== 'struct') {
    throw new FileFormatError(
      file,
      `expected the ILSVRC2012 devkit's meta.mat with a struct array 'synsets', found ${
        synsets ? `a ${synsets.kind}` : `variables ${[...vars.keys()].join(', ') || 'none'}`
      }`,
    );
  }
  for (const f of ['ILSVRC2012_ID', 'WNID', 'num_children']) {
    if (!synsets.fields.includes(f)) {
      throw new FileFormatError(file, `'synsets' has no field '${f}' (fields: ${synsets.fields.join(', ')})`);
    }
  }
  const map = new Map<number, string>();
  synsets.elements.forEach((el, k) => {
    const id = scalar(el.get('ILSVRC2012_ID'));
    const children = scalar(el.get('num_children'));
    const w = el.get('WNID');
    if (id === null || children === null || w?.kind !== 'char') {
      throw new FileFormatError(file, `synsets(${k + 1}): expected numeric ILSVRC2012_ID/num_children and a char WNID`);
    }
    if (children !== 0) return;
    if (map.has(id)) throw new FileFormatError(file, `synsets(${k + 1}): ILSVRC2012_ID ${id} appears twice`);
    map.set(id, w.text.trim());
  });
  if (map.size === 0) throw new FileFormatError(file, "'synsets' holds no leaf classes (num_children = 0)");
  return map;
}

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new FileFormatError(file, `cannot read ${what} (${errno(e)})`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Layouts.

class Folder implements ImageFolder {
  constructor(
    readonly root: string,
    readonly layout: ImageFolderLayout,
    readonly labelSource: string,
    readonly items: readonly ImageFolderItem[],
    readonly classes: readonly string[],
    readonly size: ImageSize,
  ) {}

  get length(): number {
    return this.items.length;
  }

  async load(i: number): Promise<{ image: Float32Array; label: number }> {
    const item = this.items[i];
    if (!Number.isInteger(i) || !item) {
      throw new RangeError(`${this.root}: image index ${i} out of range [0, ${this.items.length})`);
    }
    const rgb = await decodeImage(item.file);
    return { image: toUnitCHW(rgb, this.size), label: item.label };
  }
}

function classFolders(root: string, dirs: string[], size: ImageSize, labels: string | undefined): Folder {
  if (labels !== undefined) {
    throw new FileFormatError(
      labels,
      `a label file was given, but ${root} holds class sub-folders, whose names are the labels; leave it out`,
    );
  }
  const other = dirs.filter((d) => !WNID.test(d));
  if (other.length > 0) {
    throw new FileFormatError(
      root,
      `sub-folders that are not WordNet ids (n\\d{8}): ${fewOf(pySorted(other))}. torchvision's ImageFolder would ` +
        'count them as classes and shift the class indices; move them out of the folder',
    );
  }
  const classes = pySorted(dirs);
  const items: ImageFolderItem[] = [];
  classes.forEach((wnid, label) => {
    for (const file of walkImages(`${root}/${wnid}`)) items.push({ file, label, wnid });
  });
  if (items.length === 0) {
    throw new FileFormatError(root, `no images found in its ${classes.length} class folders (${fewOf(classes, 3)})`);
  }
  return new Folder(root, 'class-folders', 'class sub-folder names (sorted WordNet ids)', items, classes, size);
}

/** First existing file among `names` in `dirs`. */
function findFile(dirs: readonly string[], names: readonly string[]): string | undefined {
  for (const name of names) {
    for (const d of dirs) {
      const p = path.join(d, name);
      if (isFile(p)) return p;
    }
  }
  return undefined;
}

function searchDirs(...bases: string[]): string[] {
  const out: string[] = [];
  for (const b of bases) {
    for (const d of [b, path.join(b, DEVKIT_DATA)]) if (!out.includes(d)) out.push(d);
  }
  return out;
}

interface ClassList {
  wnids: string[];
  from: string;
}

/** Labels for file stems: stem → wnid, plus how classes are indexed. */
interface LabelTable {
  file: string;
  byStem: Map<string, string>;
  classes: ClassList;
}

function readLocCsv(file: string, mapping: string | undefined): LabelTable {
  const lines = readText(file, 'the label file').split(/\r?\n/);
  const header = (lines[0] ?? '').replace(/^\uFEFF/, '').trim();
  if (header.replace(/\s/g, '') !== 'ImageId,PredictionString') {
    throw new FileFormatError(
      file,
      `expected the header 'ImageId,PredictionString' (LOC_val_solution.csv), found '${header.slice(0, 60)}'`,
    );
  }
  const byStem = new Map<string, string>();
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!.trim();
    if (line === '') continue;
    const comma = line.indexOf(',');
    const id = comma < 0 ? '' : line.slice(0, comma).trim();
    const wnid =
      comma < 0
        ? undefined
        : line
            .slice(comma + 1)
            .trim()
            .split(/\s+/)[0];
    if (!id || !wnid || !WNID.test(wnid)) {
      throw new FileFormatError(
        file,
        `line ${k + 1}: expected 'ImageId,wnid x y x y …' with a WordNet id first, found '${line.slice(0, 60)}'`,
      );
    }
    if (byStem.has(id)) throw new FileFormatError(file, `line ${k + 1}: image ${id} is labelled twice`);
    byStem.set(id, wnid);
  }
  if (byStem.size === 0) throw new FileFormatError(file, 'no labels found (only a header)');
  let classes: ClassList;
  if (mapping) {
    classes = { wnids: readSynsetMappingOrMeta(mapping), from: `the line order of ${mapping}` };
  } else {
    const wnids = pySorted(new Set(byStem.values()));
    classes = {
      wnids,
      from:
        `the sorted set of the ${wnids.length} WordNet ids in ${path.basename(file)}` +
        (wnids.length === 1000 ? '' : ` (not the standard ImageNet indices: give ${LOC_MAPPING} for those)`),
    };
  }
  return { file, byStem, classes };
}

/** A class list from LOC_synset_mapping.txt, or from a meta.mat (its sorted leaf wnids). */
function readSynsetMappingOrMeta(file: string): string[] {
  if (file.toLowerCase().endsWith('.mat')) return pySorted(readDevkitMeta(file).values());
  return readSynsetMapping(file);
}

function readGroundTruth(file: string, meta: string | undefined, mapping: string | undefined): LabelTable {
  const ids: number[] = [];
  const lines = readText(file, 'the label file').split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  lines.forEach((line, k) => {
    const t = line.trim();
    if (!/^\d+$/.test(t)) {
      throw new FileFormatError(
        file,
        `line ${k + 1}: expected one ILSVRC2012_ID (an integer 1…1000) per line, as in ${GROUND_TRUTH}; found '${t.slice(0, 60)}'`,
      );
    }
    ids.push(Number(t));
  });
  if (ids.length === 0) throw new FileFormatError(file, 'no labels found (empty file)');
  if (!meta) {
    const hint = mapping
      ? `${path.basename(mapping)} was found, but it lists the classes in sorted-wnid order, a different ` +
        'permutation from the devkit ids, so it cannot translate them. '
      : '';
    throw new FileFormatError(
      file,
      `its labels are ILSVRC2012_IDs in the devkit's own class order (e.g. id 1 is n02119789, not the first wnid in sorted order). ${hint}` +
        `Translating them needs the devkit's ${META_MAT} (ILSVRC2012_devkit_t12/data/${META_MAT}): pass it as the ` +
        `class file (meta option), put it beside the label file, or use ${LOC_CSV} instead`,
    );
  }
  const idToWnid = readDevkitMeta(meta);
  const byStem = new Map<string, string>();
  ids.forEach((id, k) => {
    const wnid = idToWnid.get(id);
    if (wnid === undefined) {
      throw new FileFormatError(file, `line ${k + 1}: ILSVRC2012_ID ${id} is not a leaf class of ${meta}`);
    }
    byStem.set(`ILSVRC2012_val_${String(k + 1).padStart(8, '0')}`, wnid);
  });
  const classes: ClassList = mapping
    ? { wnids: readSynsetMapping(mapping), from: `the line order of ${mapping}` }
    : { wnids: pySorted(idToWnid.values()), from: `the sorted leaf WordNet ids of ${meta}` };
  return { file, byStem, classes };
}

function stemOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

function flatFolder(
  root: string,
  images: string[],
  size: ImageSize,
  opts: ImageFolderOptions,
  extra: string[],
): Folder {
  const bases = [root, path.dirname(root), ...extra];
  let labels = opts.labels;
  if (labels === undefined) {
    labels = findFile(searchDirs(...bases), [LOC_CSV, GROUND_TRUTH]);
    if (labels === undefined) {
      throw new FileFormatError(
        root,
        `${images.length} images (${fewOf(images, 3)}) but no label file: give one (labels option) or put ` +
          `${LOC_CSV} or ${GROUND_TRUTH} in the folder; ${LAYOUTS}`,
      );
    }
  } else if (!isFile(labels)) {
    throw new FileFormatError(labels, `label file not found (${LOC_CSV} or ${GROUND_TRUTH} expected)`);
  }
  const lookIn = searchDirs(path.dirname(labels), ...bases);
  const given = opts.meta;
  if (given !== undefined && !isFile(given)) {
    throw new FileFormatError(given, `class file not found (the devkit's ${META_MAT} or ${LOC_MAPPING} expected)`);
  }
  const givenMat = given?.toLowerCase().endsWith('.mat') ?? false;
  const mapping = given !== undefined && !givenMat ? given : findFile(lookIn, [LOC_MAPPING]);
  const metaMat = given !== undefined && givenMat ? given : findFile(lookIn, [META_MAT]);

  const isCsv = labels.toLowerCase().endsWith('.csv') || readText(labels, 'the label file').startsWith('ImageId');
  const table = isCsv ? readLocCsv(labels, mapping ?? metaMat) : readGroundTruth(labels, metaMat, mapping);
  const index = new Map(table.classes.wnids.map((w, k) => [w, k] as const));

  const unlabelled: string[] = [];
  const used = new Set<string>();
  const items: (ImageFolderItem & { name: string })[] = [];
  for (const name of images) {
    const stem = stemOf(name);
    const wnid = table.byStem.get(stem);
    if (wnid === undefined || used.has(stem)) {
      unlabelled.push(name);
      continue;
    }
    used.add(stem);
    const label = index.get(wnid);
    if (label === undefined) {
      throw new FileFormatError(
        table.file,
        `image ${name} is labelled ${wnid}, which is not among the ${table.classes.wnids.length} classes of ${table.classes.from}`,
      );
    }
    items.push({ file: path.join(root, name), label, wnid, name });
  }
  if (unlabelled.length > 0) {
    throw new FileFormatError(
      table.file,
      `does not match the images in ${root}: ${unlabelled.length} of ${images.length} images have no label ` +
        `(${fewOf(unlabelled)})${isCsv ? '' : `; ${GROUND_TRUTH} labels only ILSVRC2012_val_<8 digits> files`}`,
    );
  }
  if (!opts.partial && used.size < table.byStem.size) {
    const missing = pySorted([...table.byStem.keys()].filter((s) => !used.has(s)));
    throw new FileFormatError(
      table.file,
      `does not match the images in ${root}: it labels ${missing.length} image(s) that are not there ` +
        `(${fewOf(missing)}); use the partial option if the folder holds only part of the set`,
    );
  }
  items.sort((a, b) => a.label - b.label || comparePyStr(a.name, b.name));
  return new Folder(
    root,
    'flat',
    `${table.file}; class indices: ${table.classes.from}`,
    items.map(({ file, label, wnid }) => ({ file, label, wnid })),
    table.classes.wnids,
    size,
  );
}

function toSize(size: ImageFolderOptions['size']): ImageSize {
  const s = size ?? 224;
  const out = typeof s === 'number' ? { height: s, width: s } : s;
  if (![out.height, out.width].every((v) => Number.isInteger(v) && v > 0)) {
    throw new RangeError(`image size must be positive integers, got ${out.height}×${out.width}`);
  }
  return out;
}

function openAt(dir: string, opts: ImageFolderOptions, size: ImageSize, extra: string[], top: boolean): Folder {
  const { dirs, files } = splitEntries(dir, listDir(dir));
  if (dirs.some((d) => WNID.test(d))) return classFolders(dir, dirs, size, opts.labels);
  if (top && dirs.includes('val')) {
    return openAt(`${dir}/val`, opts, size, [...extra, dir], false);
  }
  const images = pySorted(files.filter(hasImageExtension));
  if (images.length === 0) {
    const what =
      dirs.length + files.length === 0
        ? 'the folder is empty'
        : `it holds ${files.length} other files and ${dirs.length} folders (${fewOf(pySorted([...dirs, ...files]), 4)})`;
    throw new FileFormatError(dir, `no images found: ${what}; ${LAYOUTS}`);
  }
  return flatFolder(dir, images, size, opts, extra);
}

/** Opens an ImageNet validation folder (see the module comment for the layouts). Lists files; reads no pixels. */
export function openImageFolder(folder: string, opts: ImageFolderOptions = {}): ImageFolder {
  const size = toSize(opts.size);
  let st: fs.Stats;
  try {
    st = fs.statSync(folder);
  } catch (e) {
    throw new FileFormatError(folder, `image folder ${errno(e)}; ${LAYOUTS}`);
  }
  if (!st.isDirectory()) throw new FileFormatError(folder, `is a file, expected an image folder; ${LAYOUTS}`);
  return openAt(folder.replace(/\/+$/, '') || '/', opts, size, [], true);
}
