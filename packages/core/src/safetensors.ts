/**
 * safetensors read/write (https://github.com/huggingface/safetensors), streaming from disk.
 *
 * Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON header, then the data section.
 * The reader parses the header from a bounded read and validates it the way the reference Rust
 * implementation does (see `validateHeader`); tensors are then read by positioned reads, so a large
 * file is never loaded whole, never turned into a string and never read twice.
 */
import { type FileHandle, open } from "node:fs/promises";
import { TypeformerError } from "./errors.js";
import { ioError, withAtomicFile } from "./io/atomic.js";
import {
  bfloat16ArrayToFloat32,
  float16ArrayToFloat32,
  float32ArrayToBfloat16,
  float32ArrayToFloat16,
  isSafetensorsDtype,
  SAFETENSORS_DTYPE_ORDER,
  SAFETENSORS_DTYPE_SIZE,
  type SafetensorsDtype,
} from "./safetensors-dtypes.js";
import {
  JsonNumber,
  JsonObject,
  JsonSyntaxError,
  type JsonValue,
  parseJsonStrict,
} from "./safetensors-json.js";

/** Headers larger than this are rejected before anything is allocated (same bound as the reference). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) byte offsets inside the data section (after the 8 + N header bytes). */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** Tensors in data-offset order. */
  tensors: TensorInfo[];
}

/** What {@link SafetensorsFile.readTyped} returns per dtype. F16/BF16 come back as raw bits. */
export type SafetensorsTypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

/** The methods shared by a single safetensors file and a (sharded) checkpoint. */
export interface TensorReader {
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  readRaw(name: string): Promise<Uint8Array>;
  readFloat32(name: string): Promise<Float32Array>;
  readTyped(name: string): Promise<SafetensorsTypedArray>;
  close(): Promise<void>;
}

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function invalid(message: string, details: Record<string, unknown>): TypeformerError {
  return new TypeformerError("SAFETENSORS_INVALID", message, details);
}

function shapeElements(shape: number[]): bigint {
  let n = 1n;
  for (const d of shape) n *= BigInt(d);
  return n;
}

/**
 * Parses and validates a header (the N bytes after the length prefix) for a data section of
 * `dataLength` bytes. Checks, like the reference implementation: valid UTF-8; starts with `{`; valid
 * JSON object; no duplicate keys (anywhere); `__metadata__` maps strings to strings; each tensor has a
 * known dtype, a shape of non-negative integers and two integer offsets; sorted by offsets, tensors
 * are contiguous from 0 (no gaps, no overlaps), end ≥ begin, byte length = dtype size × elements; and
 * the last end equals the data section length.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  file?: string,
): SafetensorsHeader {
  const where = file ? { path: file } : {};
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw invalid(`safetensors header is not valid UTF-8${file ? ` in ${file}` : ""}`, {
      ...where,
      reason: "InvalidHeader",
    });
  }
  if (!text.startsWith("{")) {
    throw invalid(
      `safetensors header must start with '{'; it starts with ${JSON.stringify(text.slice(0, 16))}`,
      { ...where, reason: "InvalidHeaderStart" },
    );
  }
  let root: JsonValue;
  try {
    root = parseJsonStrict(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) {
      if (e.kind === "duplicate") {
        throw invalid(`safetensors header has a duplicate entry ${JSON.stringify(e.key)}`, {
          ...where,
          reason: "DuplicateKey",
          tensor: e.key,
          position: e.position,
        });
      }
      throw invalid(`safetensors header is not valid JSON: ${e.message}`, {
        ...where,
        reason: "InvalidHeaderDeserialization",
        position: e.position,
      });
    }
    throw e;
  }
  if (!(root instanceof JsonObject)) {
    throw invalid("safetensors header must be a JSON object", {
      ...where,
      reason: "InvalidHeaderDeserialization",
    });
  }
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, value] of root.entries) {
    if (name === "__metadata__") {
      if (value === null) continue;
      if (!(value instanceof JsonObject)) {
        throw invalid("safetensors __metadata__ must be an object of strings", {
          ...where,
          reason: "InvalidMetadata",
        });
      }
      for (const [k, v] of value.entries) {
        if (typeof v !== "string") {
          throw invalid(
            `safetensors __metadata__ values must be strings; ${JSON.stringify(k)} is ${describeJson(v)}`,
            { ...where, reason: "InvalidMetadata", key: k },
          );
        }
        // defineProperty: a key named "__proto__" stays a plain key
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    tensors.push(parseTensorInfo(name, value, where));
  }
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let start = 0;
  for (const t of tensors) {
    const [s, e] = t.dataOffsets;
    if (s !== start || e < s) {
      const problem =
        e < s
          ? `ends (${e}) before it begins (${s})`
          : s > start
            ? `begins at ${s} but the previous tensor ends at ${start} (a gap)`
            : `begins at ${s}, inside the previous tensor which ends at ${start} (an overlap)`;
      throw invalid(`safetensors tensor ${JSON.stringify(t.name)} ${problem}`, {
        ...where,
        reason: "InvalidOffset",
        tensor: t.name,
        dataOffsets: [s, e],
        expectedBegin: start,
      });
    }
    start = e;
    const expected = shapeElements(t.shape) * BigInt(SAFETENSORS_DTYPE_SIZE[t.dtype]);
    if (expected !== BigInt(e - s)) {
      throw invalid(
        `safetensors tensor ${JSON.stringify(t.name)}: ${t.dtype} shape [${t.shape.join(", ")}] needs ${expected} bytes but its offsets [${s}, ${e}] span ${e - s}`,
        {
          ...where,
          reason: "TensorInvalidInfo",
          tensor: t.name,
          dtype: t.dtype,
          shape: t.shape,
          expectedBytes: Number(expected),
          actualBytes: e - s,
        },
      );
    }
  }
  if (start !== dataLength) {
    throw invalid(
      `safetensors data section is ${dataLength} bytes but the tensors cover ${start}${start > dataLength ? " (the file is truncated)" : " (trailing bytes)"}`,
      { ...where, reason: "MetadataIncompleteBuffer", dataLength, coveredBytes: start },
    );
  }
  return { metadata, tensors };
}

function describeJson(v: JsonValue): string {
  if (v === null) return "null";
  if (v instanceof JsonNumber) return `the number ${v.raw}`;
  if (v instanceof JsonObject) return "an object";
  if (Array.isArray(v)) return "an array";
  return typeof v === "string" ? `the string ${JSON.stringify(v.slice(0, 40))}` : `the value ${v}`;
}

function parseTensorInfo(name: string, value: JsonValue, where: Record<string, unknown>): TensorInfo {
  const bad = (what: string, extra: Record<string, unknown> = {}) =>
    invalid(`safetensors tensor ${JSON.stringify(name)}: ${what}`, {
      ...where,
      reason: "TensorInvalidInfo",
      tensor: name,
      ...extra,
    });
  if (!(value instanceof JsonObject)) throw bad(`entry must be an object, got ${describeJson(value)}`);
  const dtype = value.get("dtype");
  if (typeof dtype !== "string") throw bad(`"dtype" must be a string, got ${describeJson(dtype ?? null)}`);
  if (!isSafetensorsDtype(dtype)) {
    throw new TypeformerError(
      "SAFETENSORS_UNSUPPORTED_DTYPE",
      `safetensors tensor ${JSON.stringify(name)} has unknown dtype ${JSON.stringify(dtype)}; known: ${SAFETENSORS_DTYPE_ORDER.join(", ")}`,
      { ...where, tensor: name, dtype },
    );
  }
  const shapeV = value.get("shape");
  if (!Array.isArray(shapeV)) throw bad(`"shape" must be an array, got ${describeJson(shapeV ?? null)}`);
  const shape: number[] = [];
  for (const d of shapeV) {
    const n = d instanceof JsonNumber ? d.asIndex() : undefined;
    if (n === undefined) {
      throw bad(`shape entries must be non-negative integers, got ${describeJson(d)}`, {
        reason:
          d instanceof JsonNumber && /^[0-9]+$/.test(d.raw) ? "ValidationOverflow" : "TensorInvalidInfo",
      });
    }
    shape.push(n);
  }
  const offV = value.get("data_offsets");
  if (!Array.isArray(offV) || offV.length !== 2) {
    throw bad(`"data_offsets" must be an array of two integers, got ${describeJson(offV ?? null)}`);
  }
  const offs: number[] = [];
  for (const o of offV) {
    const n = o instanceof JsonNumber ? o.asIndex() : undefined;
    if (n === undefined) {
      throw bad(`"data_offsets" entries must be non-negative integers, got ${describeJson(o)}`, {
        reason: "InvalidOffset",
      });
    }
    offs.push(n);
  }
  return { name, dtype, shape, dataOffsets: [offs[0], offs[1]] };
}

async function readFully(fh: FileHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const len = Math.min(target.length - done, 1 << 30);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(target, done, len, position + done));
    } catch (e) {
      throw ioError(e, "reading", file);
    }
    if (bytesRead === 0) {
      throw invalid(
        `${JSON.stringify(file)} ended after ${position + done} bytes while reading ${target.length} bytes at ${position}`,
        { path: file, reason: "Truncated", position, length: target.length },
      );
    }
    done += bytesRead;
  }
}

/** A safetensors file opened for streaming reads. The header is validated on open. */
export class SafetensorsFile implements TensorReader {
  readonly metadata: Record<string, string>;
  /** Byte position of the data section in the file (8 + header length). */
  readonly dataStart: number;
  /** Total file size in bytes. */
  readonly byteLength: number;
  private readonly byName: Map<string, TensorInfo>;
  private readonly ordered: TensorInfo[];
  private fh: FileHandle | undefined;

  private constructor(
    readonly path: string,
    fh: FileHandle,
    header: SafetensorsHeader,
    dataStart: number,
    byteLength: number,
  ) {
    this.fh = fh;
    this.metadata = header.metadata;
    this.ordered = header.tensors;
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
    this.dataStart = dataStart;
    this.byteLength = byteLength;
  }

  /** Opens and validates `path`; throws `SAFETENSORS_INVALID` / `SAFETENSORS_UNSUPPORTED_DTYPE`. */
  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (e) {
      throw ioError(e, "opening", path);
    }
    try {
      const size = (await fh.stat()).size;
      if (size < 8) {
        throw invalid(`${JSON.stringify(path)} is ${size} bytes, smaller than the 8-byte header length`, {
          path,
          reason: "HeaderTooSmall",
          fileSize: size,
        });
      }
      const prefix = new Uint8Array(8);
      await readFully(fh, prefix, 0, path);
      const n64 = new DataView(prefix.buffer).getBigUint64(0, true);
      if (n64 > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
        throw invalid(
          `${JSON.stringify(path)}: header length ${n64} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`,
          {
            path,
            reason: "HeaderTooLarge",
            headerLength: n64.toString(),
            limit: SAFETENSORS_MAX_HEADER_BYTES,
          },
        );
      }
      const n = Number(n64);
      if (8 + n > size) {
        throw invalid(
          `${JSON.stringify(path)}: header length ${n} runs past the end of the ${size}-byte file`,
          {
            path,
            reason: "InvalidHeaderLength",
            headerLength: n,
            fileSize: size,
          },
        );
      }
      const headerBytes = new Uint8Array(n);
      await readFully(fh, headerBytes, 8, path);
      const header = parseSafetensorsHeader(headerBytes, size - 8 - n, path);
      return new SafetensorsFile(path, fh, header, 8 + n, size);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e instanceof TypeformerError ? e : ioError(e, "reading", path);
    }
  }

  /** Tensor names in data-offset order. */
  names(): string[] {
    return this.ordered.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Tensors in data-offset order. */
  tensors(): TensorInfo[] {
    return this.ordered.map((t) => this.copyInfo(t));
  }

  info(name: string): TensorInfo {
    return this.copyInfo(this.get(name));
  }

  private copyInfo(t: TensorInfo): TensorInfo {
    return {
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      dataOffsets: [t.dataOffsets[0], t.dataOffsets[1]],
    };
  }

  private get(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) {
      throw new TypeformerError("NOT_FOUND", `tensor ${JSON.stringify(name)} is not in ${this.path}`, {
        path: this.path,
        tensor: name,
        available: this.ordered.length,
      });
    }
    return t;
  }

  private handle(): FileHandle {
    if (!this.fh) {
      throw new TypeformerError("INVALID_ARGUMENT", `${this.path} was closed`, { path: this.path });
    }
    return this.fh;
  }

  /** Reads `info`'s bytes into a fresh, 8-byte aligned buffer. */
  private async readInto(t: TensorInfo): Promise<ArrayBuffer> {
    const [s, e] = t.dataOffsets;
    const buf = new ArrayBuffer(e - s);
    await readFully(this.handle(), new Uint8Array(buf), this.dataStart + s, this.path);
    return buf;
  }

  /** The tensor's exact bytes (little-endian, C order). */
  async readRaw(name: string): Promise<Uint8Array> {
    return new Uint8Array(await this.readInto(this.get(name)));
  }

  /**
   * The tensor in its natural typed array: Float32Array, Float64Array, Int32Array, BigInt64Array,
   * Int16Array, Int8Array, Uint8Array (U8, BOOL), Uint16Array (U16, and the raw bits of F16/BF16),
   * Uint32Array, BigUint64Array.
   */
  async readTyped(name: string): Promise<SafetensorsTypedArray> {
    const t = this.get(name);
    const ctor = typedArrayFor(t.dtype);
    if (!ctor) throw unsupported(t, this.path, "readTyped");
    requireLittleEndian();
    return new ctor(await this.readInto(t));
  }

  /** The tensor as float32: F16/BF16 widened exactly, F64 rounded, integers and BOOL converted. */
  async readFloat32(name: string): Promise<Float32Array> {
    const t = this.get(name);
    requireLittleEndian();
    if (t.dtype === "F32") return new Float32Array(await this.readInto(t));
    const ctor = typedArrayFor(t.dtype);
    if (!ctor) throw unsupported(t, this.path, "readFloat32");
    const typed = new ctor(await this.readInto(t));
    if (t.dtype === "F16") return float16ArrayToFloat32(typed as Uint16Array);
    if (t.dtype === "BF16") return bfloat16ArrayToFloat32(typed as Uint16Array);
    const out = new Float32Array(typed.length);
    if (typed instanceof BigInt64Array || typed instanceof BigUint64Array) {
      for (let i = 0; i < typed.length; i++) out[i] = Number(typed[i]);
    } else {
      out.set(typed as Exclude<SafetensorsTypedArray, BigInt64Array | BigUint64Array>);
    }
    return out;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

type TypedCtor = new (buf: ArrayBuffer) => SafetensorsTypedArray;

function typedArrayFor(dtype: SafetensorsDtype): TypedCtor | undefined {
  switch (dtype) {
    case "F32":
      return Float32Array;
    case "F64":
      return Float64Array;
    case "F16":
    case "BF16":
    case "U16":
      return Uint16Array;
    case "I64":
      return BigInt64Array;
    case "U64":
      return BigUint64Array;
    case "I32":
      return Int32Array;
    case "U32":
      return Uint32Array;
    case "I16":
      return Int16Array;
    case "I8":
      return Int8Array;
    case "U8":
    case "BOOL":
      return Uint8Array;
    default:
      return undefined;
  }
}

function unsupported(t: TensorInfo, file: string, op: string): TypeformerError {
  return new TypeformerError(
    "SAFETENSORS_UNSUPPORTED_DTYPE",
    `${op} does not support dtype ${t.dtype} (tensor ${JSON.stringify(t.name)}); use readRaw`,
    { path: file, tensor: t.name, dtype: t.dtype },
  );
}

function requireLittleEndian(): void {
  if (!IS_LITTLE_ENDIAN) {
    throw new TypeformerError(
      "SAFETENSORS_UNSUPPORTED_DTYPE",
      "safetensors typed I/O needs a little-endian host",
      {},
    );
  }
}

// ───────────────────────────── writing ─────────────────────────────

/**
 * A tensor to write. `data` is a Float32Array for F32, or for F16 / BF16 / F64 (converted: round to
 * nearest even for F16/BF16). Any dtype can also be written from its own typed array (raw, bit-exact):
 * Float64Array (F64), Uint16Array (F16/BF16 bits, U16), BigInt64Array (I64), Int32Array (I32),
 * Int16Array (I16), Int8Array (I8), Uint8Array (U8, BOOL, F8_*), Uint32Array (U32), BigUint64Array (U64).
 */
export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | SafetensorsTypedArray;
}

const RAW_ARRAY: Record<SafetensorsDtype, string[]> = {
  F32: ["Float32Array"],
  F16: ["Float32Array", "Uint16Array"],
  BF16: ["Float32Array", "Uint16Array"],
  F64: ["Float32Array", "Float64Array"],
  I64: ["BigInt64Array"],
  U64: ["BigUint64Array"],
  I32: ["Int32Array"],
  U32: ["Uint32Array"],
  I16: ["Int16Array"],
  U16: ["Uint16Array"],
  I8: ["Int8Array"],
  U8: ["Uint8Array"],
  BOOL: ["Uint8Array"],
  F8_E5M2: ["Uint8Array"],
  F8_E4M3: ["Uint8Array"],
};

interface PreparedTensor {
  name: string;
  tensor: TensorToWrite;
  nbytes: number;
}

/** Compares strings by UTF-8 bytes (= code points), the order Rust's `String` comparison uses. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function prepareTensors(tensors: Record<string, TensorToWrite>): PreparedTensor[] {
  const out: PreparedTensor[] = [];
  for (const [name, tensor] of Object.entries(tensors)) {
    const fail = (what: string) =>
      new TypeformerError("INVALID_ARGUMENT", `tensor ${JSON.stringify(name)}: ${what}`, { tensor: name });
    if (name === "__metadata__") throw fail(`"__metadata__" is reserved and cannot name a tensor`);
    if (!tensor || typeof tensor !== "object") throw fail("must be {dtype, shape, data}");
    if (!isSafetensorsDtype(tensor.dtype)) {
      throw new TypeformerError(
        "SAFETENSORS_UNSUPPORTED_DTYPE",
        `tensor ${JSON.stringify(name)}: unknown dtype ${JSON.stringify(tensor.dtype)}`,
        { tensor: name, dtype: tensor.dtype },
      );
    }
    if (!Array.isArray(tensor.shape) || !tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(`shape must be an array of non-negative integers; received ${JSON.stringify(tensor.shape)}`);
    }
    const kind = tensor.data?.constructor?.name;
    if (!RAW_ARRAY[tensor.dtype].includes(kind)) {
      throw fail(`${tensor.dtype} data must be a ${RAW_ARRAY[tensor.dtype].join(" or ")}; received ${kind}`);
    }
    const elements = tensor.shape.reduce((a, b) => a * b, 1);
    if (tensor.data.length !== elements) {
      throw fail(
        `shape [${tensor.shape.join(", ")}] has ${elements} elements but data has ${tensor.data.length}`,
      );
    }
    out.push({ name, tensor, nbytes: elements * SAFETENSORS_DTYPE_SIZE[tensor.dtype] });
  }
  const rank = (d: SafetensorsDtype) => SAFETENSORS_DTYPE_ORDER.indexOf(d);
  // Same order as the reference writer: descending dtype (alignment), then name.
  out.sort((a, b) => rank(b.tensor.dtype) - rank(a.tensor.dtype) || compareCodePoints(a.name, b.name));
  return out;
}

/**
 * Builds the header bytes exactly like the reference writer: compact JSON with `__metadata__` first
 * (its keys sorted — the reference uses a HashMap, so its own order is unspecified), then the
 * tensors in data order as `{"dtype","shape","data_offsets"}`, padded with spaces to a multiple of 8.
 */
function buildHeader(prepared: PreparedTensor[], metadata: Record<string, string> | undefined): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareCodePoints);
    const m = keys.map((k) => {
      const v = metadata[k];
      if (typeof v !== "string") {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          `safetensors metadata values must be strings; ${JSON.stringify(k)} is ${typeof v}`,
          { key: k },
        );
      }
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${m.join(",")}}`);
  }
  let offset = 0;
  for (const p of prepared) {
    const info = `{"dtype":"${p.tensor.dtype}","shape":[${p.tensor.shape.join(",")}],"data_offsets":[${offset},${offset + p.nbytes}]}`;
    parts.push(`${JSON.stringify(p.name)}:${info}`);
    offset += p.nbytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

const CHUNK_ELEMENTS = 1 << 20;

async function writeTensorData(fh: FileHandle, t: TensorToWrite): Promise<void> {
  const data = t.data;
  const convert =
    data instanceof Float32Array && t.dtype !== "F32"
      ? t.dtype === "F16"
        ? (src: Float32Array) => float32ArrayToFloat16(src)
        : t.dtype === "BF16"
          ? (src: Float32Array) => float32ArrayToBfloat16(src)
          : (src: Float32Array) => Float64Array.from(src)
      : undefined;
  for (let i = 0; i < data.length; i += CHUNK_ELEMENTS) {
    const end = Math.min(data.length, i + CHUNK_ELEMENTS);
    const chunk = data.subarray(i, end);
    const out = convert ? convert(chunk as Float32Array) : chunk;
    await fh.write(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
  }
}

/** Serialises a header + data into a stream of writes on an open handle. */
async function writeSafetensorsTo(
  fh: FileHandle,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<number> {
  requireLittleEndian();
  const prepared = prepareTensors(tensors);
  const header = buildHeader(prepared, metadata);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);
  await fh.write(prefix);
  await fh.write(header);
  let total = 8 + header.length;
  for (const p of prepared) {
    await writeTensorData(fh, p.tensor);
    total += p.nbytes;
  }
  return total;
}

/**
 * Writes a safetensors file (temp file + fsync + rename). F32 and F16 from Float32Array (F16 rounded
 * to nearest even); other dtypes as described in {@link TensorToWrite}. Byte-identical to the
 * reference writer for the same tensors and metadata.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  // validate before touching the disk
  buildHeader(prepareTensors(tensors), metadata);
  await withAtomicFile(path, (fh) => writeSafetensorsTo(fh, tensors, metadata));
}

/** Serialises to bytes in memory (small files, tests, browsers). */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  requireLittleEndian();
  const prepared = prepareTensors(tensors);
  const header = buildHeader(prepared, metadata);
  const total = 8 + header.length + prepared.reduce((a, p) => a + p.nbytes, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  let pos = 8 + header.length;
  for (const p of prepared) {
    const d = p.tensor.data;
    let bytes: ArrayBufferView;
    if (d instanceof Float32Array && p.tensor.dtype !== "F32") {
      bytes =
        p.tensor.dtype === "F16"
          ? float32ArrayToFloat16(d)
          : p.tensor.dtype === "BF16"
            ? float32ArrayToBfloat16(d)
            : Float64Array.from(d);
    } else bytes = d;
    out.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), pos);
    pos += p.nbytes;
  }
  return out;
}

/** Bytes a tensor takes on disk. */
export function tensorByteLength(t: Pick<TensorToWrite, "dtype" | "shape">): number {
  return t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZE[t.dtype];
}
