import { initAcceleratedBackend } from "@typeformer/attention";
import { type BackendChoice, TypeformerError, tf } from "@typeformer/core";
import { type AnyModel, type EncoderModel, fromPretrained } from "@typeformer/models";
import type { Command } from "commander";

function parseIds(s: string, flag: string): number[] {
  const ids = s.split(",").map((x) => x.trim());
  if (ids.length === 0 || ids.some((x) => !/^\d+$/.test(x))) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `${flag} must be comma-separated token ids like 5,17,200; received ${JSON.stringify(s)}`,
      {
        value: s,
      },
    );
  }
  return ids.map(Number);
}

const round = (x: number) => Number(x.toPrecision(7));

/** The model's output for one sequence: (T, V) rows (decoder/MLM logits) or (T, C) hidden states. */
function run(
  model: AnyModel,
  ids: number[],
  decoderIds: number[] | undefined,
): { kind: string; rows: number[][] } {
  return tf.tidy(() => {
    const x = tf.tensor2d([ids], undefined, "int32");
    let out: tf.Tensor3D;
    let kind = "logits";
    if (model.family === "decoder") out = model.forward(x).logits;
    else if (model.family === "encoder-decoder") {
      const dec = tf.tensor2d([decoderIds ?? [model.decoderStartTokenId]], undefined, "int32");
      out = model.forward(x, dec).logits;
    } else {
      const enc = model as EncoderModel & { config: { withMlmHead?: boolean } };
      if (enc.config.withMlmHead) out = enc.mlmLogits(x);
      else {
        out = enc.encode(x).hidden;
        kind = "hidden";
      }
    }
    return { kind, rows: (out.arraySync() as number[][][])[0].map((r) => r.map(round)) };
  });
}

export function registerLogits(program: Command): void {
  program
    .command("logits")
    .description(
      "Print a model's logits for token ids as JSON (last position, or every position with --all).",
    )
    .argument("<dir>", "model directory in Hugging Face layout (config.json + model.safetensors)")
    .requiredOption("--ids <ids>", "comma-separated input token ids, e.g. 5,17,200")
    .option(
      "--decoder-ids <ids>",
      "encoder-decoder models: decoder input ids (default: the decoder start token)",
    )
    .option("--all", "print every position, not only the last")
    .option("--backend <name>", "force a backend: node-gpu, node, wasm or cpu")
    .action(
      async (
        dir: string,
        opts: { ids: string; decoderIds?: string; all?: boolean; backend?: BackendChoice },
      ) => {
        const ids = parseIds(opts.ids, "--ids");
        const decoderIds = opts.decoderIds ? parseIds(opts.decoderIds, "--decoder-ids") : undefined;
        await initAcceleratedBackend({ backend: opts.backend });
        const model = await fromPretrained(dir, { tokenizer: false });
        try {
          const { kind, rows } = run(model, ids, decoderIds);
          const out = {
            modelType: model.modelType,
            ids,
            ...(decoderIds ? { decoderIds } : {}),
            kind,
            ...(opts.all
              ? { positions: rows.length, [kind]: rows }
              : { position: rows.length - 1, [kind]: rows[rows.length - 1] }),
          };
          console.log(JSON.stringify(out));
        } finally {
          model.dispose();
        }
      },
    );
}
