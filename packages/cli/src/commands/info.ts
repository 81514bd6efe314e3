import { type BackendChoice, initBackend, tf } from "@typeformer/core";
import type { Command } from "commander";

export function registerInfo(program: Command): void {
  program
    .command("info")
    .description("Show which tf.js backend Typeformer picks on this machine and why the others were skipped.")
    .option("--backend <name>", "force a backend: node-gpu, node, wasm or cpu")
    .option("--json", "print JSON")
    .action(async (opts: { backend?: BackendChoice; json?: boolean }) => {
      const r = await initBackend({ backend: opts.backend });
      const info = { ...r, tfjsVersion: tf.version.tfjs, node: process.version };
      if (opts.json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(
          `backend: ${r.backend} (tf.js '${r.tfBackend}', tfjs ${tf.version.tfjs}, node ${process.version})`,
        );
        for (const s of r.skipped) console.log(`  skipped ${s.backend}: ${s.reason}`);
      }
    });
}
