import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, isTypeformerError, SafetensorsFile, tf } from "@typeformer/core";
import {
  type AnyModel,
  type CausalLM,
  createModel,
  type EncoderModel,
  type Seq2SeqLM,
} from "@typeformer/models";
import { assertClose, expectNoLeaks } from "@typeformer/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hfModuleName, LoraModel } from "./lora.js";
import { loadAdapter, saveAdapter } from "./peft.js";

let root: string;
beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  root = await mkdtemp(path.join(tmpdir(), "tf-lora-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const IDS = [
  [3, 7, 1, 4, 9, 2],
  [5, 0, 8, 6, 2, 1],
];

/** A deterministic output of any family for the same ids. */
function outputs(m: AnyModel): Float32Array {
  return tf.tidy(() => {
    const ids = tf.tensor2d(IDS, [2, 6], "int32");
    if (m.family === "decoder") return (m as CausalLM).forward(ids).logits.dataSync() as Float32Array;
    if (m.family === "encoder") {
      const e = m as EncoderModel;
      return tf
        .concat([tf.reshape(e.encode(ids).hidden, [-1]), tf.reshape(e.classify(ids), [-1])])
        .dataSync() as Float32Array;
    }
    return (m as Seq2SeqLM).forward(ids, ids).logits.dataSync() as Float32Array;
  });
}

function snapshot(m: AnyModel): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [n, v] of m.namedParameters()) out.set(n, (v.dataSync() as Float32Array).slice());
  return out;
}

/** Gives every B a random value (B starts at zero, which would make the tests vacuous). */
function randomizeB(lora: LoraModel, seed: number): void {
  let s = seed;
  for (const a of lora.adapters.values()) {
    for (const l of a.layers.values()) {
      tf.tidy(() => l.B.assign(tf.randomNormal(l.B.shape, 0, 0.2, "float32", s++)));
    }
  }
}

const CASES: { modelType: string; targets: string[]; count: (m: AnyModel) => number }[] = [
  {
    modelType: "gpt2",
    targets: ["c_attn", "c_proj", "c_fc"],
    count: (m) => 4 * (m.config as unknown as { numLayers: number }).numLayers,
  }, // c_proj: attn + mlp
  {
    modelType: "llama",
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    count: (m) => 7 * (m.config as unknown as { numLayers: number }).numLayers,
  },
  { modelType: "bert", targets: ["query", "value", "dense"], count: () => -1 },
  { modelType: "t5", targets: ["q", "v", "wo"], count: () => -1 },
];

describe.each(CASES)("LoRA on $modelType", ({ modelType, targets, count }) => {
  it("forward equals the base model with W + (alpha/r)·A·B computed independently; merge/unmerge exact", async () => {
    const base = createModel({ modelType, preset: "tiny" }, { seed: 1 });
    const before = snapshot(base);
    const y0 = outputs(base);
    const lora = new LoraModel(base);
    const adapter = lora.addAdapter("a", { r: 4, alpha: 8, targetModules: targets, seed: 2 });
    if (count(base) > 0) expect(adapter.layers.size).toBe(count(base));
    else expect(adapter.layers.size).toBeGreaterThan(0);
    // B = 0 at init: the adapted model equals the base
    assertClose(outputs(base), y0, { atol: 1e-6 });
    randomizeB(lora, 10);
    const yLora = outputs(base);
    expect(Math.max(...yLora.map((v, i) => Math.abs(v - y0[i])))).toBeGreaterThan(1e-3);

    // reference: a second model whose weights are W + s·A·B computed in float64 in JS
    const ref = createModel({ modelType, preset: "tiny" }, { seed: 1 });
    const refParams = ref.namedParameters();
    for (const l of adapter.layers.values()) {
      const [inF, r] = l.A.shape;
      const outF = l.B.shape[1] as number;
      const A = l.A.dataSync();
      const B = l.B.dataSync();
      const W = before.get(l.param)!;
      const merged = new Float32Array(inF * outF);
      for (let i = 0; i < inF; i++)
        for (let o = 0; o < outF; o++) {
          let acc = 0;
          for (let k = 0; k < r; k++) acc += A[i * r + k] * B[k * outF + o];
          merged[i * outF + o] = W[i * outF + o] + 2 * acc; // alpha / r = 2
        }
      tf.tidy(() => refParams.get(l.param)!.assign(tf.tensor(merged, [inF, outF])));
    }
    assertClose(yLora, outputs(ref), { atol: 1e-4, rtol: 1e-4 });
    ref.dispose();

    lora.merge();
    assertClose(outputs(base), yLora, { atol: 1e-4, rtol: 1e-4 });
    lora.unmerge();
    for (const [n, v] of base.namedParameters())
      assertClose(v.dataSync() as Float32Array, before.get(n)!, { atol: 1e-6 });
    assertClose(outputs(base), yLora, { atol: 1e-5 });
    lora.setAdapter(null);
    assertClose(outputs(base), y0, { atol: 1e-6 });
    lora.dispose();
    for (const v of base.namedParameters().values()) expect(v.trainable).toBe(true);
    base.dispose();
  });
});

describe("PEFT adapter files", () => {
  it("GPT-2: exact PEFT names, shapes (lora_A (r, in), lora_B (out, r)) and config; round trip", async () => {
    const base = createModel<CausalLM>({ modelType: "gpt2", preset: "tiny" }, { seed: 1 });
    const lora = new LoraModel(base, { baseModelNameOrPath: "gpt2-tiny" });
    lora.addAdapter("default", {
      r: 4,
      alpha: 16,
      dropout: 0.05,
      targetModules: ["c_attn"],
      useRslora: true,
    });
    randomizeB(lora, 3);
    const y = outputs(base);
    const dir = path.join(root, "gpt2-adapter");
    await saveAdapter(lora, dir);
    const cfg = JSON.parse(await readFile(path.join(dir, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({
      peft_type: "LORA",
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0.05,
      target_modules: ["c_attn"],
      use_rslora: true,
      base_model_name_or_path: "gpt2-tiny",
      task_type: "CAUSAL_LM",
      bias: "none",
      fan_in_fan_out: true,
    });
    const f = await SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
    expect(f.names().sort()).toEqual([
      "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
      "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
      "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight",
      "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight",
    ]);
    expect(f.info("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight").shape).toEqual([4, 32]);
    expect(f.info("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight").shape).toEqual([96, 4]);
    // lora_A is stored transposed relative to our (in, r) variable
    const a = lora.adapters.get("default")!.layers.get("h.0.attn.c_attn.weight")!.A;
    const aT = tf.tidy(() => tf.transpose(a).dataSync() as Float32Array);
    assertClose(await f.readFloat32("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"), aT, {
      atol: 0,
    });
    await f.close();
    lora.dispose();
    expect(outputs(base)).not.toEqual(y);

    // load into a fresh LoraModel over the same base: identical outputs (rsLoRA scaling restored)
    const lora2 = new LoraModel(base);
    await loadAdapter(lora2, dir, "loaded");
    expect(lora2.adapters.get("loaded")!.scaling).toBeCloseTo(16 / 2, 10);
    assertClose(outputs(base), y, { atol: 1e-6 });
    lora2.dispose();
    base.dispose();
  });

  it("Llama and BERT use HF module names; BERT's modules_to_save classifier round trips in (out, in)", async () => {
    const llama = createModel({ modelType: "llama", preset: "tiny" }, { seed: 1 });
    const l = new LoraModel(llama);
    l.addAdapter("x", { r: 2, targetModules: ["q_proj", "v_proj"] });
    await saveAdapter(l, path.join(root, "llama"));
    const f = await SafetensorsFile.open(path.join(root, "llama", "adapter_model.safetensors"));
    expect(f.names()).toContain("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    await f.close();
    l.dispose();
    llama.dispose();

    const bert = createModel<EncoderModel>({ modelType: "bert", preset: "tiny" }, { seed: 1 });
    const b = new LoraModel(bert);
    b.addAdapter("cls", { r: 2, targetModules: ["query", "value"], modulesToSave: ["classifier"] });
    randomizeB(b, 7);
    const w = bert.namedParameters().get("classifier.weight")!;
    expect(w.trainable).toBe(true); // modules_to_save are trained
    tf.tidy(() => w.assign(tf.add(w, 0.5)));
    const y = outputs(bert);
    const dir = path.join(root, "bert");
    await saveAdapter(b, dir);
    const g = await SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
    expect(g.names()).toContain("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight");
    const [hidden, labels] = w.shape;
    expect(g.info("base_model.model.classifier.weight").shape).toEqual([labels, hidden]);
    await g.close();
    const cfg = JSON.parse(await readFile(path.join(dir, "adapter_config.json"), "utf8"));
    expect(cfg.task_type).toBe("SEQ_CLS");
    expect(cfg.modules_to_save).toEqual(["classifier"]);
    b.dispose();
    tf.tidy(() => w.assign(tf.zerosLike(w)));
    const b2 = new LoraModel(bert);
    await loadAdapter(b2, dir);
    assertClose(outputs(bert), y, { atol: 1e-6 });
    b2.dispose();
    bert.dispose();
  });

  it("rejects adapters that do not fit the model, naming the tensor", async () => {
    const base = createModel<CausalLM>({ modelType: "gpt2", preset: "tiny" }, { seed: 1 });
    const other = createModel<CausalLM>({ modelType: "gpt2", preset: "tiny", hiddenSize: 16 }, { seed: 1 });
    const l = new LoraModel(other);
    l.addAdapter("default", { r: 2, targetModules: ["c_attn"] });
    const dir = path.join(root, "mismatch");
    await saveAdapter(l, dir);
    l.dispose();
    const l2 = new LoraModel(base);
    const err = await loadAdapter(l2, dir).catch((e) => e);
    expect(isTypeformerError(err, "SHAPE_MISMATCH")).toBe(true);
    expect(String(err.message)).toMatch(/c_attn\.lora_A\.weight has shape \[2,16\], expected \[2,32\]/);
    expect(l2.adapters.size).toBe(0);
    l2.dispose();
    base.dispose();
    other.dispose();
  });
});

describe("adapters", () => {
  it("several adapters loaded at once, switchable; typed errors for bad targets; no leaks", async () => {
    const base = createModel<CausalLM>({ modelType: "gpt2", preset: "tiny" }, { seed: 1 });
    const y0 = outputs(base);
    await expectNoLeaks(() => {
      const lora = new LoraModel(base);
      lora.addAdapter("one", { r: 2, targetModules: ["c_attn"], seed: 1 });
      lora.addAdapter("two", { r: 4, targetModules: "transformer\\.h\\.\\d+\\.mlp\\.c_fc", seed: 2 });
      randomizeB(lora, 5);
      expect(lora.activeAdapter).toBe("two");
      const y2 = outputs(base);
      lora.setAdapter("one");
      const y1 = outputs(base);
      expect(y1).not.toEqual(y2);
      lora.setAdapter("two");
      assertClose(outputs(base), y2, { atol: 0 });
      lora.setAdapter(null);
      assertClose(outputs(base), y0, { atol: 0 });
      lora.setAdapter("one");
      lora.merge();
      expect(() => lora.setAdapter("two")).toThrow(/merged/);
      lora.unmerge();
      expect(() => lora.addAdapter("bad", { targetModules: ["nope"] })).toThrow(/match no linear layer/);
      expect(() => lora.addAdapter("emb", { targetModules: "transformer\\.wte" })).toThrow(/not \(embedding/);
      expect(() => lora.addAdapter("r0", { r: 0, targetModules: ["c_attn"] })).toThrow(
        /r must be an integer >= 1; received 0/,
      );
      expect(() => lora.setAdapter("three")).toThrow(/no adapter "three"/);
      lora.dispose();
    });
    assertClose(outputs(base), y0, { atol: 1e-6 }); // merge + unmerge round to within float32
    expect(hfModuleName("gpt2", "h.3.mlp.c_fc.weight")).toBe("transformer.h.3.mlp.c_fc");
    base.dispose();
  });
});
