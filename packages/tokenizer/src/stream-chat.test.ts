import { describe, expect, it } from "vitest";
import { tortureStrings } from "./__fixtures__/torture.js";
import { CHAT_SPECIAL_TOKENS, DEFAULT_CHAT_TEMPLATE } from "./base.js";
import { CharTokenizer } from "./char.js";
import { TypeformerError } from "./errors.js";
import { getEncoding } from "./tiktoken.js";
import { trainBpe, trainWordPiece } from "./train.js";

function isWellFormed(s: string): boolean {
  return !/\p{Cs}/u.test(s);
}

describe("streaming decode", () => {
  it("emits exactly the text, never a broken UTF-8 sequence, for every torture string", () => {
    for (const name of ["gpt2", "cl100k_base", "o200k_base"]) {
      const tok = getEncoding(name);
      for (const s of tortureStrings()) {
        const ids = tok.encode(s, { disallowedSpecial: new Set() });
        const dec = tok.createStreamDecoder();
        let out = "";
        for (const id of ids) {
          const piece = dec.push(id);
          // no replacement characters appear mid-stream unless the input had them
          expect(isWellFormed(piece)).toBe(true);
          out += piece;
        }
        out += dec.flush();
        expect(out).toBe(tok.decode(ids));
      }
    }
  });

  it("holds back a partial emoji until its last byte arrives", () => {
    const tok = getEncoding("gpt2");
    const ids = tok.encode("😀");
    expect(ids.length).toBeGreaterThan(1);
    const dec = tok.createStreamDecoder();
    const parts = ids.map((id) => dec.push(id));
    expect(parts.slice(0, -1).join("")).toBe("");
    expect(parts.at(-1)).toBe("😀");
    expect(dec.flush()).toBe("");
  });

  it("skips special tokens when asked, and works for WordPiece and char tokenizers", async () => {
    const tok = getEncoding("gpt2");
    const ids = tok.encode("a<|endoftext|>b", { allowedSpecial: "all" });
    const dec = tok.createStreamDecoder({ skipSpecialTokens: true });
    expect(ids.map((id) => dec.push(id)).join("") + dec.flush()).toBe("ab");
    const wp = await trainWordPiece("the theory of the thing there then", { vocabSize: 60, minFrequency: 1 });
    const wids = wp.encode("the theory", { addSpecialTokens: false });
    const wdec = wp.createStreamDecoder();
    expect(wids.map((id) => wdec.push(id)).join("") + wdec.flush()).toBe(wp.decode(wids));
    const ch = CharTokenizer.fromText("héllo");
    const cdec = ch.createStreamDecoder();
    expect(
      ch
        .encode("héllo")
        .map((id) => cdec.push(id))
        .join(""),
    ).toBe("héllo");
  });
});

describe("chat templates", () => {
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi!" },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Bye?" },
  ];

  it("the built-in template renders <|role|>\\n…<|end|>\\n turns and a generation prompt", () => {
    const tok = getEncoding("gpt2");
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(
      "<|system|>\nBe brief.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nBye?<|end|>\n<|assistant|>\n",
    );
    expect(tok.applyChatTemplate(messages.slice(0, 1))).toBe("<|system|>\nBe brief.<|end|>\n");
    expect(CHAT_SPECIAL_TOKENS).toEqual(["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]);
  });

  it("a trained tokenizer with the chat tokens encodes the rendered chat into single special ids", async () => {
    const tok = await trainBpe("hello there, how are you? fine thanks. ".repeat(20), {
      vocabSize: 300,
      specialTokens: ["<|endoftext|>", ...CHAT_SPECIAL_TOKENS],
    });
    const text = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    const ids = tok.encode(text);
    expect(ids.filter((id) => id === tok.tokenToId("<|user|>")).length).toBe(2);
    expect(ids.at(-2)).toBe(tok.tokenToId("<|assistant|>"));
    expect(tok.decode(ids)).toBe(text);
    expect(tok.tokenizerConfig().chat_template).toBe(DEFAULT_CHAT_TEMPLATE);
  });

  it("renders a tokenizer_config.json chat_template with @huggingface/jinja (ChatML, Llama-style)", () => {
    const tok = CharTokenizer.fromText("abc", { bosToken: "<s>", eosToken: "</s>" });
    tok.chatTemplate =
      "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}";
    expect(tok.applyChatTemplate(messages.slice(1, 3))).toBe("<s>[INST] Hi! [/INST] Hello.</s>");
    const chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    expect(tok.applyChatTemplate([messages[1]], { chatTemplate: chatml, addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(() => tok.applyChatTemplate(messages, { chatTemplate: "{% for %}" })).toThrow(TypeformerError);
  });
});
