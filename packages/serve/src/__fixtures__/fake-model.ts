import { Random, tf } from "@typeformer/core";
import type { ServeCausalLM, ServeKVCache, ServeTokenizer } from "../types.js";

/**
 * Test doubles: a tiny deterministic causal "LM" with a real left-padded cache (uniform causal
 * attention over an embedding table), and a character tokenizer. Used until/besides real models.
 */
export class FakeCache implements ServeKVCache {
  states: tf.Tensor3D | null = null;
  lengths: number[];
  disposed = false;
  constructor(
    batch: number,
    readonly dim: number,
  ) {
    this.lengths = new Array(batch).fill(0);
  }

  /** Appends (B,t,d); returns the full (B,L,d) states and the (B,L) validity mask (caller disposes). */
  append(x: tf.Tensor3D, newMask?: tf.Tensor2D): { full: tf.Tensor3D; mask: tf.Tensor2D } {
    const t = x.shape[1];
    const full = this.states ? tf.concat([this.states, x], 1) : x.clone();
    this.states?.dispose();
    this.states = tf.keep(full.clone());
    // left-padded new tokens (only on a fresh cache): valid ones stay right-aligned
    let valid: number[] | undefined;
    if (newMask) {
      const sums = tf.sum(newMask, 1);
      valid = Array.from(sums.dataSync());
      sums.dispose();
    }
    this.lengths = this.lengths.map((l, b) => l + (valid ? valid[b] : t));
    return { full, mask: this.mask() };
  }

  mask(): tf.Tensor2D {
    const L = this.states ? this.states.shape[1] : 0;
    const m = new Float32Array(this.lengths.length * L);
    this.lengths.forEach((len, r) => {
      for (let j = L - len; j < L; j++) m[r * L + j] = 1;
    });
    return tf.tensor2d(m, [this.lengths.length, L]);
  }

  removeRows(rows: number[]): void {
    const drop = new Set(rows);
    const keep = this.lengths.map((_, i) => i).filter((i) => !drop.has(i));
    this.lengths = keep.map((i) => this.lengths[i]);
    if (!this.states) return;
    const L = this.states.shape[1];
    const newL = Math.max(0, ...this.lengths);
    const next = tf.tidy(() => {
      const g = tf.gather(this.states!, tf.tensor1d(keep, "int32"), 0) as tf.Tensor3D;
      return g.slice([0, L - newL, 0], [keep.length, newL, this.dim]);
    });
    this.states.dispose();
    this.states = next;
  }

  concatRows(other: ServeKVCache): void {
    const o = other as FakeCache;
    const a = this.states;
    const b = o.states;
    const La = a ? a.shape[1] : 0;
    const Lb = b ? b.shape[1] : 0;
    const L = Math.max(La, Lb);
    const next = tf.tidy(() => {
      const pa = a
        ? tf.pad(a, [
            [0, 0],
            [L - La, 0],
            [0, 0],
          ])
        : tf.zeros([this.lengths.length, L, this.dim]);
      const pb = b
        ? tf.pad(b, [
            [0, 0],
            [L - Lb, 0],
            [0, 0],
          ])
        : tf.zeros([o.lengths.length, L, this.dim]);
      return tf.concat([pa, pb], 0) as tf.Tensor3D;
    });
    a?.dispose();
    this.states = next;
    this.lengths = [...this.lengths, ...o.lengths];
  }

  dispose(): void {
    this.states?.dispose();
    this.states = null;
    this.disposed = true;
  }
}

export class FakeCausalLM implements ServeCausalLM {
  readonly modelType = "fake";
  readonly family = "decoder";
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly dim = 16;
  readonly emb: tf.Variable;
  readonly out: tf.Variable;
  forwardCalls: number[] = [];
  /** Busy-waits this long in every forward (to test timeouts). */
  slowMs = 0;

  constructor(vocabSize: number, maxPositions = 128, seed = 1) {
    this.vocabSize = vocabSize;
    this.maxPositions = maxPositions;
    const rng = new Random(seed);
    const e = tf.tensor2d(rng.normalArray(vocabSize * this.dim), [vocabSize, this.dim]);
    const w = tf.tensor2d(rng.normalArray(this.dim * vocabSize, 0, 0.8), [this.dim, vocabSize]);
    this.emb = tf.variable(e);
    this.out = tf.variable(w);
    e.dispose();
    w.dispose();
  }

  createCache(batch: number): FakeCache {
    return new FakeCache(batch, this.dim);
  }

  forward(
    inputIds: tf.Tensor2D,
    opts: { cache?: unknown; attentionMask?: tf.Tensor2D; outputAttentions?: boolean } = {},
  ): { logits: tf.Tensor3D; attentions?: tf.Tensor4D[] } {
    const [B, T] = inputIds.shape;
    this.forwardCalls.push(B);
    if (this.slowMs > 0) {
      const end = performance.now() + this.slowMs;
      while (performance.now() < end) {
        // busy-wait: forward passes block the event loop like real ones
      }
    }
    const x = tf.tidy(() => tf.gather(this.emb, inputIds) as tf.Tensor3D);
    let full: tf.Tensor3D;
    let mask: tf.Tensor2D;
    if (opts.cache) {
      ({ full, mask } = (opts.cache as FakeCache).append(x, opts.attentionMask));
    } else {
      full = x.clone();
      mask = tf.ones([B, T]);
    }
    const logits = tf.tidy(() => {
      const L = full.shape[1];
      const m3 = mask.expandDims(2);
      const cs = tf.cumsum(tf.mul(full, m3), 1);
      const cnt = tf.maximum(tf.cumsum(mask, 1), 1).expandDims(2);
      const ctx = tf.div(cs, cnt).slice([0, L - T, 0], [B, T, this.dim]);
      const h = tf.add(x, tf.tanh(ctx)).reshape([B * T, this.dim]);
      return tf.matMul(h, this.out).reshape([B, T, this.vocabSize]) as tf.Tensor3D;
    });
    let attentions: tf.Tensor4D[] | undefined;
    if (opts.outputAttentions) {
      attentions = [0, 1].map(() =>
        tf.tidy(() => {
          const causal = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
          const w = tf.div(causal, tf.sum(causal, 1, true));
          return tf.tile(w.reshape([1, 1, T, T]), [B, 2, 1, 1]) as tf.Tensor4D;
        }),
      );
    }
    tf.dispose([x, full, mask]);
    return { logits, attentions };
  }

  dispose(): void {
    this.emb.dispose();
    this.out.dispose();
  }
}

const CHARS = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).concat(["\n"]);

/** Character tokenizer: id 0 is `<eos>`, then printable ASCII and newline. */
export class FakeCharTokenizer implements ServeTokenizer {
  readonly vocabSize = CHARS.length + 1;
  readonly eosTokenId = 0;
  readonly specialTokens = { "<eos>": 0 };
  encode(text: string): number[] {
    return Array.from(text, (c) => {
      const i = CHARS.indexOf(c);
      return i < 0 ? CHARS.indexOf("?") + 1 : i + 1;
    });
  }
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return ids.map((id) => (id === 0 ? (opts.skipSpecialTokens ? "" : "<eos>") : CHARS[id - 1])).join("");
  }
  idToToken(id: number): string | undefined {
    return id === 0 ? "<eos>" : CHARS[id - 1];
  }
  createStreamDecoder(opts: { skipSpecialTokens?: boolean } = {}) {
    return { push: (id: number) => this.decode([id], opts), flush: () => "" };
  }
  applyChatTemplate(messages: { role: string; content: string }[], opts: { addGenerationPrompt?: boolean } = {}) {
    return messages.map((m) => `${m.role}: ${m.content}\n`).join("") + (opts.addGenerationPrompt ? "assistant:" : "");
  }
}

/** A tiny encoder: embed = masked mean of an embedding table (the shape of bert's `embed`). */
export class FakeEncoder {
  readonly modelType = "fake-bert";
  readonly family = "encoder";
  readonly maxPositions = 64;
  readonly emb: tf.Variable;
  constructor(vocabSize: number, dim = 8) {
    const e = tf.tensor2d(new Random(9).normalArray(vocabSize * dim), [vocabSize, dim]);
    this.emb = tf.variable(e);
    e.dispose();
  }
  embed(ids: tf.Tensor2D, opts: { attentionMask?: tf.Tensor2D } = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const x = tf.gather(this.emb, ids) as tf.Tensor3D;
      const m = opts.attentionMask ?? tf.onesLike(ids).toFloat();
      const s = tf.sum(tf.mul(x, m.expandDims(2)), 1);
      return tf.div(s, tf.sum(m, 1, true)) as tf.Tensor2D;
    });
  }
  dispose(): void {
    this.emb.dispose();
  }
}
