import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import {
  type BatchEncodeOptions,
  type BatchEncoding,
  concatParts,
  encodeBatchForModel,
  offsetsFromByteLengths,
  type Parts,
} from "./batch.js";
import { TypeformerError } from "./errors.js";
import type {
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  StreamDecoder,
  StreamDecoderOptions,
  Tokenizer,
} from "./types.js";

/**
 * The built-in chat template of Typeformer chat models. Each message is
 * `<|role|>\n{content}<|end|>\n`; a generation prompt is `<|assistant|>\n`. The special tokens are
 * `<|system|>`, `<|user|>`, `<|assistant|>` and `<|end|>` (`<|end|>` is the end-of-turn token).
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

/** The special tokens used by DEFAULT_CHAT_TEMPLATE. */
export const CHAT_SPECIAL_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"] as const;

const templateCache = new Map<string, Template>();

export function renderChatTemplate(
  template: string,
  messages: ChatMessage[],
  vars: Record<string, unknown>,
): string {
  let t = templateCache.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new TypeformerError(
        "TOKENIZER_INVALID",
        `chat_template does not parse: ${(e as Error).message}`,
        {
          field: "chat_template",
        },
        { cause: e },
      );
    }
    templateCache.set(template, t);
  }
  return t.render({ messages, ...vars });
}

export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Shared behaviour: batches, counting, streaming decode, chat templates, saving. */
export abstract class BaseTokenizer implements Tokenizer {
  abstract readonly vocabSize: number;
  abstract readonly specialTokens: Record<string, number>;
  eosTokenId?: number;
  bosTokenId?: number;
  padTokenId?: number;
  unkTokenId?: number;
  /** Jinja chat template (tokenizer_config.json's chat_template); the built-in one when unset. */
  chatTemplate?: string;
  /** Extra tokenizer_config.json fields kept for saving. */
  config: Record<string, unknown> = {};

  abstract encode(text: string, opts?: EncodeOptions): number[];
  abstract decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  abstract tokenToId(token: string): number | undefined;
  abstract idToToken(id: number): string | undefined;
  abstract toJSON(): object;
  /** UTF-8 bytes of one id for streaming decode; null for an id that decodes to nothing. */
  protected abstract idBytes(id: number, skipSpecial: boolean): Uint8Array | null;

  encodeBatch(texts: string[], opts?: EncodeOptions): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  countTokens(text: string, opts?: EncodeOptions): number {
    return this.encode(text, opts).length;
  }

  /** One sequence without special tokens, with offsets (used by batch encoding). */
  encodeParts(text: string, allowedSpecial?: "all" | Set<string>): Parts {
    const ids = this.encode(text, { addSpecialTokens: false, allowedSpecial, disallowedSpecial: new Set() });
    const specialIds = new Set(Object.values(this.specialTokens));
    const lens = ids.map((id) => this.idBytes(id, false)?.length ?? 0);
    const offsets = offsetsFromByteLengths(text, lens);
    const special = ids.map((id) => specialIds.has(id));
    return {
      ids,
      typeIds: ids.map(() => 0),
      offsets,
      special,
    };
  }

  /** Adds the special tokens of the post-processor (none by default) and joins pairs. */
  postProcessParts(a: Parts, b: Parts | null, _addSpecialTokens: boolean): Parts & { sequence: number[] } {
    return concatParts(a, b);
  }

  /**
   * Encodes a batch for a model: optional sentence pairs, truncation to maxLength, padding
   * (longest or max_length, left or right), attention masks, token type ids and offsets.
   */
  encodeBatchForModel(texts: string[], opts?: BatchEncodeOptions): BatchEncoding {
    return encodeBatchForModel(this, texts, opts);
  }

  createStreamDecoder(opts: StreamDecoderOptions = {}): StreamDecoder {
    const dec = new TextDecoder("utf-8", { ignoreBOM: true });
    const skip = opts.skipSpecialTokens ?? false;
    return {
      push: (id: number) => {
        const b = this.idBytes(id, skip);
        return b ? dec.decode(b, { stream: true }) : "";
      },
      flush: () => dec.decode(),
    };
  }

  protected tokenString(id: number | undefined): string | undefined {
    return id === undefined ? undefined : this.idToToken(id);
  }

  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const template = opts.chatTemplate ?? this.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
    return renderChatTemplate(template, messages, {
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: this.tokenString(this.bosTokenId) ?? "",
      eos_token: this.tokenString(this.eosTokenId) ?? "",
      pad_token: this.tokenString(this.padTokenId) ?? "",
      unk_token: this.tokenString(this.unkTokenId) ?? "",
      ...opts.extra,
    });
  }

  /** tokenizer_config.json contents. */
  tokenizerConfig(): Record<string, unknown> {
    const cfg: Record<string, unknown> = { ...this.config };
    const put = (k: string, id: number | undefined) => {
      const s = this.tokenString(id);
      if (s !== undefined) cfg[k] = s;
    };
    put("bos_token", this.bosTokenId);
    put("eos_token", this.eosTokenId);
    put("pad_token", this.padTokenId);
    put("unk_token", this.unkTokenId);
    cfg.chat_template = this.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
    cfg.tokenizer_class ??= "PreTrainedTokenizerFast";
    return cfg;
  }

  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, "tokenizer.json"), JSON.stringify(this.toJSON()));
    await writeFileAtomic(
      join(dir, "tokenizer_config.json"),
      `${JSON.stringify(this.tokenizerConfig(), null, 2)}\n`,
    );
  }
}
