import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { type CheckpointReader, openCheckpoint, TypeformerError, tf } from "@typeformer/core";
import { loadTokenizer } from "@typeformer/tokenizer";
import { transpose2d } from "./base.js";
import { configFromHF, getArchitecture } from "./registry.js";
import type { AnyModel, BaseModelConfig, PreTrainedModel, TokenizerLike } from "./types.js";

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16", "F64"]);

export interface FromPretrainedOptions {
  /**
   * Loads `tokenizer.json` when the directory has one. Default: @typeformer/tokenizer's
   * `loadTokenizer` (replace it with {@link setTokenizerLoader}); `false` skips it.
   */
  tokenizer?: boolean | ((dir: string) => Promise<TokenizerLike>);
}

let defaultTokenizerLoader: ((dir: string) => Promise<TokenizerLike>) | undefined = loadTokenizer;

/** Sets how `fromPretrained` loads tokenizer.json (e.g. @typeformer/tokenizer's `loadTokenizer`). */
export function setTokenizerLoader(loader: ((dir: string) => Promise<TokenizerLike>) | undefined): void {
  defaultTokenizerLoader = loader;
}

function same(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Reads and parses `dir/config.json` into our flat config (typed errors on every failure). */
export async function readConfig(dir: string): Promise<BaseModelConfig> {
  const file = path.join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new TypeformerError(
      "NOT_FOUND",
      `no config.json in ${JSON.stringify(dir)}`,
      { dir, file },
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `${file} is not valid JSON: ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  return configFromHF(json);
}

/**
 * Loads a model saved in Hugging Face layout: `config.json` picks the architecture by `model_type`,
 * `model.safetensors` (or a sharded `model.safetensors.index.json`) holds the weights. Names are
 * mapped (prefixes such as `transformer.`, stored buffers and tied heads ignored), F16/BF16/F64
 * widened to float32, nn.Linear weights transposed to (in, out). Tensors are read one at a time.
 */
export async function fromPretrained<M extends PreTrainedModel = AnyModel>(
  dir: string,
  opts: FromPretrainedOptions = {},
): Promise<M> {
  let config = await readConfig(dir);
  const spec = getArchitecture(config.modelType);
  const reader = await openCheckpoint(dir);
  const loaded = new Map<string, tf.Tensor>();
  try {
    const sourceOf = new Map<string, string>();
    const unexpected: string[] = [];
    for (const name of reader.names()) {
      const mapped = spec.mapCheckpointName(name, config);
      if (mapped === null) continue;
      if (mapped === undefined) unexpected.push(name);
      else sourceOf.set(mapped, name);
    }
    if (spec.adaptToCheckpoint) config = spec.adaptToCheckpoint(config, new Set(sourceOf.keys()));
    const shapes = spec.parameterShapes(config);
    for (const [mapped, name] of sourceOf) if (!shapes.has(mapped)) unexpected.push(name);
    const missing = [...shapes.keys()].filter((n) => !sourceOf.has(n));
    if (missing.length > 0) {
      throw new TypeformerError(
        "MISSING_WEIGHTS",
        `checkpoint in ${JSON.stringify(dir)} lacks ${missing.length} tensor(s) of ${spec.modelType}: ${list(missing)}`,
        { missing, dir },
      );
    }
    if (unexpected.length > 0) {
      throw new TypeformerError(
        "UNEXPECTED_WEIGHTS",
        `checkpoint in ${JSON.stringify(dir)} has ${unexpected.length} tensor(s) ${spec.modelType} does not use: ${list(unexpected)}`,
        { unexpected, dir },
      );
    }
    // check every shape and dtype before reading any data
    for (const [ours, shape] of shapes) {
      const name = sourceOf.get(ours)!;
      const info = reader.info(name);
      const hfShape = spec.hfTranspose(ours, config) ? [shape[1], shape[0]] : shape;
      if (!same(info.shape, hfShape)) {
        throw new TypeformerError(
          "SHAPE_MISMATCH",
          `tensor ${name}: expected shape [${hfShape}], found [${info.shape}]`,
          { name, expected: hfShape, found: info.shape },
        );
      }
      if (!FLOAT_DTYPES.has(info.dtype)) {
        throw new TypeformerError(
          "SAFETENSORS_UNSUPPORTED_DTYPE",
          `tensor ${name} has dtype ${info.dtype}; weights must be F32, F16, BF16 or F64`,
          { name, dtype: info.dtype },
        );
      }
    }
    for (const [ours, shape] of shapes) {
      let data = await reader.readFloat32(sourceOf.get(ours)!);
      if (spec.hfTranspose(ours, config)) data = transpose2d(data, shape[1], shape[0]);
      loaded.set(ours, tf.tensor(data, shape, "float32"));
    }
  } catch (e) {
    for (const t of loaded.values()) t.dispose();
    throw e;
  } finally {
    await closeQuietly(reader);
  }
  let model: PreTrainedModel;
  try {
    model = spec.create(config, (name) => loaded.get(name)!);
  } finally {
    for (const t of loaded.values()) t.dispose(); // the variables keep their own reference
  }
  const loader =
    opts.tokenizer === false
      ? undefined
      : typeof opts.tokenizer === "function"
        ? opts.tokenizer
        : defaultTokenizerLoader;
  if (loader && (await exists(path.join(dir, "tokenizer.json")))) {
    try {
      model.tokenizer = await loader(dir);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return model as M;
}

function list(names: string[], max = 20): string {
  return names.length <= max
    ? names.join(", ")
    : `${names.slice(0, max).join(", ")}, … (${names.length - max} more)`;
}

async function closeQuietly(reader: CheckpointReader): Promise<void> {
  try {
    await reader.close();
  } catch {
    // closing a read-only handle cannot lose data
  }
}
