import { describe, expect, it } from "vitest";
import { mobyDick } from "./__fixtures__/corpora.js";
import { tortureStrings } from "./__fixtures__/torture.js";
import { CL100K_PATTERN, GPT2_PATTERN, O200K_PATTERN, scannerFor, splitPieces } from "./pretokenize.js";

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
