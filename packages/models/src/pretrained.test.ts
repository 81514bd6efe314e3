import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  isTypeformerError,
  openCheckpoint,
  type TensorToWrite,
  tf,
  writeSafetensors,
} from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks, maxAbsDiff } from "@typeformer/test-utils";
import { CharTokenizer } from "@typeformer/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CausalLM,
  configFromHF,
  configToHF,
  createModel,
  type EncoderModel,
  flopsPerToken,
  fromPretrained,
  parameterCount,
  resolveConfig,
  type Seq2SeqLM,
  setLinearHook,
  supportedModelTypes,
} from "./index.js";

const GPT2 = path.join(import.meta.dirname, "__fixtures__", "gpt2-tiny");

async function expectCode(
  p: Promise<unknown> | (() => unknown),
  code: string,
  message: RegExp,
): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(isTypeformerError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as Error).message).toMatch(message);
}

describe("sizes", () => {
  it("counts GPT-2's 124M parameters and the released sizes", () => {
    expect(parameterCount({ modelType: "gpt2" })).toBe(124_439_808);
    expect(parameterCount({ modelType: "gpt2", preset: "gpt2-medium" })).toBe(354_823_168);
    expect(parameterCount({ modelType: "gpt2", preset: "gpt2-large" })).toBe(774_030_080);
    expect(parameterCount({ modelType: "gpt2", preset: "gpt2-xl" })).toBe(1_557_611_200);
    expect(parameterCount({ modelType: "bert", withClassifier: false, withMlmHead: false })).toBe(
      109_482_240,
    );
    expect(parameterCount({ modelType: "t5" })).toBe(60_506_624);
    expect(parameterCount({ modelType: "llama", preset: "llama-2-7b" })).toBe(6_738_415_616);
  });

  it("flopsPerToken = 6·N(non-embedding, + tied head) + 12·L·C·T", () => {
    const N = 124_439_808 - 50257 * 768 - 1024 * 768 + 50257 * 768;
    expect(flopsPerToken({ modelType: "gpt2" }, 1024)).toBe(6 * N + 12 * 12 * 768 * 1024);
    // T5: encoder self + decoder self + decoder cross attention
    const t5 =
      flopsPerToken({ modelType: "t5", preset: "tiny" }, 10) -
      6 * (parameterCount({ modelType: "t5", preset: "tiny" }) - 97 * 32 - 2 * 8 * 4 + 97 * 32);
    expect(t5).toBe(12 * (2 + 2 * 2) * 32 * 10);
  });
});

describe("configs", () => {
  it("maps HF config.json keys both ways and rejects wrong field types", async () => {
    const json = JSON.parse(await readFile(path.join(GPT2, "config.json"), "utf8"));
    const c = configFromHF(json) as unknown as Record<string, unknown>;
    expect(c).toMatchObject({
      modelType: "gpt2",
      hiddenSize: 32,
      numLayers: 2,
      numHeads: 4,
      maxPositions: 32,
    });
    const back = configToHF(c as never);
    for (const k of [
      "n_embd",
      "n_layer",
      "n_head",
      "n_positions",
      "n_ctx",
      "vocab_size",
      "layer_norm_epsilon",
    ]) {
      expect(back[k], k).toEqual(json[k]);
    }
    await expectCode(
      () => configFromHF({ ...json, n_layer: "2" }),
      "INVALID_CONFIG",
      /n_layer must be integer; received "2"/,
    );
    await expectCode(() => configFromHF({ ...json, n_embd: 30 }), "INVALID_CONFIG", /divisible/);
    await expectCode(
      () => configFromHF({ model_type: "mamba" }),
      "UNKNOWN_MODEL_TYPE",
      /"mamba"; supported: bert, gpt2, llama, t5/,
    );
    await expectCode(
      () => resolveConfig({ modelType: "gpt2", numLayrs: 2 } as never),
      "INVALID_CONFIG",
      /unknown config field "numLayrs"/,
    );
    await expectCode(
      () => resolveConfig({ modelType: "gpt2", preset: "gpt5" }),
      "INVALID_CONFIG",
      /unknown preset "gpt5"/,
    );
    expect(supportedModelTypes()).toEqual(["bert", "gpt2", "llama", "t5"]);
    await expectCode(
      () => configFromHF({ model_type: "llama", rope_scaling: { type: "linear", factor: 2 } }),
      "INVALID_CONFIG",
      /rope_scaling = \{"type":"linear","factor":2\} is not supported/,
    );
    await expectCode(
      () => configFromHF({ model_type: "bert", position_embedding_type: "relative_key" }),
      "INVALID_CONFIG",
      /position_embedding_type = "relative_key" is not supported/,
    );
  });
});

describeEachBackend("fromPretrained errors", () => {
  let tmp: string;
  const tensors: Record<string, TensorToWrite> = {};
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), "tf-models-bad-"));
    const r = await openCheckpoint(GPT2);
    for (const n of r.names()) {
      const info = r.info(n);
      tensors[n] = { dtype: info.dtype, shape: info.shape, data: await r.readTyped(n) };
    }
    await r.close();
  });
  afterAll(() => rm(tmp, { recursive: true, force: true }));

  async function variant(name: string, edit: (t: Record<string, TensorToWrite>) => void, config?: object) {
    const dir = path.join(tmp, name);
    const t = { ...tensors };
    edit(t);
    await writeSafetensors(path.join(dir, "model.safetensors"), t).catch(async () => {
      const { mkdir } = await import("node:fs/promises");
      await mkdir(dir, { recursive: true });
      await writeSafetensors(path.join(dir, "model.safetensors"), t);
    });
    if (config) await writeFile(path.join(dir, "config.json"), JSON.stringify(config));
    else await copyFile(path.join(GPT2, "config.json"), path.join(dir, "config.json"));
    return dir;
  }

  it("names missing tensors", async () => {
    const dir = await variant("missing", (t) => {
      delete t["h.1.mlp.c_fc.bias"];
      delete t["ln_f.weight"];
    });
    await expectCode(
      fromPretrained(dir),
      "MISSING_WEIGHTS",
      /lacks 2 tensor\(s\) of gpt2: h\.1\.mlp\.c_fc\.bias, ln_f\.weight/,
    );
  });

  it("names unexpected tensors", async () => {
    const dir = await variant("unexpected", (t) => {
      t["h.7.attn.c_attn.weight"] = t["h.0.attn.c_attn.weight"];
      t["score.weight"] = t["ln_f.weight"];
    });
    await expectCode(
      fromPretrained(dir),
      "UNEXPECTED_WEIGHTS",
      /h\.7\.attn\.c_attn\.weight, score\.weight|score\.weight, h\.7/,
    );
  });

  it("names a shape mismatch", async () => {
    const dir = await variant("shape", (t) => {
      t["wpe.weight"] = { dtype: "F32", shape: [16, 32], data: new Float32Array(16 * 32) };
    });
    await expectCode(
      fromPretrained(dir),
      "SHAPE_MISMATCH",
      /wpe\.weight: expected shape \[32,32\], found \[16,32\]/,
    );
  });

  it("rejects integer weights", async () => {
    const dir = await variant("dtype", (t) => {
      t["ln_f.bias"] = { dtype: "I32", shape: [32], data: new Int32Array(32) };
    });
    await expectCode(fromPretrained(dir), "SAFETENSORS_UNSUPPORTED_DTYPE", /ln_f\.bias has dtype I32/);
  });

  it("accepts the transformer. prefix, BF16 weights and a stored lm_head", async () => {
    const dir = await variant("prefixed", (t) => {
      for (const k of Object.keys(t)) {
        const v = t[k];
        delete t[k];
        t[`transformer.${k}`] = v.dtype === "F32" ? { ...v, dtype: "BF16" } : v;
      }
      t["lm_head.weight"] = tensors["wte.weight"];
    });
    const m = await fromPretrained<CausalLM>(dir);
    const ref = await fromPretrained<CausalLM>(GPT2);
    const ids = tf.tensor2d([[1, 2, 3]], undefined, "int32");
    const a = m.forward(ids).logits;
    const b = ref.forward(ids).logits;
    assertClose(a, b, { atol: 0.5, rtol: 0.05 }); // BF16 keeps ~3 significant digits
    tf.dispose([ids, a, b]);
    m.dispose();
    ref.dispose();
  });

  it("reports a missing config.json and a broken one", async () => {
    await expectCode(fromPretrained(path.join(tmp, "nowhere")), "NOT_FOUND", /no config\.json/);
    const dir = await variant("badjson", () => {});
    await writeFile(path.join(dir, "config.json"), "{ nope");
    await expectCode(fromPretrained(dir), "INVALID_CONFIG", /not valid JSON/);
  });

  it("loads a sharded checkpoint (index + shards)", async () => {
    const ref = await fromPretrained<CausalLM>(GPT2);
    const dir = path.join(tmp, "sharded");
    await ref.save(dir, { maxShardBytes: 40_000 });
    const files = (await import("node:fs/promises")).readdir(dir);
    expect((await files).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(
      1,
    );
    const m = await fromPretrained<CausalLM>(dir);
    for (const [k, v] of ref.namedParameters())
      expect(m.namedParameters().get(k)!.dataSync(), k).toEqual(v.dataSync());
    m.dispose();
    ref.dispose();
  });

  it("loading and disposing leaks nothing", async () => {
    await expectNoLeaks(async () => {
      const m = await fromPretrained(GPT2);
      m.dispose();
    });
    const dir = await variant("leak-missing", (t) => {
      delete t["ln_f.bias"];
    });
    await expectNoLeaks(() => fromPretrained(dir).catch(() => undefined));
  });
});

describeEachBackend("tokenizers and hooks", () => {
  it("fromPretrained attaches tokenizer.json; save writes it back", async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), "tf-models-tok-"));
    try {
      const tok = CharTokenizer.fromText("hello world, typeformer!");
      const model = createModel<CausalLM>(
        { modelType: "gpt2", preset: "micro", vocabSize: tok.vocabSize },
        { seed: 1 },
      );
      model.tokenizer = tok;
      await model.save(path.join(tmp, "a"));
      const loaded = await fromPretrained<CausalLM>(path.join(tmp, "a"));
      expect(loaded.tokenizer?.encode("hello")).toEqual(tok.encode("hello"));
      const bare = await fromPretrained<CausalLM>(path.join(tmp, "a"), { tokenizer: false });
      expect(bare.tokenizer).toBeUndefined();
      for (const m of [model, loaded, bare]) m.dispose();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it("setLinearHook rewrites a dense layer's output (adapters)", () => {
    const model = createModel<CausalLM>({ modelType: "llama", preset: "tiny" }, { seed: 2 });
    const ids = tf.tensor2d([[1, 2, 3]], undefined, "int32");
    const w = model.namedParameters().get("model.layers.1.mlp.down_proj.weight")!;
    const base = model.forward(ids).logits;
    let calls = 0;
    setLinearHook(w, (_x, y) => {
      calls++;
      return tf.mul(y, 0) as tf.Tensor2D;
    });
    const hooked = model.forward(ids).logits;
    setLinearHook(w, null);
    const again = model.forward(ids).logits;
    expect(calls).toBe(1);
    expect(maxAbsDiff(hooked, base)).toBeGreaterThan(1e-3);
    expect(again.dataSync()).toEqual(base.dataSync());
    tf.dispose([ids, base, hooked, again]);
    model.dispose();
  });
});

describeEachBackend("createModel", () => {
  it("builds every architecture from presets, seeded; save → fromPretrained keeps outputs", async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), "tf-models-create-"));
    try {
      const ids = tf.tensor2d([[1, 5, 9, 3]], undefined, "int32");
      for (const modelType of ["gpt2", "llama"]) {
        const a = createModel<CausalLM>({ modelType, preset: "tiny" }, { seed: 7 });
        const b = createModel<CausalLM>({ modelType, preset: "tiny" }, { seed: 7 });
        expect(
          a
            .namedParameters()
            .get(modelType === "gpt2" ? "wte.weight" : "model.embed_tokens.weight")!
            .dataSync(),
        ).toEqual(
          b
            .namedParameters()
            .get(modelType === "gpt2" ? "wte.weight" : "model.embed_tokens.weight")!
            .dataSync(),
        );
        await a.save(path.join(tmp, modelType));
        const c = await fromPretrained<CausalLM>(path.join(tmp, modelType));
        const [x, y] = [a.forward(ids).logits, c.forward(ids).logits];
        expect(x.dataSync()).toEqual(y.dataSync());
        tf.dispose([x, y]);
        for (const m of [a, b, c]) m.dispose();
      }
      // Llama with a tied head (TinyLlama-style small models, Qwen-style): no lm_head tensor on disk
      const tied = createModel<CausalLM>(
        { modelType: "llama", preset: "tiny", tieWordEmbeddings: true },
        { seed: 2 },
      );
      await tied.save(path.join(tmp, "tied"));
      const st = await openCheckpoint(path.join(tmp, "tied"));
      expect(st.has("lm_head.weight")).toBe(false);
      await st.close();
      const tied2 = await fromPretrained<CausalLM>(path.join(tmp, "tied"));
      const [t1, t2] = [tied.forward(ids).logits, tied2.forward(ids).logits];
      expect(t1.dataSync()).toEqual(t2.dataSync());
      tf.dispose([t1, t2]);
      tied.dispose();
      tied2.dispose();
      const bert = createModel<EncoderModel>({ modelType: "bert", preset: "tiny" }, { seed: 1 });
      const e = bert.embed(ids);
      expect(e.shape).toEqual([1, 32]);
      const t5 = createModel<Seq2SeqLM>({ modelType: "t5", preset: "tiny" }, { seed: 1 });
      const { logits } = t5.forward(ids, tf.tensor2d([[0, 4]], undefined, "int32"));
      expect(logits.shape).toEqual([1, 2, 97]);
      tf.dispose([ids, e, logits]);
      bert.dispose();
      t5.dispose();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
