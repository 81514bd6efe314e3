import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import {
  type CodeBlock,
  codeBlocks,
  docsMarkdownFiles,
  isCheckedTypeScript,
  REPO_ROOT,
  readmeFiles,
  readRepoFile,
} from "./markdown.js";

/** Where the extracted samples are written (under `dist/`: gitignored and outside biome, under the repo so node_modules resolve). */
export const SAMPLES_DIR = join(REPO_ROOT, "apps/docs/dist/.samples-check");

export interface SampleFile {
  block: CodeBlock;
  path: string;
}

/** Every checked ```ts block of docs/**.md and the packages' and apps' READMEs. */
export function collectSamples(): CodeBlock[] {
  return [...docsMarkdownFiles(), ...readmeFiles()].flatMap((f) =>
    codeBlocks(f, readRepoFile(f)).filter(isCheckedTypeScript),
  );
}

/** Writes each sample as its own module plus a tsconfig that maps `@typeformer/*` to workspace sources. */
export function writeSamples(blocks: CodeBlock[]): SampleFile[] {
  rmSync(SAMPLES_DIR, { recursive: true, force: true });
  mkdirSync(SAMPLES_DIR, { recursive: true });
  const up = relative(SAMPLES_DIR, REPO_ROOT);
  const tsconfig = {
    extends: `${up}/tsconfig.base.json`,
    compilerOptions: {
      noEmit: true,
      paths: {
        "@typeformer/chat-app": [`${up}/apps/chat/src/index.ts`],
        "@typeformer/finetune-app": [`${up}/apps/finetune/src/index.ts`],
        "@typeformer/*": [`${up}/packages/*/src/index.ts`],
      },
    },
    include: ["*.ts"],
  };
  writeFileSync(join(SAMPLES_DIR, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  return blocks.map((block, i) => {
    const name = `${block.file.replace(/[^\w]+/g, "_")}_L${block.line}_${i}.ts`;
    const path = join(SAMPLES_DIR, name);
    // Each sample is its own module (top-level await allowed); line numbers stay aligned with the markdown.
    writeFileSync(path, `${block.code}\nexport {};\n`);
    return { block, path };
  });
}

/** Type-checks the samples; returns diagnostics mapped back to `file.md:line`. */
export function typeCheckSamples(samples: SampleFile[]): string[] {
  const configPath = join(SAMPLES_DIR, "tsconfig.json");
  const config = ts.readConfigFile(configPath, ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, SAMPLES_DIR);
  const program = ts.createProgram({ rootNames: samples.map((s) => s.path), options: parsed.options });
  const byPath = new Map(samples.map((s) => [s.path, s.block]));
  const out: string[] = [];
  for (const s of samples) {
    const sf = program.getSourceFile(s.path);
    if (!sf) {
      out.push(`${s.block.file}:${s.block.line}: sample not compiled`);
      continue;
    }
    const diags = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
    for (const d of diags) {
      const block = byPath.get(s.path)!;
      const line = d.start === undefined ? 0 : sf.getLineAndCharacterOfPosition(d.start).line;
      out.push(`${block.file}:${block.line + line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
    }
  }
  return out;
}
