/**
 * Packaging check: build with tsup, `pnpm pack`, publint the tarball, `npm install` it into an empty
 * scratch project and use it from ESM, from CJS and from TypeScript (node16 resolution, .mts and .cts).
 * Skips (saying why) only when npm cannot reach the registry or its cache.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const CORE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = path.resolve(CORE, "../..");
const BIN = path.join(ROOT, "node_modules", ".bin");
const NETWORK_ERROR =
  /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network|offline|ENOTCACHED/i;

let scratch: string | undefined;
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function sh(cmd: string, args: string[], cwd: string, timeout = 120_000) {
  const env = { ...process.env };
  delete env.TYPEFORMER_BACKEND;
  delete env.NODE_OPTIONS; // vitest's loader flags must not leak into the child processes
  return run(cmd, args, { cwd, timeout, env, maxBuffer: 16 * 1024 * 1024 });
}

/** `pnpm` from PATH, else the version pinned in the root `packageManager` through npx. */
async function pnpmCommand(): Promise<[string, string[]]> {
  try {
    await sh("pnpm", ["--version"], ROOT, 20_000);
    return ["pnpm", []];
  } catch {
    const pm = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")).packageManager as string;
    return ["npx", ["-y", pm]];
  }
}

describe("@typeformer/core package", () => {
  it("builds, packs, passes publint, installs with npm and works from ESM, CJS and TypeScript", async (ctx) => {
    scratch = await mkdtemp(path.join(os.tmpdir(), "tf-core-pack-"));
    // 1. build (ESM + CJS + d.ts) with tsup
    await sh(path.join(BIN, "tsup"), [], CORE, 180_000);
    const dist = await readdir(path.join(CORE, "dist"));
    expect(dist).toEqual(expect.arrayContaining(["index.js", "index.cjs", "index.d.ts", "index.d.cts"]));

    // 2. pnpm pack (rewrites workspace: ranges, applies publishConfig)
    const [pnpm, pre] = await pnpmCommand();
    await sh(pnpm, [...pre, "pack", "--pack-destination", scratch], CORE, 120_000);
    const tarball = (await readdir(scratch)).find((f) => f.endsWith(".tgz"));
    expect(tarball).toBe("typeformer-core-0.1.0.tgz");
    const tgz = await readFile(path.join(scratch, tarball!));

    // 3. publint on the very tarball, warnings counted as errors
    const lint = await publint({
      pack: { tarball: tgz.buffer.slice(tgz.byteOffset, tgz.byteOffset + tgz.byteLength) as ArrayBuffer },
      strict: true,
    });
    const pkgJson = JSON.parse(await readFile(path.join(CORE, "package.json"), "utf8"));
    const problems = lint.messages
      .filter((m) => m.type !== "suggestion")
      .map((m) => `${m.code}: ${formatMessage(m, pkgJson)}`);
    expect(problems).toEqual([]);

    // 4. npm install into an empty project
    const app = path.join(scratch, "app");
    await mkdir(app);
    await writeFile(path.join(app, "package.json"), JSON.stringify({ name: "scratch", private: true }));
    try {
      await sh(
        "npm",
        [
          "install",
          path.join(scratch, tarball!),
          "--no-audit",
          "--no-fund",
          "--prefer-offline",
          "--ignore-scripts",
        ],
        app,
        150_000,
      );
    } catch (e) {
      const out = `${(e as { stderr?: string }).stderr ?? ""}${(e as Error).message}`;
      if (NETWORK_ERROR.test(out)) {
        ctx.skip(`npm cannot reach the registry or its cache: ${out.split("\n").slice(0, 3).join(" ")}`);
      }
      throw e;
    }
    const installed = JSON.parse(
      await readFile(path.join(app, "node_modules/@typeformer/core/package.json"), "utf8"),
    );
    expect(installed.exports["."].source).toBeUndefined(); // publishConfig dropped the source condition

    // 5. ESM: auto-picked backend, a tensor op, a safetensors round trip
    await writeFile(
      path.join(app, "esm.mjs"),
      `import { initBackend, tf, writeSafetensors, SafetensorsFile } from "@typeformer/core";
import os from "node:os"; import path from "node:path";
const r = await initBackend();
const p = path.join(os.tmpdir(), "tf-pack-esm-" + process.pid + ".safetensors");
await writeSafetensors(p, { w: { dtype: "F16", shape: [2], data: new Float32Array([1.5, -2]) } });
const f = await SafetensorsFile.open(p); const v = Array.from(await f.readFloat32("w")); await f.close();
console.log(JSON.stringify({ backend: r.backend, tf: tf.getBackend(), sum: tf.sum(tf.tensor1d(v)).arraySync(), v }));
`,
    );
    // cwd outside the project: the wasm binaries must be found from the package itself (import.meta.url)
    const esm = JSON.parse((await sh("node", [path.join(app, "esm.mjs")], scratch, 60_000)).stdout);
    expect(["node-gpu", "node", "wasm"]).toContain(esm.backend); // wasm binaries found without paths
    expect(esm).toMatchObject({ sum: -0.5, v: [1.5, -2] });

    // 6. CJS: require() of the CJS build (import.meta.url shimmed by tsup)
    await writeFile(
      path.join(app, "cjs.cjs"),
      `const { initBackend, tf, Random, TypeformerError } = require("@typeformer/core");
initBackend({ backend: "wasm" }).then((r) => {
  console.log(JSON.stringify({ backend: r.backend, tf: tf.getBackend(), x: new Random(1).float(),
    err: new TypeformerError("IO_ERROR", "m").code }));
});
`,
    );
    const cjs = JSON.parse((await sh("node", [path.join(app, "cjs.cjs")], scratch, 60_000)).stdout);
    expect(cjs).toMatchObject({ backend: "wasm", tf: "wasm", err: "IO_ERROR" });
    expect(cjs.x).toBeCloseTo(0.5686059962026775, 12);

    // 7. TypeScript consumers under node16 resolution see the types for import and require
    const src = `import { initBackend, type TensorInfo } from "@typeformer/core";
export const p: Promise<{ backend: string }> = initBackend();
export type T = TensorInfo["dtype"];
`;
    await writeFile(path.join(app, "check.mts"), src);
    await writeFile(path.join(app, "check.cts"), src);
    await writeFile(
      path.join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "node16",
          moduleResolution: "node16",
          skipLibCheck: true,
          noEmit: true,
          types: [],
        },
        files: ["check.mts", "check.cts"],
      }),
    );
    await sh(path.join(BIN, "tsc"), ["-p", "tsconfig.json"], app, 60_000);
  });
});
