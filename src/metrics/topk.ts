/**
 * Top-k pixel selection for the perturbation test (docs/benchmarks.md#pixel-ranking-and-ties,
 * golden/e2e/perturb_S1/README.md "Ties in the pixel ranking").
 *
 * The reference ranks pixels with `torch.topk(vis, k)` (torch 1.13, CPU). Relevance maps have many exactly equal values
 * (the ×16 bilinear upsampling replicates border rows and columns, clamped maps are 0 over large areas), so when equal
 * values straddle the k-th place the *set* of removed pixels depends on the selection algorithm. torch's CPU kernel
 * (`topk_impl_loop`, aten/src/ATen/native/TopKImpl.h) fills `(value, index)` pairs in index order and then runs
 * libstdc++'s `std::partial_sort` (when k·64 ≤ n) or `std::nth_element(first, first + k − 1, last, comp)` with
 * `comp(a, b) = (isnan(a) && !isnan(b)) || a > b`: NaN ranks as the largest value. `topkIndicesTorch` ports those
 * libstdc++ algorithms step by step, so its set is torch's set, ties included.
 *
 * `topkIndicesStable` is the deterministic alternative (value descending, then ascending flat index), i.e.
 * `torch.sort(descending=True, stable=True)[:k]`.
 *
 * Pure TypeScript, no TF.js.
 */

/** `comp(a, b)` of torch's largest-first topk: a ranks strictly before b; NaN is greater than any number. */
function before(a: number, b: number): boolean {
  return (Number.isNaN(a) && !Number.isNaN(b)) || a > b;
}

/** The (value, index) pairs torch's `queue` holds, as two parallel arrays. Positions are offsets into both. */
class Queue {
  readonly v: Float64Array;
  readonly ix: Uint32Array;

  constructor(values: ArrayLike<number>) {
    const n = values.length;
    this.v = new Float64Array(n);
    this.ix = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      this.v[i] = values[i]!;
      this.ix[i] = i;
    }
  }

  swap(a: number, b: number): void {
    const v = this.v;
    const ix = this.ix;
    const tv = v[a]!;
    v[a] = v[b]!;
    v[b] = tv;
    const ti = ix[a]!;
    ix[a] = ix[b]!;
    ix[b] = ti;
  }

  /** `*to = std::move(*from)`. */
  move(to: number, from: number): void {
    this.v[to] = this.v[from]!;
    this.ix[to] = this.ix[from]!;
  }

  /** comp(*a, *b) on positions. */
  less(a: number, b: number): boolean {
    return before(this.v[a]!, this.v[b]!);
  }

  // ---------------------------------------------------------------------------------------------------------
  // libstdc++ <bits/stl_heap.h>: __push_heap, __adjust_heap, __make_heap, __pop_heap
  // ---------------------------------------------------------------------------------------------------------

  private pushHeap(first: number, hole: number, top: number, valV: number, valI: number): void {
    let parent = Math.trunc((hole - 1) / 2);
    while (hole > top && before(this.v[first + parent]!, valV)) {
      this.move(first + hole, first + parent);
      hole = parent;
      parent = Math.trunc((hole - 1) / 2);
    }
    this.v[first + hole] = valV;
    this.ix[first + hole] = valI;
  }

  private adjustHeap(first: number, hole: number, len: number, valV: number, valI: number): void {
    const top = hole;
    let second = hole;
    const half = Math.trunc((len - 1) / 2);
    while (second < half) {
      second = 2 * (second + 1);
      if (this.less(first + second, first + (second - 1))) second--;
      this.move(first + hole, first + second);
      hole = second;
    }
    if ((len & 1) === 0 && second === Math.trunc((len - 2) / 2)) {
      second = 2 * (second + 1);
      this.move(first + hole, first + (second - 1));
      hole = second - 1;
    }
    this.pushHeap(first, hole, top, valV, valI);
  }

  private makeHeap(first: number, last: number): void {
    const len = last - first;
    if (len < 2) return;
    let parent = Math.trunc((len - 2) / 2);
    for (;;) {
      this.adjustHeap(first, parent, len, this.v[first + parent]!, this.ix[first + parent]!);
      if (parent === 0) return;
      parent--;
    }
  }

  private popHeap(first: number, last: number, result: number): void {
    const valV = this.v[result]!;
    const valI = this.ix[result]!;
    this.move(result, first);
    this.adjustHeap(first, 0, last - first, valV, valI);
  }

  /** std::__heap_select: afterwards [first, middle) holds the middle − first elements that rank first. */
  heapSelect(first: number, middle: number, last: number): void {
    this.makeHeap(first, middle);
    for (let i = middle; i < last; i++) if (this.less(i, first)) this.popHeap(first, middle, i);
  }

  // ---------------------------------------------------------------------------------------------------------
  // libstdc++ <bits/stl_algo.h>: __insertion_sort, __move_median_to_first, __unguarded_partition(_pivot),
  // __introselect
  // ---------------------------------------------------------------------------------------------------------

  private unguardedLinearInsert(last: number): void {
    const valV = this.v[last]!;
    const valI = this.ix[last]!;
    let next = last - 1;
    while (before(valV, this.v[next]!)) {
      this.move(last, next);
      last = next;
      next--;
    }
    this.v[last] = valV;
    this.ix[last] = valI;
  }

  private insertionSort(first: number, last: number): void {
    if (first === last) return;
    for (let i = first + 1; i < last; i++) {
      if (this.less(i, first)) {
        const valV = this.v[i]!;
        const valI = this.ix[i]!;
        for (let j = i; j > first; j--) this.move(j, j - 1); // std::move_backward(first, i, i + 1)
        this.v[first] = valV;
        this.ix[first] = valI;
      } else {
        this.unguardedLinearInsert(i);
      }
    }
  }

  private moveMedianToFirst(result: number, a: number, b: number, c: number): void {
    if (this.less(a, b)) {
      if (this.less(b, c)) this.swap(result, b);
      else if (this.less(a, c)) this.swap(result, c);
      else this.swap(result, a);
    } else if (this.less(a, c)) this.swap(result, a);
    else if (this.less(b, c)) this.swap(result, c);
    else this.swap(result, b);
  }

  private unguardedPartition(first: number, last: number, pivot: number): number {
    for (;;) {
      while (this.less(first, pivot)) first++;
      last--;
      while (this.less(pivot, last)) last--;
      if (!(first < last)) return first;
      this.swap(first, last);
      first++;
    }
  }

  private unguardedPartitionPivot(first: number, last: number): number {
    const mid = first + Math.trunc((last - first) / 2);
    this.moveMedianToFirst(first, first + 1, mid, last - 1);
    return this.unguardedPartition(first + 1, last, first);
  }

  /** std::nth_element(first, nth, last, comp). */
  nthElement(first: number, nth: number, last: number): void {
    if (first === last || nth === last) return;
    let depth = 2 * lg(last - first);
    while (last - first > 3) {
      if (depth === 0) {
        this.heapSelect(first, nth + 1, last);
        this.swap(first, nth); // place the nth element in its final position
        return;
      }
      depth--;
      const cut = this.unguardedPartitionPivot(first, last);
      if (cut <= nth) first = cut;
      else last = cut;
    }
    this.insertionSort(first, last);
  }
}

/** std::__lg: ⌊log2 n⌋ for n ≥ 1. */
function lg(n: number): number {
  return n < 2 ** 31 ? 31 - Math.clz32(n) : Math.floor(Math.log2(n));
}

function checkK(n: number, k: number): void {
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`top-k needs an integer k in [0, ${n}], got ${k}`);
}

/**
 * The index set of torch 1.13 CPU `topk(values, k, largest=True)` on a 1-D float tensor, ties resolved exactly as
 * torch resolves them. The order within the returned array is not meaningful (torch sorts its result afterwards,
 * which does not change the set).
 */
export function topkIndicesTorch(values: ArrayLike<number>, k: number): Uint32Array {
  const n = values.length;
  checkK(n, k);
  if (k === 0) return new Uint32Array(0);
  const q = new Queue(values);
  if (k * 64 <= n)
    q.heapSelect(0, k, n); // std::partial_sort = __heap_select + __sort_heap (order only)
  else q.nthElement(0, k - 1, n);
  return q.ix.slice(0, k);
}

/**
 * Every index ranked by value descending, ties by ascending index, NaN first (as the largest value):
 * `torch.sort(values, descending=True, stable=True).indices`.
 */
export function stableRanking(values: ArrayLike<number>): Uint32Array {
  const n = values.length;
  const order = new Uint32Array(n);
  const fast = n < 2 ** 21 ? float32Keys(values) : undefined;
  if (fast) {
    // One numeric sort of (rank key · n + index): exact integers below 2^53, no comparator calls.
    fast.sort();
    for (let i = 0; i < n; i++) order[i] = fast[i]! % n;
    return order;
  }
  const v = Float64Array.from(values);
  for (let i = 0; i < n; i++) order[i] = i;
  return order.sort((a, b) => {
    const x = v[a]!;
    const y = v[b]!;
    if (before(x, y)) return -1;
    if (before(y, x)) return 1;
    return a - b;
  });
}

/**
 * When every value is a float32 (or NaN): key(v) · n + index, where key is a 32-bit integer that increases as the
 * value decreases (NaN → 0, −0 = +0). Sorting these numbers ascending gives the stable descending ranking.
 */
function float32Keys(values: ArrayLike<number>): Float64Array | undefined {
  const n = values.length;
  const keys = new Float64Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    let key: number;
    if (Number.isNaN(x)) key = 0;
    else {
      f[0] = x === 0 ? 0 : x;
      if (f[0] !== x) return undefined; // not a float32 value
      const bits = u[0]!;
      const ascending = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
      key = 0xffffffff - ascending; // +Inf → 0x007fffff > 0, so NaN (0) comes first
    }
    keys[i] = key * n + i;
  }
  return keys;
}

/** The first k of `stableRanking(values)`: value descending, then ascending index, NaN first. */
export function topkIndicesStable(values: ArrayLike<number>, k: number): Uint32Array {
  checkK(values.length, k);
  return stableRanking(values).slice(0, k);
}

/** How the k-th ranked value is shared between the top-k and the rest. */
export interface BoundaryTie {
  /** True when a value equal to the k-th ranked value is left outside the top k (the set then depends on tie-breaking). */
  tied: boolean;
  /** The k-th ranked value (NaN when it is a NaN); undefined for k = 0. */
  value: number | undefined;
  /** Entries equal to `value` inside the top k. */
  inside: number;
  /** Entries equal to `value` outside the top k. */
  outside: number;
}

/**
 * Whether the top-k set of `values` is ambiguous: the k-th ranked value also occurs outside the top k. NaNs count as
 * equal to each other and larger than any number. Independent of the tie rule (the counts only depend on the values).
 */
export function boundaryTie(values: ArrayLike<number>, k: number): BoundaryTie {
  const n = values.length;
  checkK(n, k);
  if (k === 0) return { tied: false, value: undefined, inside: 0, outside: 0 };
  const q = new Queue(values);
  q.nthElement(0, k - 1, n);
  return tieAt(q.v, q.v[k - 1]!, k);
}

/** `topkIndicesTorch` and `boundaryTie` from one selection. */
export function topkIndicesTorchWithTie(
  values: ArrayLike<number>,
  k: number,
): { indices: Uint32Array; tie: BoundaryTie } {
  const n = values.length;
  checkK(n, k);
  if (k === 0) return { indices: new Uint32Array(0), tie: { tied: false, value: undefined, inside: 0, outside: 0 } };
  const q = new Queue(values);
  let kth: number;
  if (k * 64 <= n) {
    q.heapSelect(0, k, n);
    kth = q.v[0]!; // the heap's top is the lowest-ranked selected value
  } else {
    q.nthElement(0, k - 1, n);
    kth = q.v[k - 1]!;
  }
  return { indices: q.ix.slice(0, k), tie: tieAt(q.v, kth, k) };
}

/** The boundary-tie counts for the k-th ranked value t (values in any order). */
function tieAt(values: Float64Array, t: number, k: number): BoundaryTie {
  const tNaN = Number.isNaN(t);
  let greater = 0;
  let equal = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (tNaN ? Number.isNaN(x) : x === t) equal++;
    else if (before(x, t)) greater++;
  }
  const inside = k - greater;
  const outside = equal - inside;
  return { tied: outside > 0, value: t, inside, outside };
}

/** The number of k in `ks` whose top-k set of `values` has a boundary tie (see `boundaryTie`). */
export function countBoundaryTies(values: ArrayLike<number>, ks: readonly number[]): number {
  let count = 0;
  for (const k of ks) if (boundaryTie(values, k).tied) count++;
  return count;
}
