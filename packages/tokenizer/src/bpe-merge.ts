/**
 * tiktoken's byte-pair merge: repeatedly merge the adjacent pair whose concatenated bytes have the
 * lowest rank (leftmost on ties) until no adjacent pair is a token.
 *
 * Small pieces use tiktoken's array algorithm (O(n·m), cache friendly); long pieces use a binary
 * heap over a linked list (O(n log n)), so a 1 MB "word" encodes in linear-ish time.
 */

const MAX = 0x7fffffff;
const SMALL = 96;

let starts = new Int32Array(256);
let rks = new Int32Array(256);

/** Appends the token ids of binary string `b` (length ≥ 2) to `out`. `maxRank` limits merges (exclusive). */
export function bytePairEncode(b: string, ranks: Map<string, number>, out: number[], maxRank = MAX): void {
  const n = b.length;
  if (n > SMALL) {
    heapMerge(b, ranks, out, maxRank);
    return;
  }
  if (starts.length < n + 2) {
    starts = new Int32Array(2 * n + 2);
    rks = new Int32Array(2 * n + 2);
  }
  const rank = (s: number, e: number): number => {
    const r = ranks.get(b.slice(s, e));
    return r === undefined || r >= maxRank ? MAX : r;
  };
  let len = n + 1; // parts are boundaries 0..n
  for (let i = 0; i < n - 1; i++) {
    starts[i] = i;
    rks[i] = rank(i, i + 2);
  }
  starts[n - 1] = n - 1;
  rks[n - 1] = MAX;
  starts[n] = n;
  rks[n] = MAX;
  for (;;) {
    let min = MAX;
    let at = -1;
    for (let i = 0; i < len - 1; i++) {
      if (rks[i] < min) {
        min = rks[i];
        at = i;
      }
    }
    if (at < 0) break;
    // merge parts at and at+1: remove boundary at+1
    rks[at] = at + 3 < len ? rank(starts[at], starts[at + 3]) : MAX;
    if (at > 0) rks[at - 1] = rank(starts[at - 1], starts[at + 2]);
    starts.copyWithin(at + 1, at + 2, len);
    rks.copyWithin(at + 1, at + 2, len);
    len--;
  }
  for (let i = 0; i < len - 1; i++) {
    const r = ranks.get(b.slice(starts[i], starts[i + 1]));
    if (r !== undefined) out.push(r);
  }
}

function heapMerge(b: string, ranks: Map<string, number>, out: number[], maxRank: number): void {
  const n = b.length;
  const next = new Int32Array(n + 1);
  const prev = new Int32Array(n + 1);
  const ver = new Int32Array(n + 1);
  const alive = new Uint8Array(n + 1);
  for (let i = 0; i <= n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
    alive[i] = 1;
  }
  // heap of (key = rank * 2^32 + start, version)
  let hk = new Float64Array(n);
  let hv = new Int32Array(n);
  let size = 0;
  const push = (key: number, v: number) => {
    if (size === hk.length) {
      const k2 = new Float64Array(size * 2);
      k2.set(hk);
      hk = k2;
      const v2 = new Int32Array(size * 2);
      v2.set(hv);
      hv = v2;
    }
    let i = size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (hk[p] <= key) break;
      hk[i] = hk[p];
      hv[i] = hv[p];
      i = p;
    }
    hk[i] = key;
    hv[i] = v;
  };
  const pop = () => {
    const key = hk[--size];
    const v = hv[size];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && hk[c + 1] < hk[c]) c++;
      if (hk[c] >= key) break;
      hk[i] = hk[c];
      hv[i] = hv[c];
      i = c;
    }
    hk[i] = key;
    hv[i] = v;
  };
  const pairRank = (s: number): number => {
    const m = next[s];
    if (m >= n) return MAX;
    const e = next[m];
    const r = ranks.get(b.slice(s, e));
    return r === undefined || r >= maxRank ? MAX : r;
  };
  const TWO32 = 4294967296;
  for (let i = 0; i < n - 1; i++) {
    const r = pairRank(i);
    if (r !== MAX) push(r * TWO32 + i, 0);
  }
  while (size > 0) {
    const key = hk[0];
    const v = hv[0];
    pop();
    const s = key % TWO32;
    if (!alive[s] || ver[s] !== v) continue;
    const r = (key - s) / TWO32;
    if (pairRank(s) !== r) continue;
    // merge s with next[s]
    const m = next[s];
    alive[m] = 0;
    next[s] = next[m];
    prev[next[m]] = s;
    ver[s]++;
    const r1 = pairRank(s);
    if (r1 !== MAX) push(r1 * TWO32 + s, ver[s]);
    const p = prev[s];
    if (p >= 0) {
      ver[p]++;
      const r0 = pairRank(p);
      if (r0 !== MAX) push(r0 * TWO32 + p, ver[p]);
    }
  }
  for (let s = 0; s < n; s = next[s]) {
    const r = ranks.get(b.slice(s, next[s]));
    if (r !== undefined) out.push(r);
  }
}
