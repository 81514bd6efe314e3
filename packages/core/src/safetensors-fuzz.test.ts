import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Random, SafetensorsFile, TypeformerError, writeSafetensors } from "@typeformer/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "__fixtures__");
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "tf-st-fuzz-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TYPED_CODES = new Set(["SAFETENSORS_INVALID", "SAFETENSORS_UNSUPPORTED_DTYPE"]);

function headerOf(bytes: Uint8Array): { n: number; json: string } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { n, json: new TextDecoder().decode(bytes.subarray(8, 8 + n)) };
}

function withHeader(json: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

type Mutation = { kind: string; bytes: Uint8Array; mustFail: boolean };

function mutate(base: Uint8Array, rng: Random): Mutation {
  const { n, json } = headerOf(base);
  const data = base.subarray(8 + n);
  const header = JSON.parse(json) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: number[] }
  >;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const pick = () => names[rng.int(names.length)];
  switch (rng.int(9)) {
    case 0: {
      // truncation anywhere (always invalid: data no longer covers the tensors or the header is cut)
      const cut = rng.int(base.length);
      return { kind: "truncated", bytes: base.slice(0, cut), mustFail: true };
    }
    case 1: {
      // bit flips inside the header (may stay valid, e.g. in padding or a metadata string)
      const b = base.slice();
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips; i++) b[8 + rng.int(n)] ^= 1 << rng.int(8);
      return { kind: "header bit flips", bytes: b, mustFail: false };
    }
    case 2: {
      // bit flip in the length prefix
      const b = base.slice();
      b[rng.int(8)] ^= 1 << rng.int(8);
      return { kind: "length prefix flip", bytes: b, mustFail: true };
    }
    case 3: {
      // enormous / out-of-range header length
      const b = base.slice();
      const choices = [2n ** 64n - 1n, 2n ** 63n, BigInt(100_000_001), BigInt(base.length), BigInt(2 ** 40)];
      new DataView(b.buffer).setBigUint64(0, choices[rng.int(choices.length)], true);
      return { kind: "enormous header length", bytes: b, mustFail: true };
    }
    case 4: {
      // bad offsets
      const h = structuredClone(header);
      const t = h[pick()];
      const which = rng.int(2);
      const deltas = [1, -1, 4, -4, 1e6, -1e6, 2 ** 53, 0.5];
      t.data_offsets[which] = t.data_offsets[which] + deltas[rng.int(deltas.length)];
      return { kind: "bad offsets", bytes: withHeader(JSON.stringify(h), data), mustFail: true };
    }
    case 5: {
      // non-JSON header of the right length
      const garbage = new Uint8Array(1 + rng.int(200));
      for (let i = 0; i < garbage.length; i++) garbage[i] = rng.int(256);
      if (garbage[0] === 0x7b) garbage[0] = 0x20;
      const out = new Uint8Array(8 + garbage.length + data.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(garbage.length), true);
      out.set(garbage, 8);
      out.set(data, 8 + garbage.length);
      return { kind: "non-JSON", bytes: out, mustFail: true };
    }
    case 6: {
      // wrong dtype size (or an unknown dtype)
      const h = structuredClone(header);
      const t = h[pick()];
      const size: Record<string, number> = {
        F64: 8,
        F32: 4,
        F16: 2,
        BF16: 2,
        I64: 8,
        I32: 4,
        I16: 2,
        I8: 1,
        U8: 1,
        BOOL: 1,
      };
      const n = t.shape.reduce((a, b) => a * b, 1);
      const others = Object.keys(size).filter((d) => size[d] !== size[t.dtype]);
      t.dtype = rng.int(5) === 0 ? "Q4_K" : others[rng.int(others.length)];
      return {
        kind: "wrong dtype size",
        bytes: withHeader(JSON.stringify(h), data),
        mustFail: n > 0 || t.dtype === "Q4_K",
      };
    }
    case 7: {
      // duplicate tensor name (invisible to JSON.parse)
      const name = pick();
      const entry = JSON.stringify(header[name]);
      const dup = `{${JSON.stringify(name)}:${entry},${json.trim().slice(1)}`;
      return { kind: "duplicate key", bytes: withHeader(dup, data), mustFail: true };
    }
    default: {
      // shape changed (element count mismatch) or non-integer shape
      const h = structuredClone(header);
      const t = h[pick()];
      const bad = [-1, 1.5, 2 ** 60, t.shape.length ? t.shape[0] + 1 : 3];
      if (t.shape.length) t.shape[rng.int(t.shape.length)] = bad[rng.int(bad.length)];
      else t.shape = [2];
      return {
        kind: "bad shape",
        bytes: withHeader(JSON.stringify(h), data),
        mustFail: !t.shape.includes(0),
      };
    }
  }
}

describe("safetensors fuzz", () => {
  it("600 corrupted files each end in a typed error (or a valid read) within bounded time", async () => {
    const rng = new Random(20240601);
    const bases = [
      new Uint8Array(await readFile(path.join(FIXTURES, "reference-mixed.safetensors"))),
      new Uint8Array(await readFile(path.join(FIXTURES, "reference-f16.safetensors"))),
    ];
    const counts: Record<string, { total: number; failed: number }> = {};
    let slowest = 0;
    const heapBefore = process.memoryUsage();
    for (let i = 0; i < 600; i++) {
      const m = mutate(bases[i % bases.length], rng);
      const p = path.join(dir, `case-${i % 16}.safetensors`);
      await writeFile(p, m.bytes);
      const t0 = performance.now();
      let error: unknown;
      try {
        const f = await SafetensorsFile.open(p);
        try {
          for (const name of f.names()) {
            const info = f.info(name);
            await f.readRaw(name);
            if (!info.dtype.startsWith("F8")) await f.readFloat32(name);
          }
        } finally {
          await f.close();
        }
      } catch (e) {
        error = e;
      }
      slowest = Math.max(slowest, performance.now() - t0);
      counts[m.kind] ??= { total: 0, failed: 0 };
      counts[m.kind].total++;
      if (error !== undefined) {
        counts[m.kind].failed++;
        if (!(error instanceof TypeformerError) || !TYPED_CODES.has(error.code)) {
          throw new Error(`case ${i} (${m.kind}) threw an untyped error: ${String(error)}`);
        }
        expect(error.message.length).toBeGreaterThan(10);
      } else if (m.mustFail) {
        throw new Error(`case ${i} (${m.kind}) was accepted but must be rejected`);
      }
    }
    const heapAfter = process.memoryUsage();
    if (process.env.FUZZ_REPORT) console.log(JSON.stringify(counts), slowest);
    // every mutation kind was exercised, and the must-fail kinds were all rejected
    expect(Object.keys(counts).length).toBe(9);
    for (const kind of ["truncated", "enormous header length", "non-JSON", "duplicate key", "bad offsets"]) {
      expect(counts[kind].failed, kind).toBe(counts[kind].total);
    }
    // hang guard (not a benchmark): no single case may take seconds
    expect(slowest).toBeLessThan(5000);
    // no unbounded allocation: enormous lengths are rejected before allocating
    expect(heapAfter.arrayBuffers - heapBefore.arrayBuffers).toBeLessThan(64 * 1024 * 1024);
  });
});

describe("streaming", () => {
  it("a 64 MB file: open reads only the header; one tensor costs its own size, not the file's", async () => {
    const half = 8 * 1024 * 1024; // 8M floats = 32 MB per tensor
    const p = path.join(dir, "big.safetensors");
    {
      const a = new Float32Array(half);
      const b = new Float32Array(half);
      for (let i = 0; i < half; i += 4097) {
        a[i] = i;
        b[i] = -i;
      }
      const before = process.memoryUsage().arrayBuffers;
      await writeSafetensors(p, {
        a: { dtype: "F32", shape: [half], data: a },
        b: { dtype: "F32", shape: [half], data: b },
      });
      // F32 is written from views of the caller's array: no copy of the data
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 1024 * 1024);
    }
    expect((await stat(p)).size).toBeGreaterThan(64 * 1024 * 1024);
    const m0 = process.memoryUsage();
    const f = await SafetensorsFile.open(p);
    const m1 = process.memoryUsage();
    expect(m1.arrayBuffers - m0.arrayBuffers).toBeLessThan(1024 * 1024);
    expect(m1.heapUsed - m0.heapUsed).toBeLessThan(8 * 1024 * 1024);
    const a = await f.readFloat32("a");
    const m2 = process.memoryUsage();
    // the tensor is 32 MB; reading the file twice or whole would cost ≥ 64 MB
    expect(m2.arrayBuffers - m1.arrayBuffers).toBeLessThan(1.5 * 32 * 1024 * 1024);
    expect(m2.heapUsed - m1.heapUsed).toBeLessThan(8 * 1024 * 1024);
    expect(a.length).toBe(half);
    expect(a[4097 * 5]).toBe(4097 * 5);
    const b = await f.readFloat32("b");
    expect(b[4097 * 7]).toBe(-4097 * 7);
    await f.close();
    await rm(p);
  });
});
