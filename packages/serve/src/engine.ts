import { assertArg, Random, TypeformerError, tf } from "@typeformer/core";
import { Sampler, type SamplingParams, type TokenLogprob, validateSamplingParams } from "./sampling.js";
import { StopMatcher } from "./stop.js";
import type { ServeCausalLM, ServeKVCache, ServeTokenizer } from "./types.js";

/** One generation request, in token ids. */
export interface GenerateRequest {
  promptIds: readonly number[];
  /** Most tokens to generate; capped by the engine's `maxTokensCap` and the room left in the context. */
  maxTokens?: number;
  sampling?: SamplingParams;
  /** Stop strings (matched across token boundaries; never emitted). */
  stop?: readonly string[];
  /** Extra token ids that end generation (the tokenizer's EOS always does unless `ignoreEos`). */
  stopTokenIds?: readonly number[];
  ignoreEos?: boolean;
  /** undefined = no log-probabilities; 0 = chosen token only; k = also the top-k alternatives (≤ 20). */
  logprobs?: number;
  /** Aborting cancels the generation at the next decode step (finish reason "cancelled"). */
  signal?: AbortSignal;
}

export type FinishReason = "stop" | "length" | "cancelled" | "error";

/** One generated token, as streamed. `text` is the newly releasable text (may be empty while held back). */
export interface GenerationEvent {
  tokenId: number;
  text: string;
  logprob?: number;
  topLogprobs?: TokenLogprob[];
}

export interface GenerationResult {
  id: string;
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  /** Why a cancelled generation was cancelled (the abort reason), when known. */
  cancelReason?: unknown;
  /** What went wrong, when the finish reason is "error". */
  error?: unknown;
  promptTokens: number;
  completionTokens: number;
  /** Per generated token, when logprobs were asked for. */
  logprobs?: { tokenId: number; logprob: number; topLogprobs?: TokenLogprob[] }[];
  /** Milliseconds from submission to the first token (undefined when none was produced). */
  timeToFirstTokenMs?: number;
  durationMs: number;
}

/** Hooks for metrics: all optional, all called synchronously from the scheduler loop. */
export interface EngineObserver {
  onFirstToken?(ms: number): void;
  onInterToken?(ms: number): void;
  onStep?(batchSize: number, ms: number): void;
  onFinish?(result: GenerationResult): void;
}

export interface EngineOptions {
  model: ServeCausalLM;
  tokenizer: ServeTokenizer;
  /** Most sequences decoded together in one step (concurrent sequences). Default 16. */
  maxBatch?: number;
  /** Most requests waiting for a batch slot; beyond it `submit` throws LIMIT_EXCEEDED. Default 64. */
  maxQueue?: number;
  /** Context length (prompt + generated); default the model's `maxPositions`. */
  maxContext?: number;
  /** max_tokens when a request names none. Default 256. */
  defaultMaxTokens?: number;
  /** Largest max_tokens accepted. Default: the context length. */
  maxTokensCap?: number;
  observer?: EngineObserver;
  /** Seed of the generator that seeds requests which name no seed. */
  seed?: number;
  /**
   * Most waiting prompts prefilled together in one forward pass (left-padded + attention mask).
   * 1 prefills each prompt alone. Default 8.
   */
  prefillBatch?: number;
  /** Cap on (prompts × longest prompt) of one batched prefill. Default 4096 tokens. */
  maxPrefillTokens?: number;
}

const now = () => performance.now();
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
let nextGenerationId = 0;

/**
 * A running generation: an async iterable of token events (streaming) and a `result` promise.
 * Breaking out of the iteration cancels it.
 */
export class Generation implements AsyncIterable<GenerationEvent> {
  readonly id: string;
  readonly promptIds: readonly number[];
  readonly result: Promise<GenerationResult>;
  /** @internal */ readonly maxTokens: number;
  /** @internal */ readonly sampler: Sampler;
  /** @internal */ cancelled = false;
  /** @internal */ cancelReason: unknown;
  /** @internal */ lastToken = -1;
  /** @internal */ finished = false;
  /** @internal A warm-up sequence (see `GenerationEngine.warmup`): its steps are not reported. */
  warmup = false;

  /** @internal */ readonly req: GenerateRequest;
  private readonly stopIds: Set<number>;
  private readonly stopMatcher: StopMatcher;
  private readonly decoder: { push(id: number): string; flush(): string };
  private readonly tokenIds: number[] = [];
  private text = "";
  private readonly logprobEntries: { tokenId: number; logprob: number; topLogprobs?: TokenLogprob[] }[] = [];
  private readonly events: GenerationEvent[] = [];
  private waiter: (() => void) | undefined;
  private readonly started = now();
  private firstTokenAt: number | undefined;
  private lastTokenAt: number | undefined;
  private resolveResult!: (r: GenerationResult) => void;
  private readonly observer: EngineObserver | undefined;
  private readonly onAbort: () => void;

  /** @internal */
  constructor(
    req: GenerateRequest,
    tokenizer: ServeTokenizer,
    maxTokens: number,
    rng: Random,
    observer: EngineObserver | undefined,
  ) {
    this.id = `gen-${++nextGenerationId}`;
    this.req = req;
    this.promptIds = req.promptIds;
    this.maxTokens = maxTokens;
    this.observer = observer;
    this.sampler = new Sampler(req.sampling ?? {}, req.promptIds, rng);
    this.stopIds = new Set(req.stopTokenIds ?? []);
    if (!req.ignoreEos && tokenizer.eosTokenId !== undefined) this.stopIds.add(tokenizer.eosTokenId);
    this.stopMatcher = new StopMatcher(req.stop ?? []);
    this.decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: true });
    this.result = new Promise((resolve) => {
      this.resolveResult = resolve;
    });
    this.onAbort = () => this.cancel(req.signal?.reason);
    if (req.signal) {
      if (req.signal.aborted) this.cancel(req.signal.reason);
      else req.signal.addEventListener("abort", this.onAbort, { once: true });
    }
  }

  /** Cancels at the next decode step; the result then resolves with finish reason "cancelled". */
  cancel(reason?: unknown): void {
    if (this.finished || this.cancelled) return;
    this.cancelled = true;
    this.cancelReason = reason;
    this.wake();
  }

  /** Tokens generated so far. */
  get completionTokens(): number {
    return this.tokenIds.length;
  }

  /** @internal Accepts one sampled token; returns true when the sequence is finished. */
  accept(sample: { tokenId: number; logprob?: number; topLogprobs?: TokenLogprob[] }): boolean {
    const t = now();
    if (this.firstTokenAt === undefined) {
      this.firstTokenAt = t;
      this.observer?.onFirstToken?.(t - this.started);
    } else if (this.lastTokenAt !== undefined) {
      this.observer?.onInterToken?.(t - this.lastTokenAt);
    }
    this.lastTokenAt = t;
    const id = sample.tokenId;
    this.lastToken = id;
    if (this.stopIds.has(id)) {
      this.finish("stop");
      return true;
    }
    this.tokenIds.push(id);
    if (sample.logprob !== undefined) {
      this.logprobEntries.push({ tokenId: id, logprob: sample.logprob, topLogprobs: sample.topLogprobs });
    }
    const delta = this.decoder.push(id);
    const { text, stopped } = this.stopMatcher.push(delta);
    this.text += text;
    this.emit({ tokenId: id, text, logprob: sample.logprob, topLogprobs: sample.topLogprobs });
    if (stopped) {
      this.finish("stop", false);
      return true;
    }
    if (this.tokenIds.length >= this.maxTokens) {
      this.finish("length");
      return true;
    }
    return false;
  }

  /** @internal Ends the generation (idempotent). */
  finish(reason: FinishReason, flush = true): void {
    if (this.finished) return;
    this.finished = true;
    if (flush && reason !== "error") {
      const rest = this.stopMatcher.push(this.decoder.flush());
      const tail = rest.text + (rest.stopped ? "" : this.stopMatcher.flush());
      if (rest.stopped) reason = "stop";
      if (tail) {
        this.text += tail;
        this.emit({ tokenId: -1, text: tail });
      }
    }
    this.req.signal?.removeEventListener("abort", this.onAbort);
    const result: GenerationResult = {
      id: this.id,
      text: this.text,
      tokenIds: this.tokenIds,
      finishReason: reason,
      promptTokens: this.promptIds.length,
      completionTokens: this.tokenIds.length,
      timeToFirstTokenMs: this.firstTokenAt === undefined ? undefined : this.firstTokenAt - this.started,
      durationMs: now() - this.started,
    };
    if (reason === "cancelled") result.cancelReason = this.cancelReason;
    if (reason === "error") result.error = this.cancelReason;
    if (this.req.logprobs !== undefined) result.logprobs = this.logprobEntries;
    this.observer?.onFinish?.(result);
    this.resolveResult(result);
    this.wake();
  }

  private emit(e: GenerationEvent): void {
    this.events.push(e);
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
    try {
      for (;;) {
        if (this.events.length > 0) {
          yield this.events.shift()!;
          continue;
        }
        if (this.finished) return;
        await new Promise<void>((resolve) => {
          this.waiter = resolve;
        });
      }
    } finally {
      if (!this.finished) this.cancel("consumer stopped reading");
    }
  }
}

/**
 * The generation engine: KV-cached decoding with continuous batching. Requests wait in a bounded
 * queue, are prefilled one at a time (batch 1, so a prompt's numerics never depend on its
 * neighbours), then join the shared batch; every decode step feeds the last token of every active
 * sequence through the model once. Finished and cancelled sequences leave the batch (their cache rows
 * are removed) before the next step. Each sequence samples with its own seeded generator, so a seed
 * gives the same tokens whether the request runs alone or batched.
 */
export class GenerationEngine {
  readonly model: ServeCausalLM;
  readonly tokenizer: ServeTokenizer;
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly maxContext: number;
  readonly defaultMaxTokens: number;
  readonly maxTokensCap: number;
  private readonly observer: EngineObserver | undefined;
  private readonly rng: Random;
  private readonly queue: Generation[] = [];
  private active: Generation[] = [];
  private cache: ServeKVCache | null = null;
  private loop: Promise<void> | null = null;
  private closed = false;
  private avgStepMs = 5;
  private readonly prefillBatch: number;
  private readonly maxPrefillTokens: number;
  private readonly padId: number;

  constructor(opts: EngineOptions) {
    this.model = opts.model;
    this.tokenizer = opts.tokenizer;
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxQueue = opts.maxQueue ?? 64;
    this.maxContext = opts.maxContext ?? opts.model.maxPositions;
    this.defaultMaxTokens = opts.defaultMaxTokens ?? 256;
    this.maxTokensCap = opts.maxTokensCap ?? this.maxContext;
    assertArg(
      Number.isInteger(this.maxBatch) && this.maxBatch >= 1,
      "maxBatch",
      this.maxBatch,
      "an integer >= 1",
    );
    assertArg(
      Number.isInteger(this.maxQueue) && this.maxQueue >= 0,
      "maxQueue",
      this.maxQueue,
      "an integer >= 0",
    );
    assertArg(
      Number.isInteger(this.maxContext) && this.maxContext >= 2 && this.maxContext <= opts.model.maxPositions,
      "maxContext",
      this.maxContext,
      `an integer in [2, ${opts.model.maxPositions}] (the model's maxPositions)`,
    );
    this.observer = opts.observer;
    this.rng = new Random(opts.seed ?? Date.now());
    this.prefillBatch = opts.prefillBatch ?? 8;
    this.maxPrefillTokens = opts.maxPrefillTokens ?? 4096;
    assertArg(
      Number.isInteger(this.prefillBatch) && this.prefillBatch >= 1,
      "prefillBatch",
      this.prefillBatch,
      "an integer >= 1",
    );
    this.padId = opts.tokenizer.padTokenId ?? opts.tokenizer.eosTokenId ?? 0;
  }

  /** Sequences in the running batch. */
  get activeCount(): number {
    return this.active.length;
  }

  /** Requests waiting for a batch slot. */
  get queuedCount(): number {
    return this.queue.length;
  }

  /** Suggested seconds before retrying after LIMIT_EXCEEDED. */
  retryAfterSeconds(): number {
    const steps = (this.queue.length / this.maxBatch + 1) * this.defaultMaxTokens;
    return Math.max(1, Math.min(60, Math.ceil((steps * this.avgStepMs) / 1000)));
  }

  /** Validates a request and returns its effective max tokens (throws typed errors). */
  checkRequest(req: GenerateRequest): number {
    const n = req.promptIds.length;
    assertArg(n >= 1, "prompt", req.promptIds, "at least one token");
    const vocab = this.model.vocabSize;
    for (const id of req.promptIds) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          `prompt token ids must be integers in [0, ${vocab}); received ${id}`,
          { param: "prompt", value: id },
        );
      }
    }
    if (n >= this.maxContext) {
      throw new TypeformerError(
        "CONTEXT_LENGTH_EXCEEDED",
        `the prompt has ${n} tokens but the context length is ${this.maxContext} (at least one token must fit after the prompt)`,
        { param: "messages", promptTokens: n, maxContext: this.maxContext },
      );
    }
    if (req.maxTokens !== undefined) {
      assertArg(
        Number.isInteger(req.maxTokens) && req.maxTokens >= 1 && req.maxTokens <= this.maxTokensCap,
        "max_tokens",
        req.maxTokens,
        `an integer in [1, ${this.maxTokensCap}]`,
      );
    }
    if (req.logprobs !== undefined) {
      assertArg(
        Number.isInteger(req.logprobs) && req.logprobs >= 0 && req.logprobs <= 20,
        "logprobs",
        req.logprobs,
        "an integer in [0, 20]",
      );
    }
    validateSamplingParams(req.sampling ?? {}, vocab);
    return Math.min(req.maxTokens ?? this.defaultMaxTokens, this.maxContext - n);
  }

  /**
   * Queues a request and returns its running generation. Throws INVALID_ARGUMENT /
   * CONTEXT_LENGTH_EXCEEDED for bad requests, LIMIT_EXCEEDED (details.retryAfterSeconds) when the
   * queue is full, SHUTTING_DOWN after `close()`.
   */
  submit(req: GenerateRequest): Generation {
    if (this.closed) throw new TypeformerError("SHUTTING_DOWN", "the engine is shutting down", {});
    const maxTokens = this.checkRequest(req);
    if (this.active.length + this.queue.length >= this.maxBatch + this.maxQueue) {
      throw new TypeformerError(
        "LIMIT_EXCEEDED",
        `the server is busy: ${this.active.length} sequences running and ${this.queue.length} queued (limit ${this.maxQueue}); retry later`,
        { retryAfterSeconds: this.retryAfterSeconds(), queued: this.queue.length, maxQueue: this.maxQueue },
      );
    }
    const seed = req.sampling?.seed;
    const rng = seed !== undefined ? new Random(seed) : this.rng.fork("request");
    const gen = new Generation(req, this.tokenizer, maxTokens, rng, this.observer);
    this.queue.push(gen);
    this.kick();
    return gen;
  }

  /**
   * Decodes `tokens` greedy tokens on throwaway sequences (no observer hooks, no queue slot, the
   * engine's seed generator untouched) and resolves when done. A fresh process runs its first few
   * hundred decode steps up to ~3× slower per token while V8 optimises tf.js' dispatch code; calling
   * this before serving moves that cost out of the first requests. Default 384 tokens.
   */
  async warmup(tokens = 384): Promise<void> {
    if (this.closed) throw new TypeformerError("SHUTTING_DOWN", "the engine is shutting down", {});
    assertArg(Number.isInteger(tokens) && tokens >= 0, "tokens", tokens, "an integer >= 0");
    for (let left = tokens; left > 0; ) {
      const n = Math.min(left, this.maxContext - 1);
      const req: GenerateRequest = {
        promptIds: [this.padId],
        maxTokens: n,
        ignoreEos: true,
        sampling: { temperature: 0 },
      };
      const gen = new Generation(req, this.tokenizer, n, new Random(0), undefined);
      gen.warmup = true;
      this.queue.push(gen);
      this.kick();
      const r = await gen.result;
      if (r.finishReason === "error") throw r.error;
      if (r.finishReason === "cancelled") return;
      left -= n;
    }
  }

  /** Submits and waits for the whole result. */
  async generate(req: GenerateRequest): Promise<GenerationResult> {
    return this.submit(req).result;
  }

  /** Resolves when the scheduler is idle (nothing queued or running). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /**
   * Stops accepting requests. `cancel: true` cancels everything in flight; otherwise running and queued
   * requests finish first. Resolves when the scheduler is idle and every tensor it held is released.
   */
  async close(opts: { cancel?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (opts.cancel) {
      for (const g of [...this.queue, ...this.active]) g.cancel("server shutting down");
    }
    await this.idle();
  }

  private kick(): void {
    if (this.loop) return;
    this.loop = this.run()
      .catch((e) => {
        // never leave a rejected loop behind (an unhandled rejection would end the process)
        this.fail([...this.active, ...this.queue.splice(0)], e);
        this.active = [];
        this.releaseCache();
      })
      .finally(() => {
        this.loop = null;
        if (this.queue.length > 0 || this.active.length > 0) this.kick();
      });
  }

  private async run(): Promise<void> {
    await yieldToLoop(); // requests submitted in the same tick are prefilled together
    while (this.queue.length > 0 || this.active.length > 0) {
      this.removeFinished();
      while (this.queue.length > 0 && this.active.length < this.maxBatch) {
        const group: Generation[] = [];
        let longest = 0;
        while (this.queue.length > 0 && this.active.length + group.length < this.maxBatch) {
          const g = this.queue[0];
          if (g.cancelled) {
            this.queue.shift();
            g.finish("cancelled");
            continue;
          }
          const t = Math.max(longest, g.promptIds.length);
          if (
            group.length > 0 &&
            (group.length >= this.prefillBatch || t * (group.length + 1) > this.maxPrefillTokens)
          )
            break;
          longest = t;
          group.push(this.queue.shift()!);
        }
        if (group.length > 0) this.prefill(group);
        await yieldToLoop();
      }
      this.removeFinished();
      if (this.active.length > 0) this.decodeStep();
      await yieldToLoop();
    }
    this.releaseCache();
  }

  /** Removes cancelled/finished sequences from the batch and their rows from the cache. */
  private removeFinished(): void {
    if (this.queue.some((g) => g.cancelled)) {
      for (const g of this.queue) if (g.cancelled) g.finish("cancelled");
      const left = this.queue.filter((g) => !g.finished);
      this.queue.length = 0;
      this.queue.push(...left);
    }
    const rows: number[] = [];
    for (let i = 0; i < this.active.length; i++) {
      const g = this.active[i];
      if (g.cancelled && !g.finished) g.finish("cancelled");
      if (g.finished) rows.push(i);
    }
    if (rows.length === 0) return;
    this.active = this.active.filter((g) => !g.finished);
    if (this.active.length === 0) this.releaseCache();
    else this.cache!.removeRows(rows);
  }

  private releaseCache(): void {
    this.cache?.dispose();
    this.cache = null;
  }

  private lastRow(logits: tf.Tensor3D): Float32Array {
    const [b, t, v] = logits.shape;
    // decode steps (t = 1): the logits are the rows already; read them without a slice kernel
    if (t === 1) return logits.dataSync() as Float32Array;
    const row = tf.tidy(() => logits.slice([0, t - 1, 0], [b, 1, v]).reshape([b, v]));
    try {
      return row.dataSync() as Float32Array;
    } finally {
      row.dispose();
    }
  }

  private newCache(batch: number): ServeKVCache {
    const c = this.model.createCache(batch, this.maxContext) as Partial<ServeKVCache>;
    if (
      typeof c.removeRows !== "function" ||
      typeof c.concatRows !== "function" ||
      typeof c.dispose !== "function"
    ) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        "the model's createCache() must return a cache with removeRows/concatRows/dispose (continuous batching)",
        { modelType: this.model.modelType },
      );
    }
    return c as ServeKVCache;
  }

  /**
   * Prefills a group of prompts in one forward pass (left-padded, with an attention mask when they
   * differ in length), samples each one's first token, and moves the survivors into the batch.
   */
  private prefill(group: Generation[]): void {
    const n = group.length;
    const T = Math.max(...group.map((g) => g.promptIds.length));
    let cache: ServeKVCache;
    try {
      cache = this.newCache(n);
    } catch (e) {
      this.fail(group, e);
      return;
    }
    let rows: Float32Array;
    try {
      const flat = new Int32Array(n * T).fill(this.padId);
      const mask = new Float32Array(n * T);
      group.forEach((g, b) => {
        const off = b * T + (T - g.promptIds.length);
        flat.set(g.promptIds, off);
        mask.fill(1, off, (b + 1) * T);
      });
      const ragged = group.some((g) => g.promptIds.length !== T);
      const ids = tf.tensor2d(flat, [n, T], "int32");
      const am = ragged ? tf.tensor2d(mask, [n, T]) : undefined;
      try {
        const out = this.model.forward(ids, am ? { cache, attentionMask: am } : { cache });
        try {
          rows = this.lastRow(out.logits);
        } finally {
          tf.dispose([out.logits, ...(out.attentions ?? [])]);
        }
      } finally {
        ids.dispose();
        am?.dispose();
      }
    } catch (e) {
      cache.dispose();
      this.fail(group, e);
      return;
    }
    const v = rows.length / n;
    const drop: number[] = [];
    group.forEach((g, b) => {
      const done = g.accept(g.sampler.sample(rows.subarray(b * v, (b + 1) * v), this.logprobsOf(g)));
      if (done || g.cancelled) {
        if (!g.finished) g.finish("cancelled");
        drop.push(b);
      }
    });
    if (drop.length === n) {
      cache.dispose();
      return;
    }
    try {
      if (drop.length > 0) cache.removeRows(drop);
      if (this.cache === null) {
        this.cache = cache;
      } else {
        this.cache.concatRows(cache);
        cache.dispose();
      }
    } catch (e) {
      cache.dispose();
      this.fail(
        group.filter((g) => !g.finished),
        e,
      );
      return;
    }
    for (const g of group) if (!g.finished) this.active.push(g);
  }

  private logprobsOf(g: Generation): number | undefined {
    return g.req.logprobs;
  }

  private decodeStep(): void {
    const batch = this.active;
    const b = batch.length;
    const t0 = now();
    let rows: Float32Array;
    try {
      const ids = tf.tensor2d(
        batch.map((g) => g.lastToken),
        [b, 1],
        "int32",
      );
      try {
        const out = this.model.forward(ids, { cache: this.cache! });
        try {
          rows = this.lastRow(out.logits);
        } finally {
          tf.dispose([out.logits, ...(out.attentions ?? [])]);
        }
      } finally {
        ids.dispose();
      }
    } catch (e) {
      this.fail(batch, e);
      this.active = [];
      this.releaseCache();
      return;
    }
    const v = rows.length / b;
    for (let i = 0; i < b; i++) {
      const g = batch[i];
      if (g.cancelled) continue; // removed before the next step
      g.accept(g.sampler.sample(rows.subarray(i * v, (i + 1) * v), this.logprobsOf(g)));
    }
    const ms = now() - t0;
    this.avgStepMs = 0.9 * this.avgStepMs + 0.1 * ms;
    if (!batch.every((g) => g.warmup)) this.observer?.onStep?.(b, ms);
    this.removeFinished();
  }

  private fail(gens: Generation[], e: unknown): void {
    for (const g of gens) {
      g.cancelReason = e;
      g.finish("error");
    }
  }
}
