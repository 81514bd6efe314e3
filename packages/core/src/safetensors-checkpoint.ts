/**
 * Hugging Face checkpoint layout: `model.safetensors`, or shards `model-00001-of-00003.safetensors`
 * plus `model.safetensors.index.json` = `{"metadata": {"total_size": N}, "weight_map": {name: file}}`.
 */
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { TypeformerError } from "./errors.js";
import { ioError, writeFileAtomic } from "./io/atomic.js";
import {
  compareCodePoints,
  SafetensorsFile,
  type SafetensorsTypedArray,
  type TensorInfo,
  type TensorReader,
  type TensorToWrite,
  tensorByteLength,
  writeSafetensors,
} from "./safetensors.js";

export const SAFETENSORS_SINGLE_FILE = "model.safetensors";
export const SAFETENSORS_INDEX_FILE = "model.safetensors.index.json";
/** Default shard size bound, as `save_pretrained`'s "5GB". */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const SHARD_RE = /^model-(\d{5})-of-(\d{5})\.safetensors$/;

export function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, "0");
  return `model-${pad(index)}-of-${pad(count)}.safetensors`;
}

/** A checkpoint opened for reading: one file or several shards behind an index, same methods. */
export class CheckpointReader implements TensorReader {
  private constructor(
    /** The checkpoint directory. */
    readonly dir: string,
    private readonly files: Map<string, SafetensorsFile>,
    private readonly weightMap: Map<string, string>,
    /** Whether the checkpoint is sharded (has an index). */
    readonly sharded: boolean,
    /** The index's `metadata` (e.g. `{total_size}`); empty for a single file. */
    readonly indexMetadata: Record<string, unknown>,
  ) {}

  /** `__metadata__` of the (first) file. */
  get metadata(): Record<string, string> {
    const first = this.files.values().next().value;
    return first ? first.metadata : {};
  }

  /** The safetensors files, relative to {@link dir}. */
  fileNames(): string[] {
    return [...this.files.keys()];
  }

  /** Which file holds `name`. */
  fileOf(name: string): string {
    const f = this.weightMap.get(name);
    if (f === undefined) throw this.notFound(name);
    return f;
  }

  static async open(pathOrDir: string): Promise<CheckpointReader> {
    let dir = pathOrDir;
    let indexPath: string | undefined;
    let singlePath: string | undefined;
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(pathOrDir);
    } catch (e) {
      throw ioError(e, "opening checkpoint", pathOrDir);
    }
    if (st.isDirectory()) {
      if (await exists(path.join(dir, SAFETENSORS_INDEX_FILE)))
        indexPath = path.join(dir, SAFETENSORS_INDEX_FILE);
      else if (await exists(path.join(dir, SAFETENSORS_SINGLE_FILE)))
        singlePath = path.join(dir, SAFETENSORS_SINGLE_FILE);
      else {
        throw new TypeformerError(
          "NOT_FOUND",
          `no ${SAFETENSORS_SINGLE_FILE} or ${SAFETENSORS_INDEX_FILE} in ${JSON.stringify(dir)}`,
          { path: dir },
        );
      }
    } else {
      dir = path.dirname(pathOrDir);
      if (pathOrDir.endsWith(".json")) indexPath = pathOrDir;
      else singlePath = pathOrDir;
    }

    if (singlePath) {
      const file = await SafetensorsFile.open(singlePath);
      const base = path.basename(singlePath);
      return new CheckpointReader(
        dir,
        new Map([[base, file]]),
        new Map(file.names().map((n) => [n, base])),
        false,
        {},
      );
    }

    const ip = indexPath!;
    const { weightMap, metadata } = await readIndex(ip);
    const files = new Map<string, SafetensorsFile>();
    try {
      for (const f of new Set(weightMap.values()))
        files.set(f, await SafetensorsFile.open(path.join(dir, f)));
      for (const [name, f] of weightMap) {
        if (!files.get(f)!.has(name)) {
          throw new TypeformerError(
            "SAFETENSORS_INVALID",
            `${SAFETENSORS_INDEX_FILE} maps ${JSON.stringify(name)} to ${f}, which has no such tensor`,
            { path: ip, tensor: name, file: f },
          );
        }
      }
    } catch (e) {
      await Promise.all([...files.values()].map((f) => f.close().catch(() => {})));
      throw e;
    }
    return new CheckpointReader(dir, files, weightMap, true, metadata);
  }

  /** Tensor names: file order for one file, the index's order for shards. */
  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  private notFound(name: string): TypeformerError {
    return new TypeformerError(
      "NOT_FOUND",
      `tensor ${JSON.stringify(name)} is not in checkpoint ${this.dir}`,
      {
        path: this.dir,
        tensor: name,
      },
    );
  }

  private fileFor(name: string): SafetensorsFile {
    return this.files.get(this.fileOf(name))!;
  }

  info(name: string): TensorInfo {
    return this.fileFor(name).info(name);
  }

  readRaw(name: string): Promise<Uint8Array> {
    return this.fileFor(name).readRaw(name);
  }

  readFloat32(name: string): Promise<Float32Array> {
    return this.fileFor(name).readFloat32(name);
  }

  readTyped(name: string): Promise<SafetensorsTypedArray> {
    return this.fileFor(name).readTyped(name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readIndex(
  indexPath: string,
): Promise<{ weightMap: Map<string, string>; metadata: Record<string, unknown> }> {
  const bad = (what: string, extra: Record<string, unknown> = {}) =>
    new TypeformerError("SAFETENSORS_INVALID", `${indexPath}: ${what}`, { path: indexPath, ...extra });
  let size: number;
  try {
    size = (await stat(indexPath)).size;
  } catch (e) {
    throw ioError(e, "reading", indexPath);
  }
  if (size > 100_000_000) throw bad(`index is ${size} bytes, over the 100 MB limit`, { fileSize: size });
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (e) {
    throw bad(`not valid JSON: ${(e as Error).message}`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
    throw bad("index must be a JSON object");
  const { weight_map: wm, metadata } = parsed as { weight_map?: unknown; metadata?: unknown };
  if (!wm || typeof wm !== "object" || Array.isArray(wm))
    throw bad(`"weight_map" must be an object of file names`);
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(wm)) {
    if (
      typeof file !== "string" ||
      file === "" ||
      path.isAbsolute(file) ||
      file.split(/[\\/]/).includes("..")
    ) {
      throw bad(
        `weight_map[${JSON.stringify(name)}] must be a file name inside the checkpoint; received ${JSON.stringify(file)}`,
        {
          tensor: name,
        },
      );
    }
    weightMap.set(name, file);
  }
  const meta =
    metadata && typeof metadata === "object" && !Array.isArray(metadata)
      ? (metadata as Record<string, unknown>)
      : {};
  return { weightMap, metadata: meta };
}

/** Opens `model.safetensors` or a sharded `model.safetensors.index.json` checkpoint (dir or file path). */
export function openCheckpoint(pathOrDir: string): Promise<CheckpointReader> {
  return CheckpointReader.open(pathOrDir);
}

export interface WriteCheckpointOptions {
  /** Start a new shard when adding a tensor would pass this many bytes (default 5 GB). */
  maxShardBytes?: number;
  /** `__metadata__` for every file (e.g. `{format: "pt"}`). */
  metadata?: Record<string, string>;
}

/**
 * Writes tensors as `dir/model.safetensors`, or — when they exceed `maxShardBytes` — as shards plus
 * `model.safetensors.index.json` (tensors are assigned in the given order, like `save_pretrained`; a
 * tensor larger than the bound gets a shard of its own). Each file is written atomically; files of a
 * previous checkpoint in the other layout (stale index or shards) are removed afterwards.
 */
export async function writeCheckpoint(
  dir: string,
  tensors: Record<string, TensorToWrite>,
  options: WriteCheckpointOptions = {},
): Promise<void> {
  const max = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(max > 0)) {
    throw new TypeformerError("INVALID_ARGUMENT", `maxShardBytes must be positive; received ${max}`, {
      maxShardBytes: max,
    });
  }
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw ioError(e, "creating", dir);
  }
  const shards: Record<string, TensorToWrite>[] = [];
  let current: Record<string, TensorToWrite> = {};
  let currentBytes = 0;
  let total = 0;
  let currentCount = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = tensorByteLength(t);
    if (currentCount > 0 && currentBytes + bytes > max) {
      shards.push(current);
      current = {};
      currentBytes = 0;
      currentCount = 0;
    }
    current[name] = t;
    currentBytes += bytes;
    currentCount++;
    total += bytes;
  }
  shards.push(current);

  const keep = new Set<string>();
  if (shards.length === 1) {
    await writeSafetensors(path.join(dir, SAFETENSORS_SINGLE_FILE), shards[0], options.metadata);
    keep.add(SAFETENSORS_SINGLE_FILE);
  } else {
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < shards.length; i++) {
      const file = shardFileName(i + 1, shards.length);
      await writeSafetensors(path.join(dir, file), shards[i], options.metadata);
      keep.add(file);
      for (const name of Object.keys(shards[i])) weightMap[name] = file;
    }
    await writeFileAtomic(path.join(dir, SAFETENSORS_INDEX_FILE), indexJson(total, weightMap));
    keep.add(SAFETENSORS_INDEX_FILE);
  }
  // remove what a previous save in another layout left behind
  const stale = (await readdir(dir)).filter(
    (f) =>
      !keep.has(f) && (f === SAFETENSORS_SINGLE_FILE || f === SAFETENSORS_INDEX_FILE || SHARD_RE.test(f)),
  );
  await Promise.all(stale.map((f) => rm(path.join(dir, f), { force: true })));
}

/** Python json.dumps(str) with the default ensure_ascii=True. */
function pyString(s: string): string {
  return JSON.stringify(s).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * The index exactly as `save_pretrained` writes it: `json.dumps(index, indent=2, sort_keys=True) + "\n"`
 * (keys in code-point order, non-ASCII escaped).
 */
function indexJson(totalSize: number, weightMap: Record<string, string>): string {
  const names = Object.keys(weightMap).sort(compareCodePoints);
  const entries = names.map((n) => `    ${pyString(n)}: ${pyString(weightMap[n])}`);
  const wm = entries.length ? `{\n${entries.join(",\n")}\n  }` : "{}";
  return `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": ${wm}\n}\n`;
}
