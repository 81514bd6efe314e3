import { z } from "zod";

const tokenId = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);
const stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();

/** Sampling fields shared by /v1/completions and /v1/chat/completions (OpenAI's plus vLLM-style extras). */
const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  stop,
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, "keys must be token ids"), z.number().min(-100).max(100))
    .nullish(),
  seed: z
    .number()
    .int()
    .min(-(2 ** 53))
    .max(2 ** 53)
    .nullish(),
  user: z.string().nullish(),
  // extensions (vLLM names)
  top_k: z.number().int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(10).nullish(),
  ignore_eos: z.boolean().nullish(),
};

export const completionSchema = z.object({
  ...sampling,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1).max(32),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1).max(32),
  ]),
  logprobs: z.number().int().min(0).max(5).nullish(),
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
  /** Encoder-decoder models: beam width (beam search when > 1). Ignored by decoder-only models. */
  best_of: z.number().int().min(1).max(16).nullish(),
});
export type CompletionBody = z.infer<typeof completionSchema>;

const contentPart = z.object({ type: z.literal("text"), text: z.string() });
export const messageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(contentPart), z.null()]),
  name: z.string().nullish(),
});
export type ChatMessage = z.infer<typeof messageSchema>;

export const chatSchema = z.object({
  ...sampling,
  messages: z.array(messageSchema).min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});
export type ChatBody = z.infer<typeof chatSchema>;

export const embeddingsSchema = z.object({
  model: z.string().min(1),
  input: z.union([
    z.string(),
    z.array(z.string()).min(1).max(256),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1).max(256),
  ]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().nullish(),
});
export type EmbeddingsBody = z.infer<typeof embeddingsSchema>;

export const attentionSchema = z
  .object({
    model: z.string().min(1),
    text: z.string().min(1).optional(),
    messages: z.array(messageSchema).min(1).optional(),
    add_generation_prompt: z.boolean().optional(),
    layers: z.array(z.number().int().min(0)).min(1).optional(),
    heads: z.array(z.number().int().min(0)).min(1).optional(),
  })
  .refine((b) => (b.text === undefined) !== (b.messages === undefined), {
    message: "give exactly one of 'text' and 'messages'",
  });
export type AttentionBody = z.infer<typeof attentionSchema>;
