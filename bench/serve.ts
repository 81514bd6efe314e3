/**
 * Serving benchmark (`pnpm bench serve`, or `tsx --conditions=source bench/serve.ts [--quick]`):
 *
 * 1. single-stream KV-cached greedy decode tokens/s of a small GPT-2 (@typeformer/models + the
 *    attention KVCache, through the GenerationEngine and as a bare forward loop) against PyTorch
 *    KV-cached greedy decoding of the same architecture (bench/pytorch/gpt_bench.py), same sitting;
 * 2. aggregate tokens/s at 1, 4, 8 and 16 concurrent streams (continuous batching), with time to
 *    first token p50/p95 at each level; ratio to 1 stream;
 * 3. an autocannon load run against POST /v1/completions (non-streaming) on 127.0.0.1.
 */

import { readFileSync } from "node:fs";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { createServer, GenerationEngine, listen, type ServeTokenizer } from "@typeformer/serve";
import autocannon from "autocannon";
import { median, TorchChild } from "./torch-child.js";

const quick = process.argv.includes("--quick");
const stockKernels = process.argv.includes("--stock-kernels");
const CFG = { vocab: 256, ctx: 256, d: 128, layers: 4, heads: 4 };
const DECODE_TOKENS = quick ? 48 : 128;
const STREAM_TOKENS = quick ? 32 : 128;
const REPEATS = quick ? 2 : 3;
const thrArg = process.argv.find((a) => a.startsWith("--torch-threads="));
const TORCH_THREADS = thrArg ? Number(thrArg.split("=")[1]) : 2;

/** Byte tokenizer (ids = UTF-16 code units mod 256); enough for timing. */
const tokenizer: ServeTokenizer = {
  vocabSize: 256,
  encode: (t) => Array.from(t, (c) => c.charCodeAt(0) % 256),
  decode: (ids) => String.fromCharCode(...ids),
  createStreamDecoder: () => ({ push: (id) => String.fromCharCode(id), flush: () => "" }),
};

/** CPU milliseconds of this process (robust to a shared, oversubscribed machine, unlike wall time). */
const selfCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** CPU milliseconds of another process from /proc (utime + stime, in clock ticks of 10 ms). */
const procCpuMs = (pid: number | undefined) => {
  if (pid === undefined) return Number.NaN;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (x: number, d = 1) => x.toFixed(d);

function bareGreedy(model: CausalLM, n: number): { wall: number; cpu: number } {
  const cache = model.createCache(1, n + 1);
  let ids = tf.tensor2d([[0]], [1, 1], "int32");
  const t0 = performance.now();
  const c0 = selfCpuMs();
  for (let i = 0; i < n; i++) {
    const { logits } = model.forward(ids, { cache });
    const next = tf.tidy(() => tf.argMax(logits.reshape([1, -1]), -1).dataSync()[0]);
    tf.dispose([ids, logits]);
    ids = tf.tensor2d([[next]], [1, 1], "int32");
  }
  const ms = performance.now() - t0;
  const cpu = selfCpuMs() - c0;
  ids.dispose();
  cache.dispose();
  return { wall: (n * 1000) / ms, cpu: (n * 1000) / cpu };
}

async function main() {
  const backend = await initBackend();
  let kernels = "stock tf.js";
  if (backend.tfBackend === "wasm" && !stockKernels) {
    const r = registerWasmKernels();
    kernels = `Typeformer SIMD (${r.variant})`;
  }
  console.log(`backend ${backend.backend}, matmul kernels: ${kernels}; model gpt2 ${JSON.stringify(CFG)}`);
  const model = createModel(
    {
      modelType: "gpt2",
      vocabSize: CFG.vocab,
      maxPositions: CFG.ctx,
      hiddenSize: CFG.d,
      numLayers: CFG.layers,
      numHeads: CFG.heads,
    },
    { seed: 0 },
  ) as CausalLM;
  const engine = new GenerationEngine({ model, tokenizer, maxBatch: 16, maxQueue: 64 });
  const greedy = { temperature: 0 };
  // Warm-up: V8 optimises tf.js' dispatch code only after a few hundred decode steps (per-token CPU
  // falls ~3× over the first ~400 tokens), so a short warm-up times cold code, not the decode path.
  await engine.warmup(480);
  for (let r = 0; r < 3; r++) bareGreedy(model, 160);

  // ---- 1. single stream vs PyTorch
  const torch = await TorchChild.start(CFG, TORCH_THREADS);
  const torchPid =
    typeof torch === "string" ? undefined : (torch as unknown as { proc?: { pid?: number } }).proc?.pid;
  const torchTps: number[] = [];
  const torchCpu: number[] = [];
  const engineTps: number[] = [];
  const engineCpu: number[] = [];
  const bareTps: number[] = [];
  const bareCpu: number[] = [];
  if (typeof torch !== "string") await torch.call({ cmd: "decode", batch: 1, tokens: 8 });
  for (let r = 0; r < REPEATS; r++) {
    if (typeof torch !== "string") {
      const c0 = procCpuMs(torchPid);
      const t = await torch.call<{ ms: number; cpu?: number; tokens: number }>({
        cmd: "decode",
        batch: 1,
        tokens: DECODE_TOKENS,
      });
      torchTps.push((t.tokens * 1000) / t.ms);
      // the child's own process_time() of the decode (/proc's 10 ms ticks are too coarse for ~30 ms)
      torchCpu.push((t.tokens * 1000) / (t.cpu ?? procCpuMs(torchPid) - c0));
    }
    const c0 = selfCpuMs();
    const res = await engine.generate({
      promptIds: [0],
      maxTokens: DECODE_TOKENS,
      ignoreEos: true,
      sampling: greedy,
    });
    engineCpu.push((res.completionTokens * 1000) / (selfCpuMs() - c0));
    engineTps.push((res.completionTokens * 1000) / res.durationMs);
    const b = bareGreedy(model, DECODE_TOKENS);
    bareTps.push(b.wall);
    bareCpu.push(b.cpu);
  }
  const anchor = typeof torch === "string" ? Number.NaN : median(torchTps);
  const anchorCpu = typeof torch === "string" ? Number.NaN : median(torchCpu);
  console.log(`\nsingle-stream greedy decode, ${DECODE_TOKENS} tokens from 1 (median of ${REPEATS})`);
  console.log(
    "tokens/s by wall clock, and per CPU-second of the process (robust when the machine is shared)",
  );
  const row = (what: string, wall: number[], cpu: number[]) => ({
    what,
    "tokens/s": fmt(median(wall)),
    "× PyTorch": fmt(median(wall) / anchor, 2),
    "tokens/CPU-s": fmt(median(cpu)),
    "× PyTorch (CPU)": fmt(median(cpu) / anchorCpu, 2),
  });
  console.table([
    row(
      `PyTorch ${typeof torch === "string" ? "(skipped)" : `${torch.info.torch}, ${torch.info.threads} threads`}`,
      torchTps.length ? torchTps : [Number.NaN],
      torchCpu.length ? torchCpu : [Number.NaN],
    ),
    row("tf.js forward loop + KVCache", bareTps, bareCpu),
    row("GenerationEngine (sampler, detok)", engineTps, engineCpu),
  ]);
  if (typeof torch === "string") console.log(torch);

  // ---- 2. concurrency
  const rows = [];
  let base = 0;
  let baseCpu = 0;
  const levels = [1, 4, 8, 16];
  const runs = new Map<number, { tps: number[]; cps: number[]; ttft: number[] }>(
    levels.map((n) => [n, { tps: [], cps: [], ttft: [] }]),
  );
  // rounds interleave the levels so drifting machine load hits every level alike; round -1 warms
  // up every batch size and is not timed
  for (let r = -1; r < REPEATS; r++) {
    for (const n of levels) {
      const t0 = performance.now();
      const c0 = selfCpuMs();
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          engine.generate({
            promptIds: tokenizer.encode(`stream ${i}: once upon a time`),
            maxTokens: STREAM_TOKENS,
            ignoreEos: true,
            sampling: { seed: i, temperature: 0.8 },
          }),
        ),
      );
      const ms = performance.now() - t0;
      const cpuMs = selfCpuMs() - c0;
      const tokens = results.reduce((s, x) => s + x.completionTokens, 0);
      if (r < 0) continue;
      const run = runs.get(n)!;
      run.tps.push((tokens * 1000) / ms);
      run.cps.push((tokens * 1000) / cpuMs);
      run.ttft.push(...results.map((x) => x.timeToFirstTokenMs ?? 0));
    }
  }
  base = median(runs.get(1)!.tps);
  baseCpu = median(runs.get(1)!.cps);
  for (const n of levels) {
    const run = runs.get(n)!;
    rows.push({
      streams: n,
      "aggregate tokens/s": fmt(median(run.tps)),
      "× 1 stream": fmt(median(run.tps) / base, 2),
      "tokens/CPU-s": fmt(median(run.cps)),
      "× 1 stream (CPU)": fmt(median(run.cps) / baseCpu, 2),
      "TTFT p50 ms": fmt(pct(run.ttft, 50)),
      "TTFT p95 ms": fmt(pct(run.ttft, 95)),
    });
  }
  console.log(
    `\ncontinuous batching: n streams × ${STREAM_TOKENS} tokens, all submitted at once (median of ${REPEATS} rounds)`,
  );
  console.table(rows);

  // ---- 3. autocannon against the non-streaming endpoint
  const server = createServer({
    models: [{ id: "bench-gpt", model, tokenizer, engine: { maxBatch: 16, maxQueue: 256 } }],
  });
  const running = await listen(server, { port: 0 });
  const result = await autocannon({
    url: `${running.url}/v1/completions`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "bench-gpt", prompt: "hello there", max_tokens: 16, temperature: 0 }),
    connections: 8,
    duration: quick ? 4 : 10,
  });
  console.log(`\nautocannon: POST /v1/completions (max_tokens 16), 8 connections, ${quick ? 4 : 10} s`);
  console.table([
    {
      "req/s": fmt(result.requests.average),
      "tokens/s": fmt(result.requests.average * 16),
      "p50 ms": result.latency.p50,
      "p90 ms": result.latency.p90,
      "p99 ms": result.latency.p99,
      "max ms": result.latency.max,
      errors: result.errors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
      total: result.requests.total,
    },
  ]);
  await running.close({ graceMs: 1000 });
  if (typeof torch !== "string") torch.close();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
