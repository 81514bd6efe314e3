import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  isTypeformerError,
  Random,
  SAFETENSORS_DTYPE_SIZE,
  type SafetensorsDtype,
  SafetensorsFile,
  serializeSafetensors,
  type TensorToWrite,
  TypeformerError,
  writeFileAtomic,
  writeSafetensors,
} from "@typeformer/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "__fixtures__");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "tf-safetensors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

async function expectInvalid(
  p: Promise<unknown>,
  reason?: string,
  code: string | null = "SAFETENSORS_INVALID",
) {
  const e = await p.then(
    () => undefined,
    (err) => err,
  );
  expect(e, "expected a TypeformerError").toBeInstanceOf(TypeformerError);
  if (code !== null) expect((e as TypeformerError).code).toBe(code);
  if (reason) expect((e as TypeformerError).details.reason).toBe(reason);
  return e as TypeformerError;
}

/** Writes a file with an arbitrary header object (or string) and data length. */
async function rawFile(name: string, header: unknown, data: Uint8Array | number = 0): Promise<string> {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  const p = path.join(dir, name);
  await writeFile(p, out);
  return p;
}

describe("reference fixture (independent numpy/struct writer)", () => {
  it("reads every dtype, value and the metadata exactly", async () => {
    const expected = JSON.parse(await readFile(path.join(FIXTURES, "reference-mixed.expected.json"), "utf8"));
    const f = await SafetensorsFile.open(path.join(FIXTURES, "reference-mixed.safetensors"));
    try {
      expect(f.metadata).toEqual(expected.metadata);
      expect(f.dataStart).toBe(8 + expected.header_length);
      expect(new Set(f.names())).toEqual(new Set(Object.keys(expected.tensors)));
      for (const [name, exp] of Object.entries<{
        dtype: SafetensorsDtype;
        shape: number[];
        data_offsets: [number, number];
        hex: string;
        values: (number | string)[];
      }>(expected.tensors)) {
        expect(f.info(name)).toEqual({
          name,
          dtype: exp.dtype,
          shape: exp.shape,
          dataOffsets: exp.data_offsets,
        });
        expect(hex(await f.readRaw(name))).toBe(exp.hex);
        const typed = await f.readTyped(name);
        const asF32 = await f.readFloat32(name);
        expect(asF32.length).toBe(exp.values.length);
        exp.values.forEach((v, i) => {
          if (exp.dtype === "I64") {
            expect((typed as BigInt64Array)[i]).toBe(BigInt(v as string));
            expect(asF32[i]).toBe(Math.fround(Number(BigInt(v as string))));
          } else if (typeof v === "string") {
            expect(String(asF32[i])).toBe(v === "inf" ? "Infinity" : v === "-inf" ? "-Infinity" : "NaN");
          } else {
            if (exp.dtype !== "F16" && exp.dtype !== "BF16") expect(Number(typed[i])).toBe(v);
            expect(asF32[i]).toBe(Math.fround(v));
          }
        });
      }
      // typed array kinds
      expect(await f.readTyped("half")).toBeInstanceOf(Uint16Array);
      expect(await f.readTyped("bf")).toBeInstanceOf(Uint16Array);
      expect(await f.readTyped("double")).toBeInstanceOf(Float64Array);
      expect(await f.readTyped("mask")).toBeInstanceOf(Uint8Array);
      expect(await f.readTyped("i8")).toBeInstanceOf(Int8Array);
      expect(await f.readTyped("i16")).toBeInstanceOf(Int16Array);
    } finally {
      await f.close();
    }
  });

  it("our writer reproduces the reference file byte for byte (all dtypes, raw typed arrays)", async () => {
    const src = path.join(FIXTURES, "reference-mixed.safetensors");
    const f = await SafetensorsFile.open(src);
    const tensors: Record<string, TensorToWrite> = {};
    // insertion order deliberately reversed: the writer must sort like the reference
    for (const name of f.names().reverse()) {
      const info = f.info(name);
      tensors[name] = { dtype: info.dtype, shape: info.shape, data: await f.readTyped(name) };
    }
    const metadata = f.metadata;
    await f.close();
    const out = path.join(dir, "mixed-rewritten.safetensors");
    await writeSafetensors(out, tensors, metadata);
    expect(hex(await readFile(out))).toBe(hex(await readFile(src)));
    expect(hex(serializeSafetensors(tensors, metadata))).toBe(hex(await readFile(src)));
  });

  it("F16 written from float32 equals numpy's astype(float16), header and all", async () => {
    const exp = JSON.parse(await readFile(path.join(FIXTURES, "reference-f16.expected.json"), "utf8"));
    const tensors: Record<string, TensorToWrite> = {};
    for (const [name, bits] of Object.entries<number[]>(exp.float32_bits)) {
      tensors[name] = {
        dtype: exp.dtypes[name],
        shape: exp.shapes[name],
        data: new Float32Array(new Uint32Array(bits).buffer),
      };
    }
    const out = path.join(dir, "f16.safetensors");
    await writeSafetensors(out, tensors, exp.metadata);
    expect(hex(await readFile(out))).toBe(
      hex(await readFile(path.join(FIXTURES, "reference-f16.safetensors"))),
    );
  });

  it("matches the reference implementation's own serialization test vectors", () => {
    // safetensors/src/tensor.rs test_serialization / test_empty
    const out = serializeSafetensors({
      "attn.0": { dtype: "F32", shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
    });
    expect(Array.from(out.subarray(0, 16))).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48,
    ]);
    expect(new TextDecoder().decode(out.subarray(8, 72))).toBe(
      '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}',
    );
    expect(Array.from(serializeSafetensors({}))).toEqual([
      8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32,
    ]);
    expect(new TextDecoder().decode(serializeSafetensors({}, { framework: "pt" }).subarray(8))).toBe(
      '{"__metadata__":{"framework":"pt"}}     ',
    );
  });
});

describe("round trip", () => {
  const rng = new Random(7);
  const randomBytes = (n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = rng.int(256);
    return b;
  };
  const ctor: Record<string, new (b: ArrayBuffer) => TensorToWrite["data"]> = {
    F64: Float64Array,
    F32: Float32Array,
    F16: Uint16Array,
    BF16: Uint16Array,
    I64: BigInt64Array,
    I32: Int32Array,
    I16: Int16Array,
    I8: Int8Array,
    U8: Uint8Array,
    BOOL: Uint8Array,
    U16: Uint16Array,
    U32: Uint32Array,
    U64: BigUint64Array,
  };

  it("every dtype, random bit patterns (NaN payloads included), is bit-exact", async () => {
    const tensors: Record<string, TensorToWrite> = {};
    const shapes = [[3, 5], [7], [], [0, 4], [2, 3, 4]];
    for (const [dtype, C] of Object.entries(ctor)) {
      shapes.forEach((shape, j) => {
        const n = shape.reduce((a, b) => a * b, 1);
        let bytes = randomBytes(n * SAFETENSORS_DTYPE_SIZE[dtype as SafetensorsDtype]);
        if (dtype === "BOOL") bytes = bytes.map((b) => b & 1);
        tensors[`${dtype.toLowerCase()}.${j}`] = {
          dtype: dtype as SafetensorsDtype,
          shape,
          data: new C(bytes.buffer),
        };
      });
    }
    const p = path.join(dir, "roundtrip.safetensors");
    await writeSafetensors(p, tensors, { a: "1", "": "empty key", ["__proto__"]: "x" });
    const f = await SafetensorsFile.open(p);
    try {
      expect(f.metadata).toEqual(
        Object.fromEntries([
          ["", "empty key"],
          ["__proto__", "x"],
          ["a", "1"],
        ]),
      );
      expect(f.names().length).toBe(Object.keys(tensors).length);
      for (const [name, t] of Object.entries(tensors)) {
        expect(f.info(name).dtype).toBe(t.dtype);
        expect(f.info(name).shape).toEqual(t.shape);
        const raw = await f.readRaw(name);
        expect(hex(raw), name).toBe(hex(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
        const typed = await f.readTyped(name);
        expect(typed.constructor).toBe(t.data.constructor);
      }
    } finally {
      await f.close();
    }
    // header is 8-byte aligned and padded with spaces
    const bytes = await readFile(p);
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect(bytes.subarray(8, 8 + n).toString("latin1")).toMatch(/} *$/);
  });

  it("F16/BF16/F64 from Float32Array: conversion matches the scalar converters, reads back widened", async () => {
    const vals = new Float32Array(2000);
    for (let i = 0; i < vals.length; i++) vals[i] = rng.normal(0, 10 ** rng.int(6));
    vals.set([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 65519.996, 1e-8], 0);
    const p = path.join(dir, "conv.safetensors");
    await writeSafetensors(p, {
      h: { dtype: "F16", shape: [vals.length], data: vals },
      b: { dtype: "BF16", shape: [vals.length], data: vals },
      d: { dtype: "F64", shape: [vals.length], data: vals },
    });
    const f = await SafetensorsFile.open(p);
    const h = (await f.readTyped("h")) as Uint16Array;
    const b = (await f.readTyped("b")) as Uint16Array;
    const hf = await f.readFloat32("h");
    const bf = await f.readFloat32("b");
    const df = await f.readFloat32("d");
    await f.close();
    for (let i = 0; i < vals.length; i++) {
      expect(h[i]).toBe(float32ToFloat16Bits(vals[i]));
      expect(b[i]).toBe(float32ToBfloat16Bits(vals[i]));
      expect(Object.is(hf[i], float16BitsToFloat32(h[i]))).toBe(true);
      expect(Object.is(df[i], vals[i])).toBe(true);
      if (Number.isFinite(vals[i]) && Math.abs(vals[i]) < 65504 && Math.abs(vals[i]) > 6.2e-5) {
        expect(Math.abs(hf[i] - vals[i])).toBeLessThanOrEqual(Math.abs(vals[i]) * 2 ** -11);
      }
      if (Number.isFinite(vals[i]) && vals[i] !== 0) {
        expect(Math.abs(bf[i] - vals[i])).toBeLessThanOrEqual(Math.abs(vals[i]) * 2 ** -8);
      }
    }
    expect(Number.isNaN(hf[0]) && Number.isNaN(bf[0])).toBe(true);
    expect([hf[1], hf[2], bf[1], bf[2]]).toEqual([Infinity, -Infinity, Infinity, -Infinity]);
  });

  it("float16 conversion is exact for all 63,488 finite/inf half values", () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN
      expect(float32ToFloat16Bits(float16BitsToFloat32(h))).toBe(h);
    }
    // ties round to even
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0);
    expect(float32ToFloat16Bits(2 ** -25 * 1.0001)).toBe(1);
  });

  it("rejects bad tensors to write with a typed error naming the tensor and value", async () => {
    const p = path.join(dir, "bad-write.safetensors");
    const cases: [Record<string, TensorToWrite>, RegExp][] = [
      [{ w: { dtype: "F32", shape: [2, 2], data: new Float32Array(3) } }, /"w".*4 elements.*3/],
      [{ w: { dtype: "F32", shape: [-1], data: new Float32Array(1) } }, /"w".*shape.*-1/],
      [{ w: { dtype: "I32", shape: [1], data: new Float32Array(1) } }, /"w".*Int32Array.*Float32Array/],
      [{ __metadata__: { dtype: "F32", shape: [1], data: new Float32Array(1) } }, /reserved/],
      [{ w: { dtype: "Q4" as SafetensorsDtype, shape: [1], data: new Float32Array(1) } }, /"Q4"/],
    ];
    for (const [tensors, msg] of cases) {
      const e = await expectInvalid(writeSafetensors(p, tensors), undefined, null);
      expect(e.message).toMatch(msg);
    }
    await expectInvalid(
      writeSafetensors(p, {}, { n: 3 as unknown as string }),
      undefined,
      "INVALID_ARGUMENT",
    );
    expect((await readdir(dir)).filter((f) => f.includes("bad-write"))).toEqual([]);
  });
});

describe("validation (reference rules), each a typed error naming tensor and numbers", () => {
  const t = (dtype: string, shape: number[], offs: [number, number]) => ({
    dtype,
    shape,
    data_offsets: offs,
  });

  it("header length bounds", async () => {
    const small = path.join(dir, "small.st");
    await writeFile(small, new Uint8Array(5));
    await expectInvalid(SafetensorsFile.open(small), "HeaderTooSmall");
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    await writeFile(path.join(dir, "huge.st"), huge);
    const e = await expectInvalid(SafetensorsFile.open(path.join(dir, "huge.st")), "HeaderTooLarge");
    expect(e.message).toContain("18446744073709551615");
    new DataView(huge.buffer).setBigUint64(0, 1000n, true);
    await writeFile(path.join(dir, "past.st"), huge);
    expect(
      (await expectInvalid(SafetensorsFile.open(path.join(dir, "past.st")), "InvalidHeaderLength")).message,
    ).toMatch(/1000.*16-byte/);
  });

  it("header content", async () => {
    await expectInvalid(
      SafetensorsFile.open(await rawFile("nj.st", "{not json}")),
      "InvalidHeaderDeserialization",
    );
    await expectInvalid(SafetensorsFile.open(await rawFile("arr.st", "[1,2]")), "InvalidHeaderStart");
    await expectInvalid(SafetensorsFile.open(await rawFile("ws.st", ' {"a":1}')), "InvalidHeaderStart");
    const badUtf8 = path.join(dir, "utf8.st");
    await writeFile(
      badUtf8,
      Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]),
    );
    await expectInvalid(SafetensorsFile.open(badUtf8), "InvalidHeader");
    const dup = await rawFile(
      "dup.st",
      '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      8,
    );
    expect((await expectInvalid(SafetensorsFile.open(dup), "DuplicateKey")).details.tensor).toBe("w");
    const meta = await rawFile("meta.st", { __metadata__: { epoch: 3 } });
    expect((await expectInvalid(SafetensorsFile.open(meta), "InvalidMetadata")).message).toMatch(
      /"epoch".*number 3/,
    );
    const deep = await rawFile("deep.st", `{"a":${"[".repeat(100000)}${"]".repeat(100000)}}`);
    await expectInvalid(SafetensorsFile.open(deep), "InvalidHeaderDeserialization");
  });

  it("tensor entries", async () => {
    const unk = await rawFile("unk.st", { w: t("F4", [1], [0, 1]) }, 1);
    const e = await expectInvalid(SafetensorsFile.open(unk), undefined, "SAFETENSORS_UNSUPPORTED_DTYPE");
    expect(e.message).toMatch(/"w".*"F4"/);
    await expectInvalid(
      SafetensorsFile.open(await rawFile("neg.st", { w: t("F32", [-1], [0, 4]) }, 4)),
      "TensorInvalidInfo",
    );
    await expectInvalid(
      SafetensorsFile.open(
        await rawFile("frac.st", '{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', 4),
      ),
      "TensorInvalidInfo",
    );
    await expectInvalid(
      SafetensorsFile.open(
        await rawFile(
          "big.st",
          '{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}',
          4,
        ),
      ),
      "ValidationOverflow",
    );
    await expectInvalid(
      SafetensorsFile.open(
        await rawFile("off3.st", { w: { dtype: "F32", shape: [1], data_offsets: [0, 4, 8] } }, 4),
      ),
      "TensorInvalidInfo",
    );
    const size = await rawFile("size.st", { w: t("F32", [2, 3], [0, 20]) }, 20);
    const se = await expectInvalid(SafetensorsFile.open(size), "TensorInvalidInfo");
    expect(se.message).toMatch(/"w".*F32.*\[2, 3\].*24 bytes.*\[0, 20\].*20/);
    // shape product overflows 2^64 with a zero dim somewhere is still exact
    const ok = await rawFile("zero.st", { w: t("F32", [0, 2 ** 52, 2 ** 52], [0, 0]) }, 0);
    const f = await SafetensorsFile.open(ok);
    expect(f.info("w").shape).toEqual([0, 2 ** 52, 2 ** 52]);
    expect((await f.readFloat32("w")).length).toBe(0);
    await f.close();
  });

  it("offsets: gaps, overlaps, reversed, outside the file, trailing bytes", async () => {
    const gap = await rawFile("gap.st", { a: t("F32", [1], [0, 4]), b: t("F32", [1], [8, 12]) }, 12);
    expect((await expectInvalid(SafetensorsFile.open(gap), "InvalidOffset")).message).toMatch(
      /"b" begins at 8.*ends at 4/,
    );
    const overlap = await rawFile("ov.st", { a: t("F32", [2], [0, 8]), b: t("F32", [1], [4, 8]) }, 8);
    expect((await expectInvalid(SafetensorsFile.open(overlap), "InvalidOffset")).details.tensor).toBe("b");
    const rev = await rawFile("rev.st", { a: t("F32", [1], [0, 4]), b: t("F32", [0], [4, 0]) }, 4);
    await expectInvalid(SafetensorsFile.open(rev), "InvalidOffset");
    const start = await rawFile("start.st", { a: t("F32", [1], [4, 8]) }, 8);
    await expectInvalid(SafetensorsFile.open(start), "InvalidOffset");
    const outside = await rawFile("out.st", { a: t("F32", [4], [0, 16]) }, 8);
    expect((await expectInvalid(SafetensorsFile.open(outside), "MetadataIncompleteBuffer")).message).toMatch(
      /8 bytes.*cover 16.*truncated/,
    );
    const trailing = await rawFile("trail.st", { a: t("F32", [1], [0, 4]) }, 12);
    await expectInvalid(SafetensorsFile.open(trailing), "MetadataIncompleteBuffer");
  });

  it("unknown names, closed files and unreadable dtypes are typed errors", async () => {
    const p = await rawFile("f8.st", { a: t("F8_E4M3", [2], [0, 2]) }, 2);
    const f = await SafetensorsFile.open(p);
    expect(Array.from(await f.readRaw("a"))).toEqual([0, 0]);
    await expectInvalid(f.readFloat32("a"), undefined, "SAFETENSORS_UNSUPPORTED_DTYPE");
    expect(() => f.info("nope")).toThrow(/"nope"/);
    await f.close();
    await expectInvalid(f.readRaw("a"), undefined, "INVALID_ARGUMENT");
    await expectInvalid(SafetensorsFile.open(path.join(dir, "missing.st")), undefined, "NOT_FOUND");
  });
});

describe("writeFileAtomic", () => {
  it("replaces the file whole and leaves no temporary behind", async () => {
    const p = path.join(dir, "atomic", "state.json");
    await expectInvalid(writeFileAtomic(p, "x"), undefined, "NOT_FOUND");
    await writeFileAtomic(path.join(dir, "state.json"), '{"a":1}');
    await writeFileAtomic(path.join(dir, "state.json"), new TextEncoder().encode('{"a":2}'));
    expect(await readFile(path.join(dir, "state.json"), "utf8")).toBe('{"a":2}');
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(isTypeformerError(new TypeformerError("IO_ERROR", "x"))).toBe(true);
  });
});
