import { writeFile } from "node:fs/promises";
import path from "node:path";

/** A minimal char-level tokenizer for tests (the real one lives in @typeformer/tokenizer). */
export class TestCharTokenizer {
  readonly chars: string[];
  private readonly index: Map<string, number>;
  constructor(text: string) {
    this.chars = [...new Set(text)].sort();
    this.index = new Map(this.chars.map((c, i) => [c, i]));
  }
  get vocabSize(): number {
    return this.chars.length;
  }
  encode(text: string): number[] {
    return [...text].map((c) => this.index.get(c) ?? 0);
  }
  decode(ids: number[]): string {
    return ids.map((i) => this.chars[i] ?? "?").join("");
  }
  async save(dir: string): Promise<void> {
    await writeFile(path.join(dir, "tokenizer.json"), JSON.stringify({ chars: this.chars }));
  }
}

export const RHYME = `Mary had a little lamb, its fleece was white as snow;
and everywhere that Mary went the lamb was sure to go.
It followed her to school one day, which was against the rule;
it made the children laugh and play to see a lamb at school.
`.repeat(6);
