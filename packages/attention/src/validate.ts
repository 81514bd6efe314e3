import { describeValue, TypeformerError, type tf } from "@typeformer/core";
import type { AttentionOptions } from "./types.js";

/** Sizes of one attention call. G = H / Hkv query heads share each key/value head. */
export interface AttentionDims {
  B: number;
  H: number;
  Hkv: number;
  G: number;
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
}

function fail(
  name: string,
  value: unknown,
  expectation: string,
  details: Record<string, unknown> = {},
): never {
  throw new TypeformerError(
    "SHAPE_MISMATCH",
    `${name} must be ${expectation}; received ${describeValue(value)}`,
    { name, value, ...details },
  );
}

function invalid(name: string, value: unknown, expectation: string): never {
  throw new TypeformerError(
    "INVALID_ARGUMENT",
    `${name} must be ${expectation}; received ${describeValue(value)}`,
    { name, value },
  );
}

/** Checks shapes and options of an attention call and returns its sizes. */
export function attentionDims(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  opts: AttentionOptions = {},
): AttentionDims {
  if (q?.rank !== 4) fail("q", q?.shape, "a 4-D tensor (B, H, Tq, D)");
  if (k?.rank !== 4) fail("k", k?.shape, "a 4-D tensor (B, Hkv, Tk, D)");
  if (v?.rank !== 4) fail("v", v?.shape, "a 4-D tensor (B, Hkv, Tk, Dv)");
  const [B, H, Tq, D] = q.shape;
  const [Bk, Hkv, Tk, Dk] = k.shape;
  if (Bk !== B || Dk !== D) fail("k.shape", k.shape, `[${B}, Hkv, Tk, ${D}] to match q.shape ${q.shape}`);
  if (v.shape[0] !== B || v.shape[1] !== Hkv || v.shape[2] !== Tk) {
    fail("v.shape", v.shape, `[${B}, ${Hkv}, ${Tk}, Dv] to match k.shape ${k.shape}`);
  }
  if (Hkv === 0 || H % Hkv !== 0) fail("k.shape[1]", Hkv, `a divisor of the ${H} query heads`);
  if (Tk === 0) fail("k.shape[2]", Tk, "at least 1 key");
  const dims: AttentionDims = { B, H, Hkv, G: H / Hkv, Tq, Tk, D, Dv: v.shape[3] as number };
  if (opts.keyMask !== undefined) {
    const m = opts.keyMask;
    if (m?.rank !== 2 || m.shape[0] !== B || m.shape[1] !== Tk) {
      fail("keyMask.shape", m?.shape, `[${B}, ${Tk}] (B, Tk)`);
    }
  }
  if (opts.bias !== undefined) {
    const s = opts.bias?.shape;
    const full = [B, H, Tq, Tk];
    if (!s || s.length > 4) fail("bias.shape", s, `broadcastable to [${full}]`);
    const off = 4 - s.length;
    for (let i = 0; i < s.length; i++) {
      if (s[i] !== 1 && s[i] !== full[off + i]) fail("bias.shape", s, `broadcastable to [${full}]`);
    }
  }
  if (opts.window !== undefined && !(Number.isInteger(opts.window) && opts.window >= 1)) {
    invalid("window", opts.window, "a positive integer");
  }
  if (opts.scale !== undefined && !Number.isFinite(opts.scale))
    invalid("scale", opts.scale, "a finite number");
  if (opts.dropout !== undefined) {
    if (!(opts.dropout >= 0 && opts.dropout < 1)) invalid("dropout", opts.dropout, "in [0, 1)");
    if (opts.dropout > 0 && !opts.rng) invalid("rng", opts.rng, "a Random when dropout > 0");
  }
  return dims;
}

export const NEG_INF = -1e30;

/**
 * 0/1 visibility of the static (causal / sliding-window) mask over rows [r0, r1) and key columns
 * [c0, c1); `null` when every entry is visible. Query row i sits at key position i + off.
 */
export function staticVisibility(
  r0: number,
  r1: number,
  c0: number,
  c1: number,
  off: number,
  causal: boolean,
  window: number | undefined,
): Float32Array | null {
  const kind = blockKind(r0, r1, c0, c1, off, causal, window);
  if (kind === "full") return null;
  const rows = r1 - r0;
  const cols = c1 - c0;
  const out = new Float32Array(rows * cols);
  if (kind === "empty") return out;
  for (let i = 0; i < rows; i++) {
    const p = r0 + i + off;
    const hi = causal || window !== undefined ? p : Number.POSITIVE_INFINITY;
    const lo = window !== undefined ? p - window : Number.NEGATIVE_INFINITY;
    for (let j = 0; j < cols; j++) {
      const c = c0 + j;
      if (c <= hi && c > lo) out[i * cols + j] = 1;
    }
  }
  return out;
}

/** Whether a block of the static mask is all visible, all masked, or mixed. */
export function blockKind(
  r0: number,
  r1: number,
  c0: number,
  c1: number,
  off: number,
  causal: boolean,
  window: number | undefined,
): "full" | "empty" | "partial" {
  if (!causal && window === undefined) return "full";
  // rows r0..r1-1 see keys in [p - window + 1, p] with p = row + off
  const minHi = r0 + off;
  const maxHi = r1 - 1 + off;
  if (c0 > maxHi) return "empty";
  if (window !== undefined) {
    const minLo = r0 + off - window + 1;
    const maxLo = r1 - 1 + off - window + 1;
    if (c1 - 1 < minLo) return "empty";
    if (c1 - 1 <= minHi && c0 >= maxLo) return "full";
    return "partial";
  }
  return c1 - 1 <= minHi ? "full" : "partial";
}
