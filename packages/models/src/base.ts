import { mkdir } from "node:fs/promises";
import path from "node:path";
import { type TensorToWrite, TypeformerError, tf, writeCheckpoint, writeFileAtomic } from "@typeformer/core";
import { configToHF } from "./registry.js";
import type {
  ArchitectureSpec,
  BaseModelConfig,
  ModelFamily,
  ParameterSource,
  PreTrainedModel,
  SaveOptions,
  TokenizerLike,
} from "./types.js";

let variableCounter = 0;

/** Transposes a row-major (rows, cols) matrix into a new (cols, rows) one. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c];
  }
  return out;
}

/**
 * What every architecture shares: parameters as tf.Variables keyed by HF name, `save` in HF layout,
 * `dispose`. Subclasses add the forward pass.
 */
export abstract class BaseModel<C extends BaseModelConfig> implements PreTrainedModel<C> {
  readonly modelType: string;
  abstract readonly family: ModelFamily;
  readonly config: Readonly<C>;
  tokenizer?: TokenizerLike;
  protected readonly params = new Map<string, tf.Variable>();
  private disposed = false;

  constructor(
    protected readonly spec: ArchitectureSpec<C>,
    config: C,
    values: ParameterSource,
  ) {
    this.modelType = spec.modelType;
    this.config = Object.freeze({ ...config });
    try {
      for (const [name, shape] of spec.parameterShapes(config)) {
        const data = values(name, shape);
        const init = data instanceof tf.Tensor ? data : tf.tensor(data, shape, "float32");
        this.params.set(name, tf.variable(init, true, `${name}#${++variableCounter}`));
        init.dispose();
      }
    } catch (e) {
      for (const v of this.params.values()) v.dispose();
      throw e;
    }
  }

  /** The variable for an HF parameter name. */
  protected p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new TypeformerError("NOT_FOUND", `no parameter ${JSON.stringify(name)}`, { name });
    return v;
  }

  namedParameters(): Map<string, tf.Variable> {
    this.assertLive();
    return new Map(this.params);
  }

  /** The parameters as HF tensors: name → {shape, data} in HF orientation (copies). */
  hfTensors(): Map<string, { shape: number[]; data: Float32Array }> {
    this.assertLive();
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.params) {
      let data = v.dataSync() as Float32Array;
      let shape: number[] = v.shape;
      if (this.spec.hfTranspose(name, this.config as C)) {
        const [rows, cols] = shape as [number, number];
        data = transpose2d(data, rows, cols);
        shape = [cols, rows];
      } else {
        data = data.slice();
      }
      out.set(name, { shape, data });
    }
    return out;
  }

  async save(dir: string, opts: SaveOptions = {}): Promise<void> {
    this.assertLive();
    const dtype = opts.dtype ?? "F32";
    await mkdir(dir, { recursive: true });
    const tensors: Record<string, TensorToWrite> = {};
    for (const [name, t] of this.hfTensors()) tensors[name] = { dtype, shape: t.shape, data: t.data };
    await writeCheckpoint(dir, tensors, {
      maxShardBytes: opts.maxShardBytes,
      metadata: { format: "pt", ...(opts.metadata ?? {}) },
    });
    const hf = { ...configToHF(this.config as C), torch_dtype: dtype === "F16" ? "float16" : "float32" };
    await writeFileAtomic(path.join(dir, "config.json"), `${JSON.stringify(sortKeys(hf), null, 2)}\n`);
    if (this.tokenizer) await this.tokenizer.save(dir);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.disposeCaches();
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }

  /** Subclasses free derived tensors (e.g. transposed tied heads) here. */
  protected disposeCaches(): void {}

  protected assertLive(): void {
    if (this.disposed)
      throw new TypeformerError("INVALID_ARGUMENT", `this ${this.modelType} model was disposed`, {});
  }
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k];
  return out;
}
