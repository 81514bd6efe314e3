import type { RunConfigInput } from "./run-config.js";

/**
 * Ready-made runs. `moby-dick` is the README's main job: a small char-level GPT on the bundled Moby
 * Dick for a few minutes of CPU, then samples. `shakespeare` is nanoGPT's CPU configuration (needs a
 * copy of Tiny Shakespeare; pass `--corpus path`).
 */
export const RUN_PRESETS: Record<string, RunConfigInput> = {
  "moby-dick": {
    corpus: "moby-dick",
    tokenizer: "char",
    model: { modelType: "gpt2", preset: "nanogpt-cpu" },
    steps: 1000,
    batchSize: 12,
    contextLength: 64,
    lr: 2e-3,
    minLr: 2e-4,
    warmupSteps: 50,
    weightDecay: 0.1,
    decay: "all-matrices",
    beta2: 0.99,
    gradClip: 1,
    evalEvery: 200,
    evalBatches: 10,
    checkpointEvery: 200,
    maxMinutes: 5,
    runDir: "runs/moby-dick",
    sample: { prompt: "Call me ", tokens: 300, temperature: 0.8, count: 2 },
  },
  shakespeare: {
    corpus: "../shared/data/tinyshakespeare.txt",
    tokenizer: "char",
    model: { modelType: "gpt2", preset: "nanogpt-cpu" },
    steps: 2000,
    batchSize: 12,
    contextLength: 64,
    lr: 1e-3,
    minLr: 1e-4,
    warmupSteps: 100,
    weightDecay: 0.1,
    decay: "all-matrices",
    beta2: 0.99,
    gradClip: 1,
    evalEvery: 250,
    evalBatches: 20,
    checkpointEvery: 250,
    runDir: "runs/shakespeare",
    sample: { prompt: "ROMEO:", tokens: 300, temperature: 0.8, count: 2 },
  },
};
