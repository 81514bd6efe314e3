/**
 * Evaluation throughput: perplexity (sliding windows) and multiple-choice scoring on a nanoGPT-CPU
 * sized GPT-2 (4 layers × 128, context 64, char vocabulary of Moby Dick), against an anchor measured in
 * the same run: bare forward passes over the same number of windows (what scoring cannot go below).
 * `pnpm bench eval` (or `tsx --conditions=source bench/eval.ts`).
 */
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { clozeTask, evaluatePerplexity, heldOutText, runTask } from "@typeformer/eval";
import { type CausalLM, createModel } from "@typeformer/models";
import { CharTokenizer } from "@typeformer/tokenizer";
import { readCorpus } from "@typeformer/trainer";

const backend = await initBackend({ backend: "wasm" });
if (backend.tfBackend === "wasm") registerWasmKernels();
const docs: string[] = [];
for await (const d of readCorpus("moby-dick")) docs.push(d.text);
const tok = CharTokenizer.fromText(docs.join(""));
const held = heldOutText(docs, 0.1)[0].slice(0, 12_000);
const model = createModel<CausalLM>(
  { modelType: "gpt2", preset: "nanogpt-cpu", vocabSize: tok.vocabSize },
  { seed: 1 },
);
const L = 64;

function time<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const r = fn();
  return [r, (performance.now() - t0) / 1000];
}

// warm up
evaluatePerplexity(model, tok, held.slice(0, 2000), { stride: 32 });

const ids = tok.encode(held);
const rows: { name: string; tokens: number; sec: number }[] = [];
// anchor: bare forward passes over the windows stride 32 would use, batch 4, logits read back
{
  const windows: number[][] = [];
  for (let next = 1; next < ids.length; next += 32) {
    const end = Math.min(next + 32, ids.length);
    const w = ids.slice(Math.max(0, end - L), end);
    if (w.length === L) windows.push(w);
  }
  const [, sec] = time(() => {
    for (let b = 0; b < windows.length; b += 4) {
      const batch = windows.slice(b, b + 4);
      const out = tf.tidy(() =>
        model.forward(tf.tensor2d(batch.flat(), [batch.length, L], "int32")).logits.sum(),
      );
      out.dataSync();
      out.dispose();
    }
  });
  rows.push({ name: "anchor: bare forward, same windows as stride 32", tokens: windows.length * 32, sec });
}
for (const stride of [32, 63]) {
  const [r, sec] = time(() => evaluatePerplexity(model, tok, held, { stride }));
  rows.push({
    name: `evaluatePerplexity stride ${stride} (bpb ${r.bitsPerByte.toFixed(3)})`,
    tokens: r.tokens,
    sec,
  });
}
const task = clozeTask(held, { n: 30, seed: 0 });
const [tr, tsec] = time(() => runTask(model, tok, task, { shots: 0 }));
rows.push({ name: `cloze 4-choice, ${tr.n} questions (tokens = questions)`, tokens: tr.n, sec: tsec });

const anchor = rows[0].tokens / rows[0].sec;
console.log(`backend ${tf.getBackend()}, model 4×128 GPT-2, context ${L}, ${ids.length} held-out characters`);
console.log("| run | tokens | s | tokens/s | ratio to anchor |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  const tps = r.tokens / r.sec;
  console.log(
    `| ${r.name} | ${r.tokens} | ${r.sec.toFixed(2)} | ${tps.toFixed(0)} | ${(tps / anchor).toFixed(2)} |`,
  );
}
model.dispose();
