// biome-ignore-all lint/suspicious/noConsole: a script that reports progress
/**
 * Golden ids for the tiktoken encodings, produced by js-tiktoken (the reference) on the real corpora:
 * we store the count and SHA-256 of the id sequence (int32 little-endian), so tests check full-corpus
 * equality without a 10 MB fixture. Run: pnpm tsx packages/tokenizer/scripts/make-golden.ts
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { getEncoding } from "js-tiktoken";
import { mobyDick, sotu } from "../src/__fixtures__/corpora.js";

export function idsDigest(ids: ArrayLike<number>): string {
  const a = Int32Array.from(ids as number[]);
  return createHash("sha256").update(new Uint8Array(a.buffer)).digest("hex");
}

const corpora = { mobyDick: mobyDick(), sotu: sotu() };
const out: Record<string, Record<string, { count: number; sha256: string }>> = {};
for (const name of ["gpt2", "r50k_base", "cl100k_base", "o200k_base"] as const) {
  const enc = getEncoding(name);
  out[name] = {};
  for (const [cname, text] of Object.entries(corpora)) {
    const t0 = performance.now();
    const ids = enc.encode(text, [], []);
    out[name][cname] = { count: ids.length, sha256: idsDigest(ids) };
    console.log(name, cname, ids.length, `${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}
writeFileSync(
  join(import.meta.dirname, "../src/__fixtures__/tiktoken-golden.json"),
  `${JSON.stringify({ reference: "js-tiktoken@1.0.21", corpora: out }, null, 2)}\n`,
);
