import { TypeformerError } from "@typeformer/core";
import { z } from "zod";

const corpusSpec = z.union([
  z.string().min(1),
  z.object({ jsonl: z.string().min(1), field: z.string().optional() }).strict(),
  z.object({ text: z.string(), name: z.string().optional() }).strict(),
]);

const sampleSchema = z
  .object({
    prompt: z.string().default(""),
    tokens: z.number().int().min(1).default(300),
    temperature: z.number().min(0).default(0.8),
    topK: z.number().int().min(0).default(0),
    count: z.number().int().min(0).default(2),
  })
  .strict();

/**
 * `typeformer train --config run.json`: one flat object of training knobs plus `model` (passed to
 * `createModel`: `modelType`, optional `preset`, any config field). Unknown keys are errors naming the
 * closest valid key.
 */
export const runConfigSchema = z
  .object({
    /** Corpus: a bundled name (moby-dick, sotu, brown), a file, a glob, {jsonl, field}, or a list. */
    corpus: z.union([corpusSpec, z.array(corpusSpec).min(1)]),
    /** "char", "bpe:<vocab size>" (trained on the corpus), a tiktoken encoding ("gpt2"), or a tokenizer.json path. */
    tokenizer: z.string().default("char"),
    valFraction: z.number().min(0).lt(1).default(0.1),
    model: z.object({ modelType: z.string(), preset: z.string().optional() }).passthrough().default({
      modelType: "gpt2",
      preset: "nanogpt-cpu",
    }),
    objective: z.enum(["causal-lm", "masked-lm", "span-corruption"]).default("causal-lm"),
    steps: z.number().int().min(1).default(2000),
    batchSize: z.number().int().min(1).default(12),
    contextLength: z.number().int().min(2).default(64),
    gradAccumSteps: z.number().int().min(1).default(1),
    lr: z.number().positive().default(1e-3),
    minLr: z.number().min(0).optional(),
    warmupSteps: z.number().int().min(0).default(100),
    decaySteps: z.number().int().min(1).optional(),
    weightDecay: z.number().min(0).default(0.1),
    /** "default" (no decay on biases/norms/embeddings) or "all-matrices" (every ≥2-D tensor, nanoGPT). */
    decay: z.enum(["default", "all-matrices"]).default("default"),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.99),
    eps: z.number().positive().default(1e-8),
    gradClip: z.number().min(0).default(1),
    dropout: z.number().min(0).lt(1).optional(),
    seed: z.number().int().default(1337),
    evalEvery: z.number().int().min(1).default(250),
    evalBatches: z.number().int().min(1).default(20),
    checkpointEvery: z.number().int().min(0).default(250),
    keepLast: z.number().int().min(1).default(3),
    /** Stop (with a final eval and checkpoint) after this many minutes even before `steps`. */
    maxMinutes: z.number().positive().optional(),
    runDir: z.string().default("runs/train"),
    backend: z.enum(["node-gpu", "node", "wasm", "cpu"]).optional(),
    sample: sampleSchema.optional(),
  })
  .strict();

export type RunConfig = z.infer<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;

/** Edit distance, for "did you mean" suggestions. */
export function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(
        dp[j] + 1,
        dp[j - 1] + 1,
        prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1),
      );
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** The candidate closest to `key` (edit distance), or undefined when nothing is reasonably close. */
export function closestKey(key: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(key, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(key.length / 2)) ? best : undefined;
}

function shapeKeys(path: (string | number)[]): string[] {
  // biome-ignore lint/suspicious/noExplicitAny: walking zod's internal shapes
  let s: any = runConfigSchema;
  for (const p of path) {
    while (s?._def?.innerType) s = s._def.innerType;
    if (s?._def?.typeName === "ZodObject") s = s.shape[p];
    else return [];
  }
  while (s?._def?.innerType) s = s._def.innerType;
  return s?._def?.typeName === "ZodObject" ? Object.keys(s.shape) : [];
}

/** Validates a run config; errors name the offending key/value and suggest the closest valid key. */
export function parseRunConfig(input: unknown): RunConfig {
  const r = runConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const messages: string[] = [];
  for (const issue of r.error.issues) {
    const where = issue.path.join(".");
    if (issue.code === "unrecognized_keys") {
      const valid = shapeKeys(issue.path);
      for (const k of issue.keys) {
        const near = closestKey(k, valid);
        messages.push(
          `unknown key ${JSON.stringify(where ? `${where}.${k}` : k)}${near ? `; did you mean ${JSON.stringify(near)}?` : `; valid keys: ${valid.join(", ")}`}`,
        );
      }
    } else {
      messages.push(`${where || "config"}: ${issue.message}`);
    }
  }
  throw new TypeformerError("INVALID_CONFIG", `invalid run config: ${messages.join("; ")}`, {
    issues: r.error.issues,
  });
}
