import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  openCheckpoint,
  Random,
  SAFETENSORS_INDEX_FILE,
  SafetensorsFile,
  shardFileName,
  type TensorToWrite,
  TypeformerError,
  writeCheckpoint,
} from "@typeformer/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "tf-ckpt-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function makeTensors(): Record<string, TensorToWrite> {
  const rng = new Random(3);
  const t: Record<string, TensorToWrite> = {};
  // 10 tensors of 400 bytes (F32 [10,10]) and one F16 of 200 bytes
  for (let i = 0; i < 10; i++)
    t[`layers.${i}.weight`] = { dtype: "F32", shape: [10, 10], data: rng.normalArray(100) };
  t["lm_head.weight"] = { dtype: "F16", shape: [100], data: rng.normalArray(100) };
  return t;
}

describe("checkpoints", () => {
  it("sharded: HF index layout, file names, and a full round trip", async () => {
    const tensors = makeTensors();
    const d = path.join(dir, "sharded");
    await writeCheckpoint(d, tensors, { maxShardBytes: 1000, metadata: { format: "pt" } });
    const files = (await readdir(d)).sort();
    // 400+400 | 400+400 | 400+400 | 400+400 | 400+400+200: greedy packing into shards of ≤ 1000 bytes
    expect(files).toEqual([
      ...Array.from({ length: 5 }, (_, i) => shardFileName(i + 1, 5)),
      SAFETENSORS_INDEX_FILE,
    ]);
    expect(shardFileName(1, 3)).toBe("model-00001-of-00003.safetensors");
    const indexText = await readFile(path.join(d, SAFETENSORS_INDEX_FILE), "utf8");
    const index = JSON.parse(indexText);
    expect(index.metadata).toEqual({ total_size: 10 * 400 + 200 });
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(tensors).sort());
    expect(index.weight_map["layers.0.weight"]).toBe("model-00001-of-00005.safetensors");
    expect(index.weight_map["lm_head.weight"]).toBe("model-00005-of-00005.safetensors");
    // json.dumps(indent=2, sort_keys=True) + "\n"
    expect(
      indexText.startsWith(
        '{\n  "metadata": {\n    "total_size": 4200\n  },\n  "weight_map": {\n    "layers.0.weight": "model-00001-of-00005.safetensors",\n',
      ),
    ).toBe(true);
    expect(indexText.endsWith('"\n  }\n}\n')).toBe(true);

    const ck = await openCheckpoint(d);
    try {
      expect(ck.sharded).toBe(true);
      expect(ck.metadata).toEqual({ format: "pt" });
      expect(new Set(ck.names())).toEqual(new Set(Object.keys(tensors)));
      expect(ck.fileNames().length).toBe(5);
      for (const [name, t] of Object.entries(tensors)) {
        const info = ck.info(name);
        expect(info.shape).toEqual(t.shape);
        expect(info.dtype).toBe(t.dtype);
        const back = await ck.readFloat32(name);
        if (t.dtype === "F32") expect(Array.from(back)).toEqual(Array.from(t.data as Float32Array));
        else
          back.forEach((v, i) => {
            expect(Math.abs(v - (t.data[i] as number))).toBeLessThan(2e-3);
          });
      }
      expect(() => ck.info("missing")).toThrow(TypeformerError);
    } finally {
      await ck.close();
    }
    // opening the index file path directly works too
    const byIndex = await openCheckpoint(path.join(d, SAFETENSORS_INDEX_FILE));
    expect(byIndex.names().length).toBe(11);
    await byIndex.close();
  });

  it("single file, and re-saving in the other layout removes the stale files", async () => {
    const tensors = makeTensors();
    const d = path.join(dir, "switch");
    await writeCheckpoint(d, tensors, { maxShardBytes: 1000 });
    await writeFile(path.join(d, "config.json"), "{}");
    await writeCheckpoint(d, tensors);
    expect((await readdir(d)).sort()).toEqual(["config.json", "model.safetensors"]);
    const ck = await openCheckpoint(d);
    expect(ck.sharded).toBe(false);
    expect(ck.names().length).toBe(11);
    expect(Array.from(await ck.readFloat32("layers.3.weight"))).toEqual(
      Array.from(tensors["layers.3.weight"].data as Float32Array),
    );
    await ck.close();
    await writeCheckpoint(d, tensors, { maxShardBytes: 2000 });
    expect((await readdir(d)).filter((f) => f.endsWith(".safetensors")).length).toBe(3);
    expect(await readdir(d)).not.toContain("model.safetensors");
  });

  it("a tensor bigger than the shard bound gets a shard of its own", async () => {
    const d = path.join(dir, "big");
    await writeCheckpoint(
      d,
      {
        a: { dtype: "F32", shape: [10], data: new Float32Array(10) },
        big: { dtype: "F32", shape: [100], data: new Float32Array(100) },
        c: { dtype: "F32", shape: [10], data: new Float32Array(10) },
      },
      { maxShardBytes: 100 },
    );
    const index = JSON.parse(await readFile(path.join(d, SAFETENSORS_INDEX_FILE), "utf8"));
    expect(index.weight_map).toEqual({
      a: "model-00001-of-00003.safetensors",
      big: "model-00002-of-00003.safetensors",
      c: "model-00003-of-00003.safetensors",
    });
    const f = await SafetensorsFile.open(path.join(d, "model-00002-of-00003.safetensors"));
    expect(f.names()).toEqual(["big"]);
    await f.close();
  });

  it("broken indexes are typed errors", async () => {
    const d = path.join(dir, "broken");
    await writeCheckpoint(d, makeTensors(), { maxShardBytes: 1000 });
    const ip = path.join(d, SAFETENSORS_INDEX_FILE);
    const good = JSON.parse(await readFile(ip, "utf8"));
    const check = async (index: unknown, code: string, msg: RegExp) => {
      await writeFile(ip, typeof index === "string" ? index : JSON.stringify(index));
      const e = await openCheckpoint(d).then(
        () => undefined,
        (err) => err,
      );
      expect(e).toBeInstanceOf(TypeformerError);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(msg);
    };
    await check("{oops", "SAFETENSORS_INVALID", /not valid JSON/);
    await check({ metadata: {} }, "SAFETENSORS_INVALID", /weight_map/);
    await check(
      { ...good, weight_map: { ...good.weight_map, x: "../../etc/passwd" } },
      "SAFETENSORS_INVALID",
      /"x".*passwd/,
    );
    await check(
      { ...good, weight_map: { ...good.weight_map, ghost: "model-00001-of-00005.safetensors" } },
      "SAFETENSORS_INVALID",
      /"ghost".*00001/,
    );
    await check(
      { ...good, weight_map: { ...good.weight_map, y: "model-00009-of-00009.safetensors" } },
      "NOT_FOUND",
      /00009/,
    );
    const empty = path.join(dir, "empty");
    await writeCheckpoint(empty, {});
    await rm(path.join(empty, "model.safetensors"));
    await expect(openCheckpoint(empty)).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
