import { closeSync, openSync, readSync } from "node:fs";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { Random, type RandomState, TypeformerError } from "@typeformer/core";
import { type CorpusSpec, readCorpus } from "./corpora.js";
import type { TokenBatch } from "./objectives.js";
import type { BatchSource, EvalSource } from "./types.js";

/** What the data pipeline needs of a tokenizer (`@typeformer/tokenizer`'s Tokenizer satisfies it). */
export interface TextTokenizer {
  readonly vocabSize: number;
  encode(text: string): number[];
  decode(ids: number[]): string;
  readonly eosTokenId?: number;
  save?(dir: string): Promise<void>;
}

export type TokenDtype = "uint16" | "uint32";

export interface ShardInfo {
  file: string;
  tokens: number;
}

/** `manifest.json` of a tokenised dataset folder. */
export interface DatasetManifest {
  format: "typeformer-tokens";
  version: 1;
  dtype: TokenDtype;
  vocabSize: number;
  valFraction: number;
  documents: number;
  sources: string[];
  splits: { train: { tokens: number; shards: ShardInfo[] }; val: { tokens: number; shards: ShardInfo[] } };
  /** Whether the tokenizer was saved beside the shards (tokenizer.json). */
  tokenizer: boolean;
}

export interface PrepareOptions {
  /** Fraction of every document's tokens (its tail) held out for validation (default 0.1). */
  valFraction?: number;
  /** Token storage (default: uint16 when the vocabulary fits, else uint32). */
  dtype?: TokenDtype;
  /** Tokens per shard file (default 2^26). */
  shardTokens?: number;
  /** Append the tokenizer's EOS between documents (default true when it has one). */
  separateDocuments?: boolean;
  onProgress?(p: { documents: number; tokens: number; source: string }): void;
  /** Files larger than this are streamed in chunks cut at newlines (default 32 MiB). */
  chunkBytes?: number;
}

class ShardWriter {
  readonly shards: ShardInfo[] = [];
  private buf: Uint16Array | Uint32Array;
  private fill = 0;
  private inShard = 0;
  private fh: Awaited<ReturnType<typeof open>> | null = null;
  total = 0;

  constructor(
    private readonly dir: string,
    private readonly prefix: string,
    dtype: TokenDtype,
    private readonly shardTokens: number,
  ) {
    this.buf = dtype === "uint16" ? new Uint16Array(1 << 20) : new Uint32Array(1 << 20);
  }

  async push(ids: ArrayLike<number>): Promise<void> {
    for (let i = 0; i < ids.length; i++) {
      this.buf[this.fill++] = ids[i];
      this.inShard++;
      this.total++;
      if (this.fill === this.buf.length || this.inShard === this.shardTokens) await this.flush();
      if (this.inShard === this.shardTokens) await this.closeShard();
    }
  }

  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    if (!this.fh) {
      const file = `${this.prefix}-${String(this.shards.length).padStart(5, "0")}.bin`;
      this.shards.push({ file, tokens: 0 });
      this.fh = await open(path.join(this.dir, file), "w");
    }
    const bytes = new Uint8Array(this.buf.buffer, 0, this.fill * this.buf.BYTES_PER_ELEMENT);
    await this.fh.write(bytes);
    this.shards[this.shards.length - 1].tokens += this.fill;
    this.fill = 0;
  }

  private async closeShard(): Promise<void> {
    await this.flush();
    await this.fh?.close();
    this.fh = null;
    this.inShard = 0;
  }

  async close(): Promise<void> {
    await this.closeShard();
  }
}

/**
 * Tokenises a corpus once into binary token shards (`train-00000.bin`, `val-00000.bin`, little-endian
 * uint16/uint32) plus `manifest.json` (and `tokenizer.json` when the tokenizer can save itself). Each
 * document's first (1 − valFraction) of tokens go to train, the rest to validation: for a single text
 * this is nanoGPT's first 90% / last 10% split. Documents stream through; memory holds one document.
 * The folder is built under a temporary name and renamed when complete.
 */
export async function prepareDataset(
  corpus: CorpusSpec | CorpusSpec[],
  tokenizer: TextTokenizer,
  outDir: string,
  opts: PrepareOptions = {},
): Promise<DatasetManifest> {
  const valFraction = opts.valFraction ?? 0.1;
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new TypeformerError("INVALID_CONFIG", `valFraction must be in [0, 1); received ${valFraction}`, {
      valFraction,
    });
  }
  const dtype: TokenDtype = opts.dtype ?? (tokenizer.vocabSize <= 65536 ? "uint16" : "uint32");
  if (dtype === "uint16" && tokenizer.vocabSize > 65536) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `dtype uint16 cannot hold a vocabulary of ${tokenizer.vocabSize}; use uint32`,
      { dtype, vocabSize: tokenizer.vocabSize },
    );
  }
  const tmp = `${outDir.replace(/[/\\]$/, "")}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const shardTokens = opts.shardTokens ?? 1 << 26;
  const train = new ShardWriter(tmp, "train", dtype, shardTokens);
  const val = new ShardWriter(tmp, "val", dtype, shardTokens);
  const eos = opts.separateDocuments === false ? undefined : tokenizer.eosTokenId;
  const sources: string[] = [];
  let documents = 0;
  try {
    for (const spec of Array.isArray(corpus) ? corpus : [corpus]) {
      for await (const doc of readCorpus(spec, { chunkBytes: opts.chunkBytes })) {
        const ids = tokenizer.encode(doc.text);
        if (eos !== undefined) ids.push(eos);
        for (const id of ids) {
          if (!(id >= 0 && id < tokenizer.vocabSize)) {
            throw new TypeformerError(
              "DATA_INVALID",
              `tokenizer produced id ${id} outside its vocabulary of ${tokenizer.vocabSize} (${doc.source})`,
              { id, source: doc.source },
            );
          }
        }
        const cut = Math.round(ids.length * (1 - valFraction));
        await train.push(ids.slice(0, cut));
        await val.push(ids.slice(cut));
        documents++;
        sources.push(doc.source);
        opts.onProgress?.({ documents, tokens: train.total + val.total, source: doc.source });
      }
    }
    await train.close();
    await val.close();
    if (documents === 0 || train.total === 0) {
      throw new TypeformerError("DATA_INVALID", `corpus ${JSON.stringify(corpus)} holds no text`, { corpus });
    }
    let hasTokenizer = false;
    if (tokenizer.save) {
      await tokenizer.save(tmp);
      hasTokenizer = true;
    }
    const manifest: DatasetManifest = {
      format: "typeformer-tokens",
      version: 1,
      dtype,
      vocabSize: tokenizer.vocabSize,
      valFraction,
      documents,
      sources:
        sources.length > 1000 ? [...sources.slice(0, 1000), `… ${sources.length - 1000} more`] : sources,
      splits: {
        train: { tokens: train.total, shards: train.shards },
        val: { tokens: val.total, shards: val.shards },
      },
      tokenizer: hasTokenizer,
    };
    const fh = await open(path.join(tmp, "manifest.json"), "w");
    await fh.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
    await fh.close();
    await rm(outDir, { recursive: true, force: true });
    await rename(tmp, outDir);
    return manifest;
  } catch (e) {
    await train.close().catch(() => {});
    await val.close().catch(() => {});
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Reads and checks `manifest.json`. */
export async function readManifest(dir: string): Promise<DatasetManifest> {
  let m: DatasetManifest;
  try {
    m = JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8"));
  } catch (e) {
    throw new TypeformerError("NOT_FOUND", `${dir} has no readable manifest.json: ${(e as Error).message}`, {
      path: dir,
    });
  }
  if (m.format !== "typeformer-tokens") {
    throw new TypeformerError("DATA_INVALID", `${dir}/manifest.json is not a Typeformer token dataset`, {
      path: dir,
    });
  }
  return m;
}

export interface SamplerOptions {
  batchSize: number;
  /** Tokens per window (context + 1 for next-token prediction). */
  windowLength: number;
  seed?: number;
}

/**
 * Random windows read from token shards with positioned reads (the shards are never loaded whole).
 * Windows never straddle shards; a start position is uniform over every valid start, like nanoGPT's
 * `get_batch`. Its position is the generator state, saved and restored for exact resume.
 */
export class TokenWindowSampler implements BatchSource<TokenBatch>, EvalSource<TokenBatch> {
  readonly batchSize: number;
  readonly windowLength: number;
  readonly totalTokens: number;
  private readonly fds: number[];
  private readonly starts: number[]; // valid start count per shard
  private readonly totalStarts: number;
  private readonly bytes: number;
  private rng: Random;
  private readonly seed: number;
  private readonly scratch: Buffer;

  constructor(
    readonly dir: string,
    readonly manifest: DatasetManifest,
    readonly split: "train" | "val",
    opts: SamplerOptions,
  ) {
    this.batchSize = opts.batchSize;
    this.windowLength = opts.windowLength;
    if (!(Number.isInteger(this.batchSize) && this.batchSize >= 1)) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `batchSize must be an integer >= 1; received ${opts.batchSize}`,
        {
          batchSize: opts.batchSize,
        },
      );
    }
    this.seed = opts.seed ?? 0;
    this.rng = new Random(this.seed);
    this.bytes = manifest.dtype === "uint16" ? 2 : 4;
    const shards = manifest.splits[split].shards;
    this.totalTokens = manifest.splits[split].tokens;
    this.starts = shards.map((s) => Math.max(0, s.tokens - this.windowLength + 1));
    this.totalStarts = this.starts.reduce((a, b) => a + b, 0);
    if (this.totalStarts === 0) {
      throw new TypeformerError(
        "DATA_INVALID",
        `the ${split} split holds ${this.totalTokens} tokens, fewer than one window of ${this.windowLength}; use a larger corpus or a shorter context`,
        { split, tokens: this.totalTokens, windowLength: this.windowLength },
      );
    }
    this.fds = shards.map((s) => openSync(path.join(dir, s.file), "r"));
    this.scratch = Buffer.alloc(this.windowLength * this.bytes);
  }

  /** Opens `dir`'s manifest and builds a sampler over one split. */
  static async open(dir: string, split: "train" | "val", opts: SamplerOptions): Promise<TokenWindowSampler> {
    return new TokenWindowSampler(dir, await readManifest(dir), split, opts);
  }

  private readWindow(rng: Random, out: Int32Array, at: number): void {
    let k = rng.int(this.totalStarts);
    let shard = 0;
    while (k >= this.starts[shard]) k -= this.starts[shard++];
    const n = readSync(this.fds[shard], this.scratch, 0, this.scratch.length, k * this.bytes);
    if (n !== this.scratch.length) {
      throw new TypeformerError("IO_ERROR", `short read from shard ${shard} of ${this.dir}`, {
        shard,
        read: n,
      });
    }
    const view =
      this.bytes === 2
        ? new Uint16Array(this.scratch.buffer, this.scratch.byteOffset, this.windowLength)
        : new Uint32Array(this.scratch.buffer, this.scratch.byteOffset, this.windowLength);
    out.set(view, at);
  }

  private batchFrom(rng: Random): TokenBatch {
    const tokens = new Int32Array(this.batchSize * this.windowLength);
    for (let b = 0; b < this.batchSize; b++) this.readWindow(rng, tokens, b * this.windowLength);
    return { tokens, batchSize: this.batchSize, length: this.windowLength };
  }

  next(): TokenBatch {
    return this.batchFrom(this.rng);
  }

  /** The same `count` batches every time (drawn from a generator seeded by the sampler's seed). */
  *batches(count: number): Iterable<TokenBatch> {
    const rng = new Random(`eval-${this.seed}`);
    for (let i = 0; i < count; i++) yield this.batchFrom(rng);
  }

  getState(): RandomState {
    return this.rng.getState();
  }

  setState(state: unknown): void {
    this.rng.setState(state as RandomState);
  }

  close(): void {
    for (const fd of this.fds) closeSync(fd);
    this.fds.length = 0;
  }
}
