import { openCheckpoint } from "@typeformer/core";
import { configToHF, flopsPerToken, getArchitecture, parameterCount, readConfig } from "@typeformer/models";
import type { Command } from "commander";

function human(n: number): string {
  for (const [d, s] of [
    [1e12, "T"],
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ] as const) {
    if (n >= d) return `${(n / d).toFixed(2)}${s}`;
  }
  return String(n);
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description(
      "Show a checkpoint's architecture, parameter count, FLOPs per token and tensor table (no weights loaded).",
    )
    .argument("<dir>", "model directory in Hugging Face layout")
    .option("--context <n>", "context length for FLOPs/token (default: the model's maximum)")
    .option("--json", "print JSON")
    .action(async (dir: string, opts: { context?: string; json?: boolean }) => {
      let config = await readConfig(dir);
      const spec = getArchitecture(config.modelType);
      const reader = await openCheckpoint(dir);
      const mappedNames = new Set(
        reader.names().flatMap((n) => {
          const m = spec.mapCheckpointName(n, config);
          return typeof m === "string" ? [m] : [];
        }),
      );
      if (spec.adaptToCheckpoint) config = spec.adaptToCheckpoint(config, mappedNames);
      const c = config as unknown as Record<string, unknown> & { modelType: string };
      const context = opts.context ? Number(opts.context) : Number(c.maxPositions ?? 512);
      const tensors = reader.names().map((name) => {
        const info = reader.info(name);
        const mapped = spec.mapCheckpointName(name, config);
        return {
          name,
          dtype: info.dtype,
          shape: info.shape,
          elements: info.shape.reduce((a, b) => a * b, 1),
          role: mapped === null ? "ignored" : mapped === undefined ? "unexpected" : "weight",
        };
      });
      await reader.close();
      const params = parameterCount(c);
      const flops = flopsPerToken(c, context);
      const info = {
        dir,
        modelType: spec.modelType,
        family: spec.family,
        config,
        hfConfig: configToHF(config),
        parameters: params,
        trainingFlopsPerToken: flops,
        inferenceFlopsPerToken: flops / 3,
        contextLength: context,
        tensors,
      };
      if (opts.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      console.log(`${dir}: ${spec.modelType} (${spec.family})`);
      for (const [k, v] of Object.entries(config))
        if (k !== "modelType") console.log(`  ${k.padEnd(22)} ${JSON.stringify(v)}`);
      console.log(`parameters: ${params.toLocaleString("en-US")} (${human(params)})`);
      console.log(
        `FLOPs/token at context ${context}: ${human(flops)} training (6N + 12·L·C·T), ${human(flops / 3)} inference`,
      );
      const w = Math.max(4, ...tensors.map((t) => t.name.length));
      console.log(`\n${"tensor".padEnd(w)}  dtype  ${"shape".padEnd(16)} ${"elements".padStart(12)}  role`);
      for (const t of tensors) {
        console.log(
          `${t.name.padEnd(w)}  ${t.dtype.padEnd(5)}  ${`[${t.shape.join(", ")}]`.padEnd(16)} ${t.elements.toLocaleString("en-US").padStart(12)}  ${t.role}`,
        );
      }
    });
}
