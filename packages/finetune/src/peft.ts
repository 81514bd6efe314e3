/**
 * Adapters in PEFT's on-disk layout, so they move between Typeformer and Python `peft`:
 * `adapter_config.json` (PEFT's LoraConfig keys) and `adapter_model.safetensors` with tensors named
 * `base_model.model.<module>.lora_A.weight` (r, in) and `...lora_B.weight` (out, r) — PEFT's nn.Linear
 * orientation, also for GPT-2's Conv1D layers (`fan_in_fan_out: true` only changes how PEFT applies
 * them). modules_to_save parameters are stored as `base_model.model.<module>.<weight|bias>`.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  SafetensorsFile,
  type TensorToWrite,
  TypeformerError,
  tf,
  writeFileAtomic,
  writeSafetensors,
} from "@typeformer/core";
import { getArchitecture } from "@typeformer/models";
import { z } from "zod";
import { fanInFanOut, hfModuleName, type LoraAdapter, type LoraModel } from "./lora.js";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

const TASK_TYPE: Record<string, string> = {
  decoder: "CAUSAL_LM",
  encoder: "SEQ_CLS",
  "encoder-decoder": "SEQ_2_SEQ_LM",
};

/** Whether HF stores this parameter transposed relative to Typeformer (nn.Linear weights). */
function hfTransposed(lora: LoraModel, param: string): boolean {
  return getArchitecture(lora.modelType).hfTranspose(param, lora.base.config);
}

/** PEFT's adapter_config.json for a LoRA adapter. */
export function peftConfig(lora: LoraModel, adapter: LoraAdapter): Record<string, unknown> {
  const c = adapter.config;
  const family = lora.base.family;
  const hasClassifier = lora.base.namedParameters().has("classifier.weight");
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: lora.opts.baseModelNameOrPath ?? null,
    bias: "none",
    fan_in_fan_out: fanInFanOut(lora.modelType),
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    modules_to_save: c.modulesToSave.length > 0 ? c.modulesToSave : null,
    peft_type: "LORA",
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: c.targetModules,
    task_type: family === "encoder" && !hasClassifier ? "FEATURE_EXTRACTION" : TASK_TYPE[family],
    use_dora: false,
    use_rslora: c.useRslora,
  };
}

/** The adapter's tensors in PEFT's names and orientation. */
export function peftTensors(lora: LoraModel, adapter: LoraAdapter): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const l of adapter.layers.values()) {
    const a = tf.tidy(() => tf.transpose(l.A)); // (r, in)
    const b = tf.tidy(() => tf.transpose(l.B)); // (out, r)
    out[`base_model.model.${l.module}.lora_A.weight`] = {
      dtype: "F32",
      shape: a.shape,
      data: a.dataSync() as Float32Array,
    };
    out[`base_model.model.${l.module}.lora_B.weight`] = {
      dtype: "F32",
      shape: b.shape,
      data: b.dataSync() as Float32Array,
    };
    a.dispose();
    b.dispose();
  }
  const params = lora.base.namedParameters();
  for (const n of adapter.extra) {
    const v = params.get(n)!;
    // modules_to_save hold HF orientation: nn.Linear weights (out, in)
    const t = hfTransposed(lora, n) ? tf.tidy(() => tf.transpose(v)) : v.clone();
    out[`base_model.model.${hfModuleName(lora.modelType, n)}.${n.split(".").pop()}`] = {
      dtype: "F32",
      shape: t.shape,
      data: t.dataSync() as Float32Array,
    };
    t.dispose();
  }
  return out;
}

/** Writes `adapter_config.json` + `adapter_model.safetensors` for an adapter (default: the active one). */
export async function saveAdapter(lora: LoraModel, dir: string, name = lora.activeAdapter): Promise<void> {
  if (!name)
    throw new TypeformerError("INVALID_ARGUMENT", "saveAdapter: no active adapter and no name given", {});
  const adapter = lora.adapters.get(name);
  if (!adapter) throw new TypeformerError("NOT_FOUND", `no adapter ${JSON.stringify(name)}`, { name });
  const { mkdir } = await import("node:fs/promises");
  await mkdir(dir, { recursive: true });
  await writeSafetensors(path.join(dir, ADAPTER_WEIGHTS_FILE), peftTensors(lora, adapter), { format: "pt" });
  await writeFileAtomic(
    path.join(dir, ADAPTER_CONFIG_FILE),
    `${JSON.stringify(peftConfig(lora, adapter), null, 2)}\n`,
  );
}

const adapterConfigSchema = z.object({
  peft_type: z.literal("LORA"),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  lora_dropout: z.number().min(0).lt(1).default(0),
  target_modules: z.union([z.array(z.string()).nonempty(), z.string().min(1)]),
  use_rslora: z.boolean().default(false),
  modules_to_save: z.array(z.string()).nullable().optional(),
  bias: z.string().default("none"),
  fan_in_fan_out: z.boolean().optional(),
  use_dora: z.boolean().optional(),
  rank_pattern: z.record(z.unknown()).optional(),
  alpha_pattern: z.record(z.unknown()).optional(),
});

/** Reads and validates a PEFT adapter_config.json. */
export async function readAdapterConfig(dir: string): Promise<z.infer<typeof adapterConfigSchema>> {
  const file = path.join(dir, ADAPTER_CONFIG_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new TypeformerError("IO_ERROR", `cannot read ${file}: ${(e as Error).message}`, { path: file });
  }
  const r = adapterConfigSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new TypeformerError("INVALID_CONFIG", `${file}: ${i.path.join(".") || "(root)"}: ${i.message}`, {
      path: file,
      issues: r.error.issues,
    });
  }
  const c = r.data;
  const unsupported: string[] = [];
  if (c.bias !== "none") unsupported.push(`bias ${JSON.stringify(c.bias)}`);
  if (c.use_dora) unsupported.push("use_dora");
  if (c.rank_pattern && Object.keys(c.rank_pattern).length > 0) unsupported.push("rank_pattern");
  if (c.alpha_pattern && Object.keys(c.alpha_pattern).length > 0) unsupported.push("alpha_pattern");
  if (unsupported.length > 0) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `${file}: unsupported LoRA options: ${unsupported.join(", ")}`,
      {
        path: file,
      },
    );
  }
  return c;
}

/**
 * Loads a PEFT LoRA adapter from `dir` as adapter `name` and makes it active. Every tensor must match a
 * layer (names and shapes checked; missing and unexpected tensors are listed in the error).
 */
export async function loadAdapter(lora: LoraModel, dir: string, name = "default"): Promise<LoraAdapter> {
  const c = await readAdapterConfig(dir);
  const file = await SafetensorsFile.open(path.join(dir, ADAPTER_WEIGHTS_FILE));
  try {
    const adapter = lora.addAdapter(name, {
      r: c.r,
      alpha: c.lora_alpha,
      dropout: c.lora_dropout,
      targetModules: c.target_modules,
      useRslora: c.use_rslora,
      modulesToSave: c.modules_to_save ?? undefined,
    });
    try {
      const expected = new Map<string, { v: tf.Variable; shape: number[]; transpose: boolean }>();
      for (const l of adapter.layers.values()) {
        const [inF, r] = l.A.shape;
        const outF = l.B.shape[1] as number;
        expected.set(`base_model.model.${l.module}.lora_A.weight`, {
          v: l.A,
          shape: [r, inF],
          transpose: true,
        });
        expected.set(`base_model.model.${l.module}.lora_B.weight`, {
          v: l.B,
          shape: [outF, r],
          transpose: true,
        });
      }
      const params = lora.base.namedParameters();
      for (const n of adapter.extra) {
        const v = params.get(n)!;
        const t = hfTransposed(lora, n);
        expected.set(`base_model.model.${hfModuleName(lora.modelType, n)}.${n.split(".").pop()}`, {
          v,
          shape: t ? [...v.shape].reverse() : v.shape,
          transpose: t,
        });
      }
      const names = file.names().filter((n) => n !== "__metadata__");
      const unexpected = names.filter((n) => !expected.has(n));
      const missing = [...expected.keys()].filter((n) => !names.includes(n));
      if (unexpected.length > 0) {
        throw new TypeformerError(
          "UNEXPECTED_WEIGHTS",
          `${dir}: adapter tensors match no layer of this ${lora.modelType} model: ${unexpected.slice(0, 8).join(", ")}`,
          { unexpected },
        );
      }
      if (missing.length > 0) {
        throw new TypeformerError(
          "MISSING_WEIGHTS",
          `${dir}: adapter lacks tensors: ${missing.slice(0, 8).join(", ")}`,
          {
            missing,
          },
        );
      }
      for (const [n, e] of expected) {
        const info = file.info(n);
        if (info.shape.join(",") !== e.shape.join(",")) {
          throw new TypeformerError(
            "SHAPE_MISMATCH",
            `${dir}: ${n} has shape [${info.shape}], expected [${e.shape}]`,
            { name: n, shape: info.shape, expected: e.shape },
          );
        }
        const data = await file.readFloat32(n);
        tf.tidy(() => {
          const t = tf.tensor(data, e.shape, "float32");
          e.v.assign(e.transpose ? tf.transpose(t) : t);
        });
      }
      return adapter;
    } catch (err) {
      lora.deleteAdapter(name);
      throw err;
    }
  } finally {
    await file.close();
  }
}
