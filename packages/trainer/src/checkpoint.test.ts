import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, isTypeformerError, Random, SafetensorsFile } from "@typeformer/core";
import { expectNoLeaks } from "@typeformer/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TinyLM } from "./__fixtures__/tiny-model.js";
import { CheckpointManager, TENSORS_FILE, type TrainerState } from "./checkpoint.js";
import { AdamW, type OptimizerSnapshot } from "./optimizer.js";

/**
 * `trainer-state.safetensors` of the state built by `fixedState()`, written by the trainer's former
 * writer (`packages/trainer/src/tensor-file.ts`, removed in favour of core's safetensors writer). The
 * checkpoint format must stay byte-identical so existing checkpoints keep resuming.
 */
const FIXTURE = path.join(import.meta.dirname, "__fixtures__", "trainer-state-v1.safetensors");

const STATE: TrainerState = {
  step: 3,
  optimizerStep: 3,
  tokensSeen: 96,
  elapsedMs: 10,
  rng: new Random(5).getState(),
  data: { epoch: 0, cursor: 3 },
  bestValLoss: null,
  lastValLoss: null,
};

/** Deterministic moments: exp_avg = sin(k·i)/10, exp_avg_sq = (cos(k·i))² / 100 per parameter k. */
function fixedMoments(model: TinyLM): OptimizerSnapshot {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let k = 1;
  for (const [n, p] of model.namedParameters()) {
    const m = Float32Array.from({ length: p.size }, (_, i) => Math.sin(k * (i + 1)) / 10);
    const v = Float32Array.from({ length: p.size }, (_, i) => Math.cos(k * (i + 1)) ** 2 / 100);
    tensors.set(`exp_avg.${n}`, { shape: p.shape, data: m });
    tensors.set(`exp_avg_sq.${n}`, { shape: p.shape, data: v });
    k++;
  }
  return { step: STATE.optimizerStep, tensors };
}

function fixedState(seed: number): { model: TinyLM; opt: AdamW } {
  const model = new TinyLM(7, 4, seed);
  const opt = new AdamW(model.namedParameters());
  opt.restore(fixedMoments(model));
  return { model, opt };
}

let root: string;
beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  root = await mkdtemp(path.join(tmpdir(), "tf-ckpt-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("CheckpointManager tensor file", () => {
  it("writes trainer-state.safetensors byte-identical to the format existing checkpoints use", async () => {
    const { model, opt } = fixedState(1);
    const { path: dir } = await new CheckpointManager(path.join(root, "a")).save(model, opt, STATE);
    const written = await readFile(path.join(dir, TENSORS_FILE));
    const golden = await readFile(FIXTURE);
    expect(written.length).toBe(golden.length);
    expect(Buffer.compare(written, golden)).toBe(0);
    // and it is a valid safetensors file with the trainer's metadata
    const f = await SafetensorsFile.open(path.join(dir, TENSORS_FILE));
    expect(f.metadata).toEqual({ format: "typeformer-trainer", step: "3" });
    expect(f.names().length).toBe(3 * model.namedParameters().size);
    await f.close();
    model.dispose();
    opt.dispose();
  });

  it("restores the golden file exactly into another model's parameters and moments, without leaks", async () => {
    const { model: ref, opt: refOpt } = fixedState(1);
    const { model, opt } = fixedState(2);
    const dir = path.join(root, "b");
    const mgr = new CheckpointManager(dir);
    const { path: ckpt } = await mgr.save(model, opt, { ...STATE, step: 1 }); // a folder to overwrite
    await rm(path.join(ckpt, TENSORS_FILE));
    await copyFile(FIXTURE, path.join(ckpt, TENSORS_FILE));
    const state = await expectNoLeaks(() => mgr.restore(ckpt, model, opt));
    expect(state.step).toBe(1);
    expect(opt.t).toBe(STATE.optimizerStep);
    for (const [n, p] of ref.namedParameters()) {
      expect(Array.from(model.namedParameters().get(n)!.dataSync()), n).toEqual(Array.from(p.dataSync()));
    }
    const want = await refOpt.snapshot();
    const got = await opt.snapshot();
    expect([...got.tensors.keys()].sort()).toEqual([...want.tensors.keys()].sort());
    for (const [n, t] of want.tensors) {
      expect(got.tensors.get(n)!.shape, n).toEqual(t.shape);
      expect(Array.from(got.tensors.get(n)!.data), n).toEqual(Array.from(t.data));
    }
    for (const x of [ref, model]) x.dispose();
    for (const x of [refOpt, opt]) x.dispose();
  });

  it("a truncated tensor file is a SAFETENSORS_INVALID error naming the file, and nothing is assigned", async () => {
    const { model, opt } = fixedState(2);
    const before = Array.from(model.namedParameters().get("wte.weight")!.dataSync());
    const dir = path.join(root, "c");
    const mgr = new CheckpointManager(dir);
    const { path: ckpt } = await mgr.save(model, opt, STATE);
    const file = path.join(ckpt, TENSORS_FILE);
    await writeFile(file, (await readFile(FIXTURE)).subarray(0, 1000));
    const err = await mgr.restore(ckpt, model, opt).catch((e: unknown) => e);
    expect(isTypeformerError(err, "SAFETENSORS_INVALID")).toBe(true);
    expect((err as Error).message).toContain(file);
    expect(Array.from(model.namedParameters().get("wte.weight")!.dataSync())).toEqual(before);
    model.dispose();
    opt.dispose();
  });
});
