import { describe, expect, it } from "vitest";
import { mobyDick } from "./__fixtures__/corpora.js";
import { tortureStrings } from "./__fixtures__/torture.js";
import {
  CL100K_PATTERN,
  GPT2_PATTERN,
  knownScanner,
  O200K_PATTERN,
  scannerFor,
  splitPieces,
  translateRegex,
} from "./pretokenize.js";

// Characters of every class the patterns distinguish (Lu, Ll, Lt, Lm, Lo, M, N, \s, other, astral,
// lone surrogates, the contraction letters, \r \n /).
const ALPHABET = [
  "A",
  "a",
  "Z",
  "z",
  "ǅ",
  "ʰ",
  "中",
  "\u0301",
  "\u0903",
  "1",
  "9",
  "²",
  "٣",
  " ",
  " ",
  " ",
  "\t",
  "\n",
  "\r",
  "\u00a0",
  "\u2028",
  "'",
  "'",
  "s",
  "S",
  "r",
  "e",
  "E",
  "l",
  "L",
  "v",
  "t",
  "m",
  "d",
  "D",
  "/",
  "!",
  ".",
  "😀",
  "𝐀",
  "𝐚",
  "𝟏",
  "\ud800",
  "\udc00",
  "\0",
  "\u200d",
  "\ufeff",
  "\u0085",
  "\x1c",
  "ſ",
  "é",
  "É",
];

const patterns = { gpt2: GPT2_PATTERN, cl100k: CL100K_PATTERN, o200k: O200K_PATTERN };

describe("hand-written pre-tokenisers equal the JS regexes", () => {
  for (const [name, pat] of Object.entries(patterns)) {
    it(`${name}: random strings over every character class`, () => {
      const scan = scannerFor(pat);
      const re = new RegExp(pat, "gu");
      let seed = 7;
      const rnd = () => {
        seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
        return seed / 0x80000000;
      };
      for (let it = 0; it < 30000; it++) {
        let s = "";
        const len = Math.floor(rnd() * 16);
        for (let k = 0; k < len; k++) s += ALPHABET[Math.floor(rnd() * ALPHABET.length)];
        const ours = splitPieces(s, scan);
        const ref = [...s.matchAll(re)].map((m) => m[0]);
        if (ours.join("\u0001") !== ref.join("\u0001")) expect({ s, ours }).toEqual({ s, ours: ref });
      }
    });
    it(`${name}: torture set and Moby Dick`, () => {
      const scan = scannerFor(pat);
      const re = new RegExp(pat, "gu");
      for (const s of [...tortureStrings(), mobyDick().slice(0, 300_000)]) {
        expect(splitPieces(s, scan)).toEqual([...s.matchAll(re)].map((m) => m[0]));
      }
    });
  }
});

describe("Rust/Oniguruma patterns (tiktoken originals, tokenizer.json) translate to JS", () => {
  // tiktoken's own spellings (possessive quantifiers, scoped (?i:…)) and Llama 3's tokenizer.json one
  const TIKTOKEN_CL100K =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
  const LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  it.each([
    ["tiktoken cl100k", TIKTOKEN_CL100K, CL100K_PATTERN],
    ["Llama 3", LLAMA3, CL100K_PATTERN],
  ])("%s splits like the hand-written scanner", (_name, original, js) => {
    expect(knownScanner(original)).not.toBeNull();
    const translated = new RegExp(translateRegex(original), "gu");
    const scan = scannerFor(js);
    for (const s of [...tortureStrings(), "I'M HE'S it'S We'Re 'LL 'Ll 'lL", mobyDick().slice(0, 50_000)]) {
      expect([...s.matchAll(translated)].map((m) => m[0])).toEqual(splitPieces(s, scan));
    }
  });

  it("keeps escapes and classes intact", () => {
    expect(translateRegex("a\\++b")).toBe("a\\++b"); // escaped "+" then a quantifier: unchanged
    expect(translateRegex("a\\+++b")).toBe("a\\++b"); // possessive on an escaped "+"
    expect(translateRegex("\\p{N}{1,3}+x")).toBe("\\p{N}{1,3}x");
    expect(translateRegex("(?i:[a-c]x)")).toBe("(?:[a-cA-C][xX])");
    expect(translateRegex("[^\\s]++")).toBe("[^\\s]+");
  });
});
