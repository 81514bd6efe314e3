import { readFile } from "node:fs/promises";
import { TypeformerError } from "@typeformer/core";

/** A float32 tensor held on the CPU. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/**
 * Encodes F32 tensors as a safetensors file (the trainer's own state: parameters in training layout and
 * optimizer moments). Names are sorted so identical state gives identical bytes.
 */
export function encodeSafetensorsF32(
  tensors: Map<string, HostTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const n of names) {
    const t = tensors.get(n)!;
    const bytes = t.data.length * 4;
    header[n] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += " ";
  const hb = Buffer.from(json, "utf8");
  const out = new Uint8Array(8 + hb.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let pos = 8 + hb.length;
  for (const n of names) {
    const t = tensors.get(n)!;
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Reads an F32 safetensors file written by {@link encodeSafetensorsF32}. */
export async function readSafetensorsF32(
  path: string,
): Promise<{ tensors: Map<string, HostTensor>; metadata: Record<string, string> }> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new TypeformerError(
      "IO_ERROR",
      `cannot read ${path}: ${(e as Error).message}`,
      { path },
      { cause: e },
    );
  }
  const bad = (why: string) =>
    new TypeformerError("SAFETENSORS_INVALID", `${path} is not a valid safetensors file: ${why}`, { path });
  if (buf.length < 8) throw bad(`only ${buf.length} bytes`);
  const hlen = Number(buf.readBigUInt64LE(0));
  if (8 + hlen > buf.length) throw bad(`header length ${hlen} exceeds the file size ${buf.length}`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + hlen).toString("utf8"));
  } catch {
    throw bad("header is not JSON");
  }
  const base = 8 + hlen;
  const tensors = new Map<string, HostTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = info as unknown as Record<string, string>;
      continue;
    }
    if (info.dtype !== "F32") throw bad(`${name} has dtype ${info.dtype}, expected F32`);
    const [s, e] = info.data_offsets;
    const n = info.shape.reduce((a, d) => a * d, 1);
    if (e - s !== n * 4 || base + e > buf.length) throw bad(`${name} has bad data offsets [${s}, ${e}]`);
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(buf.subarray(base + s, base + e));
    tensors.set(name, { shape: info.shape, data });
  }
  return { tensors, metadata };
}
