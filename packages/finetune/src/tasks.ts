/**
 * Task objectives and batching for fine-tuning, on top of the trainer's objectives:
 * - chat SFT: the tokenizer's chat template, loss only on the assistant's tokens (content + end of turn);
 * - sequence classification (encoder): pooled [CLS] → classifier, cross-entropy over labels;
 * - seq2seq (encoder-decoder): teacher forcing, targets end with EOS;
 * - continued pretraining: next-token loss over every real token.
 */
import { Random, TypeformerError, tf } from "@typeformer/core";
import {
  type BatchSource,
  type CausalLMLike,
  CausalLMObjective,
  crossEntropySum,
  type EvalSource,
  type Objective,
  type ObjectiveContext,
  type ObjectiveResult,
  type Seq2SeqBatch,
  type Seq2SeqLike,
  Seq2SeqObjective,
  type TokenBatch,
} from "@typeformer/trainer";
import type { ChatRole, Example } from "./data.js";

/** What the chat encoder needs of a tokenizer (`@typeformer/tokenizer`'s Tokenizer satisfies it). */
export interface ChatTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean; allowedSpecial?: "all" | Set<string> }): number[];
  applyChatTemplate(
    messages: { role: string; content: string }[],
    opts?: { addGenerationPrompt?: boolean },
  ): string;
}

/** Token ids of a conversation and a mask that is 1 exactly on the assistant's tokens. */
export interface MaskedSequence {
  ids: number[];
  mask: number[];
}

/**
 * Renders a conversation with the chat template and marks the assistant tokens. Each turn is encoded
 * from the difference of rendered prefixes: the assistant header (the generation prompt) is context,
 * the assistant's content and end-of-turn marker are targets. Truncated to `maxLength` tokens.
 */
export function encodeChat(
  tok: ChatTokenizer,
  messages: { role: ChatRole | string; content: string }[],
  maxLength = Number.POSITIVE_INFINITY,
): MaskedSequence {
  const ids: number[] = [];
  const mask: number[] = [];
  const enc = (s: string) =>
    s.length === 0 ? [] : tok.encode(s, { addSpecialTokens: false, allowedSpecial: "all" });
  const push = (s: string, m: number) => {
    for (const id of enc(s)) {
      ids.push(id);
      mask.push(m);
    }
  };
  let prev = "";
  for (let i = 0; i < messages.length; i++) {
    const full = tok.applyChatTemplate(messages.slice(0, i + 1));
    if (messages[i].role === "assistant") {
      const header = tok.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
      if (!header.startsWith(prev) || !full.startsWith(header)) {
        throw new TypeformerError(
          "TOKENIZER_INVALID",
          "the chat template does not render conversations prefix by prefix; cannot locate the assistant's tokens",
          { turn: i },
        );
      }
      push(header.slice(prev.length), 0);
      push(full.slice(header.length), 1);
    } else {
      if (!full.startsWith(prev)) {
        throw new TypeformerError(
          "TOKENIZER_INVALID",
          "the chat template does not render conversations prefix by prefix",
          {
            turn: i,
          },
        );
      }
      push(full.slice(prev.length), 0);
    }
    prev = full;
  }
  return { ids: ids.slice(0, maxLength), mask: mask.slice(0, maxLength) };
}

/** A chat or prompt/completion example as messages. */
export function exampleMessages(e: Example): { role: ChatRole; content: string }[] {
  if (e.kind === "chat") return e.messages;
  if (e.kind === "completion")
    return [
      { role: "user", content: e.prompt },
      { role: "assistant", content: e.completion },
    ];
  throw new TypeformerError("DATA_INVALID", `a ${e.kind} example is not a conversation`, { kind: e.kind });
}

/**
 * An endless, seeded, shuffled stream of batches over a fixed list of items (one shuffle per epoch);
 * its position (epoch, offset and the shuffle generator) is saved in checkpoints for exact resume.
 * Also an {@link EvalSource}: `batches(n)` yields the first n batches in file order.
 */
export class ExampleBatches<T, B> implements BatchSource<B>, EvalSource<B> {
  private order: number[] = [];
  private pos = 0;
  private epoch = 0;
  private rng: Random;
  private readonly seed: number;

  constructor(
    readonly items: T[],
    readonly batchSize: number,
    readonly collate: (items: T[]) => B,
    seed = 0,
  ) {
    if (items.length === 0) throw new TypeformerError("DATA_INVALID", "no examples to batch", {});
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `batchSize must be an integer >= 1; received ${batchSize}`,
        {
          batchSize,
        },
      );
    }
    this.seed = seed;
    this.rng = new Random(seed);
    this.shuffle();
  }

  private shuffle(): void {
    this.order = this.items.map((_, i) => i);
    for (let i = this.order.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
    this.pos = 0;
  }

  next(): B {
    const picked: T[] = [];
    while (picked.length < this.batchSize) {
      if (this.pos >= this.order.length) {
        this.epoch++;
        this.shuffle();
      }
      picked.push(this.items[this.order[this.pos++]]);
    }
    return this.collate(picked);
  }

  getState(): unknown {
    return { epoch: this.epoch, pos: this.pos, order: this.order, rng: this.rng.getState(), seed: this.seed };
  }

  setState(state: unknown): void {
    const s = state as { epoch: number; pos: number; order: number[]; rng: ReturnType<Random["getState"]> };
    this.epoch = s.epoch;
    this.pos = s.pos;
    this.order = [...s.order];
    this.rng.setState(s.rng);
  }

  get epochs(): number {
    return this.epoch + this.pos / this.order.length;
  }

  *batches(count: number): Iterable<B> {
    for (let b = 0; b < count && b * this.batchSize < this.items.length; b++) {
      yield this.collate(this.items.slice(b * this.batchSize, (b + 1) * this.batchSize));
    }
  }
}

/** Right-pads masked sequences into a {@link TokenBatch} (padding gets mask 0). */
export function collateMasked(items: MaskedSequence[], padId = 0): TokenBatch {
  const length = Math.max(2, ...items.map((s) => s.ids.length));
  const tokens = new Int32Array(items.length * length).fill(padId);
  const lossMask = new Uint8Array(items.length * length);
  items.forEach((s, r) => {
    tokens.set(s.ids, r * length);
    lossMask.set(s.mask, r * length);
  });
  return { tokens, batchSize: items.length, length, lossMask };
}

/** Chat SFT / continued pretraining: next-token loss where the mask is 1 (assistant tokens / real text). */
export class MaskedCausalLMObjective implements Objective<TokenBatch> {
  readonly name = "masked-causal-lm";
  private readonly inner: CausalLMObjective;
  constructor(readonly model: CausalLMLike) {
    this.inner = new CausalLMObjective(model);
  }
  loss(batch: TokenBatch, ctx: ObjectiveContext): ObjectiveResult {
    return this.inner.loss(batch, ctx);
  }
}

/** A classification batch: token ids per text and integer labels. */
export interface ClassificationBatch {
  ids: number[][];
  labels: number[];
}

/** Structural view of an encoder with a classification head (`EncoderModel.classify`). */
export interface ClassifierLike {
  classify(
    inputIds: tf.Tensor2D,
    opts?: { attentionMask?: tf.Tensor2D; training?: boolean; rng?: import("@typeformer/core").Random },
  ): tf.Tensor2D;
}

function padRows(rows: number[][], padId: number): { ids: Int32Array; mask: Float32Array; t: number } {
  const t = Math.max(1, ...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * t).fill(padId);
  const mask = new Float32Array(rows.length * t);
  rows.forEach((r, i) => {
    ids.set(r, i * t);
    mask.fill(1, i * t, i * t + r.length);
  });
  return { ids, mask, t };
}

/** Sequence classification: cross-entropy of the classifier's logits (B, numLabels) against labels. */
export class ClassificationObjective implements Objective<ClassificationBatch> {
  readonly name = "classification";
  constructor(
    readonly model: ClassifierLike,
    readonly opts: { padTokenId: number },
  ) {}

  logits(batch: ClassificationBatch, ctx?: ObjectiveContext): tf.Tensor2D {
    const b = batch.ids.length;
    const p = padRows(batch.ids, this.opts.padTokenId);
    return tf.tidy(() =>
      this.model.classify(tf.tensor2d(p.ids, [b, p.t], "int32"), {
        attentionMask: tf.tensor2d(p.mask, [b, p.t], "float32"),
        training: ctx?.training ?? false,
        rng: ctx?.rng,
      }),
    );
  }

  loss(batch: ClassificationBatch, ctx: ObjectiveContext): ObjectiveResult {
    const logits = this.logits(batch, ctx);
    const w = new Float32Array(batch.labels.length).fill(1);
    return { loss: crossEntropySum(logits, Int32Array.from(batch.labels), w), count: batch.labels.length };
  }

  /** Predicted label indices. */
  predict(batch: ClassificationBatch): number[] {
    const logits = this.logits(batch);
    const am = tf.argMax(logits, 1);
    const out = Array.from(am.dataSync());
    tf.dispose([logits, am]);
    return out;
  }
}

export type { CausalLMLike, Seq2SeqBatch, Seq2SeqLike };
export { Seq2SeqObjective };

/** What the task encoders need of a tokenizer. */
export interface TaskTokenizer extends ChatTokenizer {
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
}

/** Encodes a classification text (with the tokenizer's special tokens, e.g. [CLS] ... [SEP]). */
export function encodeClassification(tok: TaskTokenizer, text: string, maxLength: number): number[] {
  return tok.encode(text, { addSpecialTokens: true }).slice(0, maxLength);
}

/** Encodes a seq2seq pair: source ids and target ids ending with EOS. */
export function encodeSeq2Seq(
  tok: TaskTokenizer,
  source: string,
  target: string,
  eosId: number,
  maxLength: number,
): { input: number[]; target: number[] } {
  return {
    input: tok
      .encode(source, { addSpecialTokens: false })
      .slice(0, maxLength - 1)
      .concat([eosId]),
    target: tok
      .encode(target, { addSpecialTokens: false })
      .slice(0, maxLength - 1)
      .concat([eosId]),
  };
}

/** Continued pretraining: every real token is a target. */
export function encodeText(tok: TaskTokenizer, text: string, maxLength: number): MaskedSequence {
  const ids = tok.encode(text, { addSpecialTokens: false }).slice(0, maxLength);
  return { ids, mask: ids.map(() => 1) };
}
