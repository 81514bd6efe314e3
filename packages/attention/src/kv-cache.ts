import { describeValue, TypeformerError, tf } from "@typeformer/core";
import { type DecodeAttentionAttrs, FUSED_KERNEL_NAMES } from "./wasm/fused-kernels.js";
import { inferenceFastPaths } from "./wasm/fused-ops.js";

export interface KVCacheOptions {
  numLayers: number;
  batch: number;
  numKvHeads: number;
  headDim: number;
  /** Most slots a row may hold (prompt + generated, including left padding). */
  maxLength: number;
  /** Value head size when it differs from headDim. */
  valueDim?: number;
}

/** Options of {@link KVCache.attendInPlace}. */
export interface AttendInPlaceOptions {
  /** Query heads (a multiple of the cache's numKvHeads: GQA / MQA). */
  numHeads: number;
  /** Column offsets of query head 0 / KV head 0 in q, k, v (default 0): pass one fused QKV tensor thrice. */
  qOffset?: number;
  kOffset?: number;
  vOffset?: number;
  /** Softmax scale (default 1/√headDim). */
  scale?: number;
  /** (B, t) valid new tokens, read on the first layer of a step (as in `update`). */
  mask?: RowMask;
}

/** A 0/1 matrix (B, t) given as a tensor or nested arrays. */
export type RowMask = tf.Tensor2D | ArrayLike<ArrayLike<number>>;

function bad(code: string, message: string, details: Record<string, unknown>): never {
  throw new TypeformerError(code, message, details);
}

function posInt(name: string, v: unknown, min = 1): number {
  if (!(typeof v === "number" && Number.isInteger(v) && v >= min)) {
    bad("INVALID_ARGUMENT", `${name} must be an integer >= ${min}; received ${describeValue(v)}`, {
      name,
      value: v,
    });
  }
  return v as number;
}

/**
 * Keys and values of past tokens, per layer, for batched decoding. Rows are sequences; storage is
 * right-aligned (left-padded): every step appends t slots to every row, so the newest token of every
 * row is in the last slot and the causal mask is bottom-right aligned. A row's padding slots are
 * tracked in {@link KVCache.keyMask}. Stored tensors are kept out of tf.tidy scopes and freed by
 * {@link KVCache.dispose}; `update` returns clones the caller owns.
 *
 * A step: `positions(t, mask)` (for rotary), then `update(layer, k, v, mask)` for every layer once;
 * `keyMask()` covers the keys of the step in progress, `lengths` counts completed steps.
 */
export class KVCache {
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly valueDim: number;
  readonly maxLength: number;
  private keys: (tf.Tensor4D | null)[];
  private values: (tf.Tensor4D | null)[];
  /**
   * In-place storage of the fused path: per layer (B, Hkv, cap, D) buffers whose first layerSlots
   * slots hold the layer's keys/values (a layer has either these or keys/values, never both). Owned
   * solely by this cache — never returned, cloned or passed to anything but the decode-attention
   * kernel, which writes the new slots in place — so tf.js's immutability is never observable.
   */
  private kBuf: (tf.Tensor4D | null)[];
  private vBuf: (tf.Tensor4D | null)[];
  /** The step's (B, slots) key mask for the fused kernel (null: every slot valid), freed at commit. */
  private stepMask: tf.Tensor2D | null | undefined;
  private layerSlots: number[];
  /** Per row, 0/1 validity of each slot (committed slots followed by the step in progress). */
  private valid: Uint8Array[];
  private committed = 0;
  private pendingT = 0;
  private rowLengths: number[];
  private disposed = false;

  constructor(opts: KVCacheOptions) {
    this.numLayers = posInt("numLayers", opts?.numLayers);
    const batch = posInt("batch", opts?.batch, 0);
    this.numKvHeads = posInt("numKvHeads", opts?.numKvHeads);
    this.headDim = posInt("headDim", opts?.headDim);
    this.valueDim = opts.valueDim === undefined ? this.headDim : posInt("valueDim", opts.valueDim);
    this.maxLength = posInt("maxLength", opts?.maxLength);
    this.keys = new Array(this.numLayers).fill(null);
    this.values = new Array(this.numLayers).fill(null);
    this.kBuf = new Array(this.numLayers).fill(null);
    this.vBuf = new Array(this.numLayers).fill(null);
    this.layerSlots = new Array(this.numLayers).fill(0);
    this.valid = Array.from({ length: batch }, () => new Uint8Array(0));
    this.rowLengths = new Array(batch).fill(0);
  }

  /** Number of rows (sequences). */
  get batch(): number {
    return this.valid.length;
  }

  /** Valid (non-padding) tokens per row after the last completed step. */
  get lengths(): number[] {
    return [...this.rowLengths];
  }

  /** Slots per row after the last completed step (the stored key length, padding included). */
  get length(): number {
    return this.committed;
  }

  /** Whether dispose() ran. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  private alive(): void {
    if (this.disposed) bad("INVALID_ARGUMENT", "this KVCache was disposed", {});
  }

  private idle(what: string): void {
    this.alive();
    if (this.pendingT > 0) {
      bad(
        "INVALID_ARGUMENT",
        `${what} needs a completed step; layers ${this.layerSlots.join(",")} slots are mid-step`,
        {
          layerSlots: [...this.layerSlots],
        },
      );
    }
  }

  private readMask(mask: RowMask | undefined, t: number, name: string): Uint8Array[] {
    const B = this.batch;
    if (mask === undefined) return Array.from({ length: B }, () => new Uint8Array(t).fill(1));
    let rows: ArrayLike<ArrayLike<number>>;
    if (mask instanceof tf.Tensor) {
      if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== t) {
        bad("SHAPE_MISMATCH", `${name} must be (${B}, ${t}); received ${describeValue(mask.shape)}`, {
          shape: mask.shape,
        });
      }
      const flat = mask.dataSync();
      rows = Array.from({ length: B }, (_, b) => flat.subarray(b * t, (b + 1) * t));
    } else {
      rows = mask;
      if (rows.length !== B || Array.from(rows).some((r) => r.length !== t)) {
        bad("SHAPE_MISMATCH", `${name} must be ${B} rows of ${t}`, { rows: rows.length });
      }
    }
    return Array.from(rows, (r) => Uint8Array.from(r, (x) => (x ? 1 : 0)));
  }

  /**
   * Absolute positions (B, t) int32 of the next t tokens of each row: the row's length plus the
   * number of valid tokens before it in this chunk (`mask` marks valid new tokens; padding gets 0).
   */
  positions(t: number, mask?: RowMask): tf.Tensor2D {
    this.alive();
    posInt("t", t, 0);
    const m = this.readMask(mask, t, "mask");
    const out = new Int32Array(this.batch * t);
    for (let b = 0; b < this.batch; b++) {
      let p = this.rowLengths[b];
      for (let i = 0; i < t; i++) {
        if (m[b][i]) out[b * t + i] = p++;
      }
    }
    return tf.tensor2d(out, [this.batch, t], "int32");
  }

  /**
   * Appends k (B, Hkv, t, D) and v (B, Hkv, t, Dv) to `layer` and returns that layer's full keys and
   * values (B, Hkv, Tk, ·) — clones the caller owns. `mask` (B, t) marks valid new tokens (left
   * padding of a batched prompt); it is read on the first layer of a step.
   */
  update(layer: number, k: tf.Tensor4D, v: tf.Tensor4D, mask?: RowMask): { k: tf.Tensor4D; v: tf.Tensor4D } {
    this.alive();
    if (!(Number.isInteger(layer) && layer >= 0 && layer < this.numLayers)) {
      bad(
        "INVALID_ARGUMENT",
        `layer must be an integer in [0, ${this.numLayers}); received ${describeValue(layer)}`,
        {
          layer,
        },
      );
    }
    const B = this.batch;
    const t = k?.shape?.[2];
    if (k?.rank !== 4 || k.shape[0] !== B || k.shape[1] !== this.numKvHeads || k.shape[3] !== this.headDim) {
      bad(
        "SHAPE_MISMATCH",
        `k must be (${B}, ${this.numKvHeads}, t, ${this.headDim}); received ${describeValue(k?.shape)}`,
        {
          shape: k?.shape,
        },
      );
    }
    if (
      v?.rank !== 4 ||
      v.shape[0] !== B ||
      v.shape[1] !== this.numKvHeads ||
      v.shape[2] !== t ||
      v.shape[3] !== this.valueDim
    ) {
      bad(
        "SHAPE_MISMATCH",
        `v must be (${B}, ${this.numKvHeads}, ${t}, ${this.valueDim}); received ${describeValue(v?.shape)}`,
        { shape: v?.shape },
      );
    }
    const at = this.beginLayer(layer, t, mask);
    this.materialize(layer);
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    const nk = tf.keep(oldK ? tf.concat([oldK, k], 2) : tf.clone(k));
    const nv = tf.keep(oldV ? tf.concat([oldV, v], 2) : tf.clone(v));
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer] = nk;
    this.values[layer] = nv;
    this.finishLayer(layer, at, t);
    return { k: tf.clone(nk), v: tf.clone(nv) };
  }

  /** Validates a layer's part of the step (starting the step on its first layer); returns its first slot. */
  private beginLayer(layer: number, t: number, mask: RowMask | undefined): number {
    const at = this.layerSlots[layer];
    if (this.pendingT === 0) {
      if (this.committed + t > this.maxLength) {
        bad(
          "LIMIT_EXCEEDED",
          `KVCache is full: ${this.committed} slots + ${t} new > maxLength ${this.maxLength}`,
          { slots: this.committed, t, maxLength: this.maxLength },
        );
      }
      const m = this.readMask(mask, t, "mask");
      this.valid = this.valid.map((row, b) => {
        const next = new Uint8Array(row.length + t);
        next.set(row);
        next.set(m[b], row.length);
        return next;
      });
      this.pendingT = t;
    } else if (at !== this.committed || t !== this.pendingT) {
      bad(
        "INVALID_ARGUMENT",
        `layer ${layer} update of ${t} tokens does not fit the step in progress (${this.pendingT} tokens; layer already has ${at - this.committed})`,
        { layer, t, pending: this.pendingT },
      );
    }
    return at;
  }

  private finishLayer(layer: number, at: number, t: number): void {
    this.layerSlots[layer] = at + t;
    if (this.layerSlots.every((s) => s === this.committed + this.pendingT)) {
      this.committed += this.pendingT;
      this.pendingT = 0;
      this.rowLengths = this.valid.map((row) => row.reduce((a, x) => a + x, 0));
      this.stepMask?.dispose();
      this.stepMask = undefined;
    }
  }

  /** Moves a layer's in-place buffers (if any) back to exact-length tensors. */
  private materialize(layer: number): void {
    const kb = this.kBuf[layer];
    const vb = this.vBuf[layer];
    if (!kb || !vb) return;
    const n = this.layerSlots[layer];
    const cut = (x: tf.Tensor4D) =>
      n === 0
        ? null
        : tf.keep(tf.tidy(() => tf.slice(x, [0, 0, 0, 0], [x.shape[0], x.shape[1], n, x.shape[3]])));
    this.keys[layer] = cut(kb);
    this.values[layer] = cut(vb);
    kb.dispose();
    vb.dispose();
    this.kBuf[layer] = null;
    this.vBuf[layer] = null;
  }

  private materializeAll(): void {
    for (let l = 0; l < this.numLayers; l++) this.materialize(l);
  }

  /**
   * Whether {@link KVCache.attendInPlace} can run: the wasm backend with Typeformer's kernels
   * registered (`registerWasmKernels()`), float32 storage.
   */
  static canAttendInPlace(): boolean {
    if (!inferenceFastPaths()) return false;
    return (
      tf.getBackend() === "wasm" && tf.getKernel(FUSED_KERNEL_NAMES.decodeAttention, "wasm") !== undefined
    );
  }

  /**
   * The fused decode path: appends this step's keys/values of `layer` (read from k (B·t, ·) and
   * v (B·t, ·) at column offsets, KV head g at offset + g·D) into preallocated storage in place, and
   * returns causal attention of q (B·t, ·) over the layer's keys as (B·t, numHeads·D) — one wasm call
   * for all heads (GQA-aware). Same step rules and numbers as `update` + masked attention; storage
   * grows by doubling, so history is not copied every step. Inference only (no gradients); needs
   * {@link KVCache.canAttendInPlace}.
   */
  attendInPlace(
    layer: number,
    q: tf.Tensor2D,
    k: tf.Tensor2D,
    v: tf.Tensor2D,
    opts: AttendInPlaceOptions,
  ): tf.Tensor2D {
    return this.attendCore(layer, q, k, v, opts);
  }

  /**
   * {@link KVCache.attendInPlace} with the QKV projection in the same wasm call: the fused rows are
   * x (B·t, in) · w (in, out) + b, read at opts' offsets (GPT-2's c_attn). Inference only.
   */
  projectAttendInPlace(
    layer: number,
    x: tf.Tensor2D,
    w: tf.Tensor2D,
    b: tf.Tensor1D,
    opts: AttendInPlaceOptions,
  ): tf.Tensor2D {
    return this.attendCore(layer, x, x, x, opts, { w, bias: b });
  }

  private attendCore(
    layer: number,
    q: tf.Tensor2D,
    k: tf.Tensor2D,
    v: tf.Tensor2D,
    opts: AttendInPlaceOptions,
    projection?: { w: tf.Tensor; bias: tf.Tensor },
  ): tf.Tensor2D {
    this.alive();
    if (!KVCache.canAttendInPlace()) {
      bad(
        "UNSUPPORTED",
        `attendInPlace needs the wasm backend with registerWasmKernels(); backend is ${tf.getBackend()}`,
        {
          backend: tf.getBackend(),
        },
      );
    }
    if (!(Number.isInteger(layer) && layer >= 0 && layer < this.numLayers)) {
      bad(
        "INVALID_ARGUMENT",
        `layer must be an integer in [0, ${this.numLayers}); received ${describeValue(layer)}`,
        {
          layer,
        },
      );
    }
    const B = this.batch;
    const rows = q?.shape?.[0];
    if (q?.rank !== 2 || k?.rank !== 2 || v?.rank !== 2 || B === 0 || rows % B !== 0 || rows === 0) {
      bad("SHAPE_MISMATCH", `q, k, v must be (B·t, ·) with B = ${B}; received q ${describeValue(q?.shape)}`, {
        q: q?.shape,
      });
    }
    if (this.valueDim !== this.headDim) {
      bad(
        "UNSUPPORTED",
        `attendInPlace needs valueDim = headDim; this cache has ${this.valueDim} / ${this.headDim}`,
        {},
      );
    }
    const H = opts?.numHeads;
    if (!(Number.isInteger(H) && H > 0 && H % this.numKvHeads === 0)) {
      bad(
        "INVALID_ARGUMENT",
        `numHeads must be a positive multiple of numKvHeads ${this.numKvHeads}; received ${describeValue(H)}`,
        {
          numHeads: H,
        },
      );
    }
    const t = rows / B;
    const at = this.beginLayer(layer, t, opts.mask);
    const D = this.headDim;
    // storage with room for slots [0, at + t): keep, or grow (capacity doubling) by padding a copy
    let kb = this.kBuf[layer];
    let vb = this.vBuf[layer];
    const cap = kb ? kb.shape[2] : 0;
    if (!kb || !vb || cap < at + t) {
      const need = Math.min(this.maxLength, Math.max(at + t, 2 * cap, 16));
      const grow = (buf: tf.Tensor4D | null, exact: tf.Tensor4D | null) =>
        tf.keep(
          tf.tidy(() => {
            const src = buf ?? exact;
            if (!src) return tf.zeros([B, this.numKvHeads, need, D]) as tf.Tensor4D;
            return tf.pad(src, [
              [0, 0],
              [0, 0],
              [0, need - src.shape[2]],
              [0, 0],
            ]) as tf.Tensor4D;
          }),
        );
      const nk = grow(kb, this.keys[layer]);
      const nv = grow(vb, this.values[layer]);
      for (const x of [kb, vb, this.keys[layer], this.values[layer]]) x?.dispose();
      this.keys[layer] = null;
      this.values[layer] = null;
      kb = nk;
      vb = nv;
      this.kBuf[layer] = kb;
      this.vBuf[layer] = vb;
    }
    if (this.stepMask === undefined) {
      const S = this.committed + this.pendingT;
      const full = this.valid.every((row) => row.subarray(0, S).every((x) => x === 1));
      this.stepMask = full ? null : tf.keep(this.keyMask());
    }
    const attrs: DecodeAttentionAttrs = {
      past: at,
      numHeads: opts.numHeads,
      numKvHeads: this.numKvHeads,
      headDim: D,
      qOffset: opts.qOffset ?? 0,
      kOffset: opts.kOffset ?? 0,
      vOffset: opts.vOffset ?? 0,
      scale: opts.scale ?? 1 / Math.sqrt(D),
    };
    const inputs: tf.NamedTensorMap = { q, k, v, kCache: kb, vCache: vb };
    if (this.stepMask) inputs.mask = this.stepMask;
    if (projection) Object.assign(inputs, projection);
    const out = tf
      .engine()
      .runKernel(
        FUSED_KERNEL_NAMES.decodeAttention,
        inputs,
        attrs as unknown as tf.NamedAttrMap,
      ) as tf.Tensor2D;
    this.finishLayer(layer, at, t);
    return out;
  }

  /** (B, Tk) float32 mask of valid key slots, including the step in progress. */
  keyMask(): tf.Tensor2D {
    this.alive();
    const S = this.committed + this.pendingT;
    const out = new Float32Array(this.batch * S);
    for (let b = 0; b < this.batch; b++) out.set(this.valid[b].subarray(0, S), b * S);
    return tf.tensor2d(out, [this.batch, S]);
  }

  /** The stored keys and values of a layer (clones the caller owns), or null before its first update. */
  get(layer: number): { k: tf.Tensor4D; v: tf.Tensor4D } | null {
    this.alive();
    this.materialize(layer);
    const k = this.keys[layer];
    const v = this.values[layer];
    return k && v ? { k: tf.clone(k), v: tf.clone(v) } : null;
  }

  private replaceAll(fn: (x: tf.Tensor4D) => tf.Tensor4D | null): void {
    this.materializeAll();
    for (const arr of [this.keys, this.values]) {
      for (let l = 0; l < arr.length; l++) {
        const x = arr[l];
        if (!x) continue;
        const y = fn(x);
        arr[l] = y ? tf.keep(y) : null;
        if (y !== x) x.dispose();
      }
    }
  }

  /** Drops leading slots that no row uses. */
  private compact(): void {
    const S = this.committed;
    let first = S;
    for (const row of this.valid) {
      const i = row.indexOf(1);
      if (i >= 0 && i < first) first = i;
    }
    if (this.batch === 0) first = S;
    if (first === 0) return;
    this.dropLeading(first);
  }

  private dropLeading(n: number): void {
    const S = this.committed;
    const keep = S - n;
    this.replaceAll((x) =>
      keep === 0
        ? null
        : tf.tidy(() => tf.slice(x, [0, 0, n, 0], [x.shape[0], x.shape[1], keep, x.shape[3]])),
    );
    this.valid = this.valid.map((row) => row.slice(n));
    this.committed = keep;
    this.layerSlots.fill(keep);
    this.rowLengths = this.valid.map((row) => row.reduce((a, x) => a + x, 0));
  }

  private checkRows(rows: number[]): void {
    const B = this.batch;
    for (const r of rows) {
      if (!(Number.isInteger(r) && r >= 0 && r < B)) {
        bad("INVALID_ARGUMENT", `rows must be indices in [0, ${B}); received ${describeValue(rows)}`, {
          rows,
        });
      }
    }
  }

  /** Removes rows (sequences that finished); the rest keep their order. */
  removeRows(rows: number[]): void {
    this.idle("removeRows");
    const B = this.batch;
    this.checkRows(rows);
    const drop = new Set(rows);
    this.selectRows([...Array(B).keys()].filter((b) => !drop.has(b)));
  }

  /**
   * Row `rows[i]` becomes row i; rows may repeat or be left out (beam search: each surviving hypothesis
   * continues its parent's keys/values, duplicated when several hypotheses extend the same parent).
   */
  selectRows(rows: number[]): void {
    this.idle("selectRows");
    const B = this.batch;
    this.checkRows(rows);
    if (rows.length === B && rows.every((r, i) => r === i)) return;
    this.replaceAll((x) => (rows.length === 0 ? null : tf.tidy(() => tf.gather(x, rows, 0))));
    this.valid = rows.map((b) => this.valid[b].slice());
    this.rowLengths = rows.map((b) => this.rowLengths[b]);
    if (rows.length === 0) {
      this.committed = 0;
      this.layerSlots.fill(0);
    } else this.compact();
  }

  /** Appends the rows of `other` (same layers/heads/dims) after this cache's rows, right-aligned. `other` is left as it was. */
  concatRows(other: KVCache): void {
    this.idle("concatRows");
    other.idle("concatRows");
    this.materializeAll();
    other.materializeAll();
    if (
      other.numLayers !== this.numLayers ||
      other.numKvHeads !== this.numKvHeads ||
      other.headDim !== this.headDim ||
      other.valueDim !== this.valueDim
    ) {
      bad(
        "SHAPE_MISMATCH",
        "concatRows needs caches with the same numLayers, numKvHeads, headDim and valueDim",
        {
          self: [this.numLayers, this.numKvHeads, this.headDim, this.valueDim],
          other: [other.numLayers, other.numKvHeads, other.headDim, other.valueDim],
        },
      );
    }
    const S = Math.max(this.committed, other.committed);
    if (S > this.maxLength) {
      bad("LIMIT_EXCEEDED", `concatRows needs ${S} slots > maxLength ${this.maxLength}`, {
        slots: S,
        maxLength: this.maxLength,
      });
    }
    const padTo = (x: tf.Tensor4D | null, rows: number, slots: number, dim: number): tf.Tensor4D | null => {
      if (rows === 0) return null;
      if (!x) return slots === S ? null : tf.zeros([rows, this.numKvHeads, S, dim]);
      return slots === S
        ? x
        : tf.pad(x, [
            [0, 0],
            [0, 0],
            [S - slots, 0],
            [0, 0],
          ]);
    };
    for (const [mine, theirs, dim] of [
      [this.keys, other.keys, this.headDim],
      [this.values, other.values, this.valueDim],
    ] as const) {
      for (let l = 0; l < this.numLayers; l++) {
        const a = mine[l];
        let joined: tf.Tensor4D | null = null;
        tf.tidy(() => {
          const pa = padTo(a, this.batch, this.committed, dim);
          const pb = padTo(theirs[l], other.batch, other.committed, dim);
          const parts = [pa, pb].filter((x): x is tf.Tensor4D => x !== null);
          if (parts.length === 0) return;
          joined = tf.keep(parts.length === 1 ? tf.clone(parts[0]) : tf.concat(parts, 0));
        });
        mine[l] = joined;
        a?.dispose();
      }
    }
    const leftPad = (row: Uint8Array, slots: number) => {
      const out = new Uint8Array(S);
      out.set(row, S - slots);
      return out;
    };
    this.valid = [
      ...this.valid.map((r) => leftPad(r, this.committed)),
      ...other.valid.map((r) => leftPad(r, other.committed)),
    ];
    this.rowLengths = [...this.rowLengths, ...other.rowLengths];
    this.committed = S;
    this.layerSlots.fill(S);
  }

  /** Keeps only the newest `maxLength` slots of every row (sliding-window caches, freeing memory). */
  trim(maxLength: number): void {
    this.idle("trim");
    posInt("maxLength", maxLength, 0);
    if (this.committed > maxLength) this.dropLeading(this.committed - maxLength);
  }

  /** Frees every stored tensor; idempotent. Any later use throws. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const x of [...this.keys, ...this.values, ...this.kBuf, ...this.vBuf]) x?.dispose();
    this.kBuf.fill(null);
    this.vBuf.fill(null);
    this.stepMask?.dispose();
    this.stepMask = undefined;
    this.keys.fill(null);
    this.values.fill(null);
  }
}
