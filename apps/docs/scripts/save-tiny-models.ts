// Writes tiny random GPT-2 and Llama checkpoints (HF layout) for docs/scripts/check_hf_layout.py.
// Usage (repo root): pnpm tsx --conditions=source apps/docs/scripts/save-tiny-models.ts <out-dir>
import { join } from "node:path";
import { initBackend } from "@typeformer/core";
import { createModel } from "@typeformer/models";

const out = process.argv[2] ?? "runs/hf-layout-check";
await initBackend();
for (const modelType of ["gpt2", "llama"]) {
  const model = createModel({ modelType, preset: "tiny" }, { seed: 1 });
  await model.save(join(out, modelType));
  model.dispose();
  console.log(`saved ${join(out, modelType)}`);
}
