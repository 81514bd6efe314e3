/**
 * Fine-tuning data: JSONL files whose lines are one of
 *   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}   chat
 *   {"prompt": "...", "completion": "..."}                                        prompt/completion
 *   {"text": "...", "label": "spam" | 1}                                          classification
 *   {"text": "..."}                                                               continued pretraining
 *   {"source": "...", "target": "..."}                                            seq2seq
 * A malformed line is a typed error naming the file, the line number and the problem, unless
 * `skipBadLines` is set; then the bad lines are returned (and counted) instead.
 */
import { readFile } from "node:fs/promises";
import { TypeformerError } from "@typeformer/core";
import { z } from "zod";

export type ChatRole = "system" | "user" | "assistant";

export type Example =
  | { kind: "chat"; messages: { role: ChatRole; content: string }[] }
  | { kind: "completion"; prompt: string; completion: string }
  | { kind: "classification"; text: string; label: string }
  | { kind: "text"; text: string }
  | { kind: "seq2seq"; source: string; target: string };

export type ExampleKind = Example["kind"];

const message = z.object({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string(),
});

const schemas = {
  chat: z.object({ messages: z.array(message).min(1) }).passthrough(),
  completion: z.object({ prompt: z.string(), completion: z.string().min(1) }).passthrough(),
  classification: z
    .object({ text: z.string().min(1), label: z.union([z.string().min(1), z.number().int()]) })
    .passthrough(),
  text: z.object({ text: z.string().min(1) }).passthrough(),
  seq2seq: z.object({ source: z.string().min(1), target: z.string().min(1) }).passthrough(),
};

/** Which kind a JSON object is, by its keys (null when none fits). */
export function detectKind(o: Record<string, unknown>): ExampleKind | null {
  if ("messages" in o) return "chat";
  if ("prompt" in o || "completion" in o) return "completion";
  if ("source" in o || "target" in o) return "seq2seq";
  if ("label" in o) return "classification";
  if ("text" in o) return "text";
  return null;
}

export interface BadLine {
  line: number;
  problem: string;
}

export interface ReadExamplesOptions {
  /** Only these kinds are accepted (others are bad lines), e.g. ["chat", "completion"] for chat SFT. */
  kinds?: ExampleKind[];
  /** Skip malformed lines instead of throwing; they are returned in `skipped`. */
  skipBadLines?: boolean;
}

export interface ReadExamplesResult {
  examples: Example[];
  /** 1-based line numbers of each example (parallel to `examples`). */
  lines: number[];
  skipped: BadLine[];
}

/** Parses one JSONL line into an example, or returns the problem. */
export function parseExampleLine(text: string, kinds?: ExampleKind[]): Example | { problem: string } {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    return { problem: `invalid JSON (${(e as Error).message})` };
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    return {
      problem: `expected a JSON object; received ${Array.isArray(o) ? "an array" : JSON.stringify(o)}`,
    };
  }
  const rec = o as Record<string, unknown>;
  const kind = detectKind(rec);
  if (!kind) {
    return {
      problem: `no known fields; expected "messages", "prompt"/"completion", "text"/"label" or "source"/"target"; received keys ${JSON.stringify(Object.keys(rec))}`,
    };
  }
  if (kinds && !kinds.includes(kind)) {
    return { problem: `a ${kind} example, but this task takes ${kinds.join(" or ")} examples` };
  }
  const r = schemas[kind].safeParse(rec);
  if (!r.success) {
    const i = r.error.issues[0];
    const where = i.path.length > 0 ? `field ${i.path.join(".")}` : "line";
    return { problem: `${where}: ${i.message}` };
  }
  const d = r.data as Record<string, unknown>;
  switch (kind) {
    case "chat": {
      const messages = d.messages as { role: ChatRole; content: string }[];
      if (!messages.some((m) => m.role === "assistant"))
        return { problem: "messages: no assistant message to learn from" };
      return { kind, messages: messages.map((m) => ({ role: m.role, content: m.content })) };
    }
    case "completion":
      return { kind, prompt: d.prompt as string, completion: d.completion as string };
    case "classification":
      return { kind, text: d.text as string, label: String(d.label) };
    case "text":
      return { kind, text: d.text as string };
    case "seq2seq":
      return { kind, source: d.source as string, target: d.target as string };
  }
}

/** Parses JSONL text (`file` names it in errors). */
export function parseExamples(
  text: string,
  file: string,
  opts: ReadExamplesOptions = {},
): ReadExamplesResult {
  const examples: Example[] = [];
  const lines: number[] = [];
  const skipped: BadLine[] = [];
  const rows = text.split("\n");
  for (let i = 0; i < rows.length; i++) {
    const raw = rows[i].replace(/\r$/, "");
    if (raw.trim() === "") continue;
    const r = parseExampleLine(raw, opts.kinds);
    if ("problem" in r) {
      if (!opts.skipBadLines) {
        throw new TypeformerError("DATA_INVALID", `${file}:${i + 1}: ${r.problem}`, {
          file,
          line: i + 1,
          problem: r.problem,
        });
      }
      skipped.push({ line: i + 1, problem: r.problem });
      continue;
    }
    examples.push(r);
    lines.push(i + 1);
  }
  if (examples.length === 0) {
    throw new TypeformerError(
      "DATA_INVALID",
      `${file}: no usable examples${skipped.length > 0 ? ` (${skipped.length} bad lines skipped)` : ""}`,
      { file, skipped: skipped.length },
    );
  }
  return { examples, lines, skipped };
}

/** Reads a JSONL file of examples. */
export async function readExamples(
  file: string,
  opts: ReadExamplesOptions = {},
): Promise<ReadExamplesResult> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new TypeformerError("IO_ERROR", `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  return parseExamples(text, file, opts);
}

/** Deterministic split: every `1/fraction`-th example (by a hash of its index) goes to validation. */
export function splitExamples<T>(items: T[], valFraction: number, seed = 0): { train: T[]; val: T[] } {
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new TypeformerError("INVALID_ARGUMENT", `valFraction must be in [0, 1); received ${valFraction}`, {
      valFraction,
    });
  }
  const train: T[] = [];
  const val: T[] = [];
  items.forEach((x, i) => {
    let h = (i + 1) * 2654435761 + seed * 40503;
    h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0;
    ((h % 10000) / 10000 < valFraction ? val : train).push(x);
  });
  if (train.length === 0 && val.length > 0) train.push(val.pop()!);
  return { train, val };
}
