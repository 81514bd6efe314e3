import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import {
  type RandomState,
  SafetensorsFile,
  serializeSafetensors,
  type TensorToWrite,
  TypeformerError,
  tf,
} from "@typeformer/core";
import { nodeIO, type TrainerIO, writeFileAtomic } from "./fs-util.js";
import type { AdamW, OptimizerSnapshot } from "./optimizer.js";
import type { TrainableModel } from "./types.js";

/** Everything besides tensors that an exact resume needs (`trainer-state.json`). */
export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  optimizerStep: number;
  tokensSeen: number;
  elapsedMs: number;
  /** Dropout / objective generator. */
  rng: RandomState;
  /** The training batch source's position (`BatchSource.getState()`). */
  data: unknown;
  bestValLoss: number | null;
  lastValLoss: number | null;
  /** The run's configuration as given by the caller (informational; not interpreted). */
  config?: unknown;
}

export interface CheckpointEntry {
  name: string;
  step: number;
  valLoss: number | null;
}

export interface CheckpointIndex {
  latest: string | null;
  best: CheckpointEntry | null;
  checkpoints: CheckpointEntry[];
}

export interface CheckpointOptions {
  /** Keep this many most recent checkpoints (default 3). The best one is kept in addition. */
  keepLast?: number;
  /** Keep the checkpoint with the lowest validation loss even when it is older (default true). */
  keepBest?: boolean;
  io?: TrainerIO;
}

export const INDEX_FILE = "checkpoints.json";
export const STATE_FILE = "trainer-state.json";
export const TENSORS_FILE = "trainer-state.safetensors";

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, "0")}`;
}

/**
 * Checkpoints of one run under `dir`: `step-XXXXXXXX/` folders holding the model in Hugging Face layout
 * (`model.save`), `trainer-state.safetensors` (parameters in training layout + AdamW moments) and
 * `trainer-state.json`; `checkpoints.json` names the latest and the best. Every folder is written under
 * a temporary name and renamed, then the index is replaced atomically: a crash at any point leaves the
 * previous latest checkpoint intact.
 */
export class CheckpointManager {
  readonly dir: string;
  readonly keepLast: number;
  readonly keepBest: boolean;
  private readonly io: TrainerIO;

  constructor(dir: string, opts: CheckpointOptions = {}) {
    this.dir = dir;
    this.keepLast = opts.keepLast ?? 3;
    this.keepBest = opts.keepBest ?? true;
    this.io = opts.io ?? nodeIO;
    if (!(Number.isInteger(this.keepLast) && this.keepLast >= 1)) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `keepLast must be an integer >= 1; received ${opts.keepLast}`,
        {
          keepLast: opts.keepLast,
        },
      );
    }
  }

  async readIndex(): Promise<CheckpointIndex> {
    try {
      return JSON.parse(await readFile(path.join(this.dir, INDEX_FILE), "utf8")) as CheckpointIndex;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT")
        return { latest: null, best: null, checkpoints: [] };
      throw new TypeformerError(
        "IO_ERROR",
        `cannot read ${path.join(this.dir, INDEX_FILE)}: ${(e as Error).message}`,
        {
          path: this.dir,
        },
      );
    }
  }

  /** Path of the latest complete checkpoint, if any. */
  async latest(): Promise<string | undefined> {
    const idx = await this.readIndex();
    return idx.latest ? path.join(this.dir, idx.latest) : undefined;
  }

  /** Path of the best-by-validation checkpoint, if any. */
  async best(): Promise<string | undefined> {
    const idx = await this.readIndex();
    return idx.best ? path.join(this.dir, idx.best.name) : undefined;
  }

  async save(
    model: TrainableModel,
    optimizer: AdamW,
    state: TrainerState,
  ): Promise<{ path: string; index: CheckpointIndex }> {
    const name = checkpointName(state.step);
    const final = path.join(this.dir, name);
    const tmp = path.join(this.dir, `.tmp-${name}-${process.pid}`);
    try {
      await mkdir(this.dir, { recursive: true });
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      if (model.save) await model.save(tmp);
      // F32 safetensors (core's writer: names sorted, so identical state gives identical bytes); the
      // folder as a whole is the atomic unit, so the file goes through `io` (tests simulate a full disk)
      const tensors: Record<string, TensorToWrite> = {};
      for (const [n, p] of model.namedParameters()) {
        tensors[`param.${n}`] = { dtype: "F32", shape: p.shape, data: (await p.data()) as Float32Array };
      }
      const snap = await optimizer.snapshot();
      for (const [n, t] of snap.tensors) tensors[n] = { dtype: "F32", shape: t.shape, data: t.data };
      await this.io.writeFile(
        path.join(tmp, TENSORS_FILE),
        serializeSafetensors(tensors, { format: "typeformer-trainer", step: String(state.step) }),
      );
      await this.io.writeFile(path.join(tmp, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
      await rm(final, { recursive: true, force: true });
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true }).catch(() => {});
      const err = e as NodeJS.ErrnoException;
      const hint = err.code === "ENOSPC" ? " (no space left on the device)" : "";
      throw new TypeformerError(
        "IO_ERROR",
        `writing checkpoint ${final} failed${hint}: ${err.message}; the previous checkpoint is intact`,
        { path: final, step: state.step, errno: err.code },
        { cause: e },
      );
    }
    const idx = await this.readIndex();
    const entry: CheckpointEntry = { name, step: state.step, valLoss: state.lastValLoss };
    idx.checkpoints = idx.checkpoints.filter((c) => c.name !== name && c.step < state.step);
    idx.checkpoints.push(entry);
    idx.latest = name;
    if (idx.best && idx.best.step >= state.step) idx.best = null;
    if (entry.valLoss !== null && (idx.best === null || entry.valLoss < (idx.best.valLoss ?? Infinity))) {
      idx.best = entry;
    }
    const keep = new Set(idx.checkpoints.slice(-this.keepLast).map((c) => c.name));
    if (this.keepBest && idx.best) keep.add(idx.best.name);
    const removed = idx.checkpoints.filter((c) => !keep.has(c.name));
    idx.checkpoints = idx.checkpoints.filter((c) => keep.has(c.name));
    await writeFileAtomic(path.join(this.dir, INDEX_FILE), `${JSON.stringify(idx, null, 2)}\n`, this.io);
    for (const r of removed) await rm(path.join(this.dir, r.name), { recursive: true, force: true });
    // leftovers from killed writers
    for (const f of await readdir(this.dir)) {
      if (f.startsWith(".tmp-") && !f.endsWith(`-${process.pid}`)) {
        await rm(path.join(this.dir, f), { recursive: true, force: true }).catch(() => {});
      }
    }
    return { path: final, index: idx };
  }

  /**
   * Loads a checkpoint folder into `model`'s variables and `optimizer`'s moments, returning the state.
   */
  async restore(dir: string, model: TrainableModel, optimizer: AdamW): Promise<TrainerState> {
    try {
      await stat(dir);
    } catch {
      throw new TypeformerError("NOT_FOUND", `checkpoint ${dir} does not exist`, { path: dir });
    }
    const state = JSON.parse(await readFile(path.join(dir, STATE_FILE), "utf8")) as TrainerState;
    const tensors = await readTensors(path.join(dir, TENSORS_FILE));
    for (const [n, p] of model.namedParameters()) {
      const t = tensors.get(`param.${n}`);
      if (!t) {
        throw new TypeformerError(
          "MISSING_WEIGHTS",
          `checkpoint ${dir} lacks parameter ${JSON.stringify(n)}`,
          {
            name: n,
          },
        );
      }
      if (t.shape.join(",") !== p.shape.join(",")) {
        throw new TypeformerError(
          "SHAPE_MISMATCH",
          `checkpoint parameter ${n} has shape [${t.shape}], the model's is [${p.shape}]`,
          { name: n, shape: t.shape, expected: p.shape },
        );
      }
      tf.tidy(() => p.assign(tf.tensor(t.data, t.shape, "float32")));
    }
    const snap: OptimizerSnapshot = { step: state.optimizerStep, tensors };
    optimizer.restore(snap);
    return state;
  }
}

/** Every tensor of a `trainer-state.safetensors` file as float32 (core's validating reader). */
async function readTensors(file: string): Promise<OptimizerSnapshot["tensors"]> {
  const f = await SafetensorsFile.open(file);
  try {
    const tensors: OptimizerSnapshot["tensors"] = new Map();
    for (const t of f.tensors()) tensors.set(t.name, { shape: t.shape, data: await f.readFloat32(t.name) });
    return tensors;
  } finally {
    await f.close();
  }
}
