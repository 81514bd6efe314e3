import { existsSync } from "node:fs";
import { join } from "node:path";
import { buildProgram } from "@typeformer/cli";
import { describe, expect, it } from "vitest";
import {
  cliInvocations,
  docsMarkdownFiles,
  fileReferences,
  isRelativeLink,
  markdownLinks,
  REPO_ROOT,
  readRepoFile,
  resolveLink,
} from "./markdown.js";

const files = docsMarkdownFiles();

describe("docs/ links and file references", () => {
  it("finds the guides and tutorials", () => {
    for (const f of [
      "docs/how-llms-work.md",
      "docs/scaling-out.md",
      "docs/tutorials/first-gpt.md",
      "docs/tutorials/hugging-face-checkpoint.md",
      "docs/tutorials/lora.md",
      "docs/tutorials/openai-api.md",
      "docs/tutorials/scaling-sweep.md",
    ]) {
      expect(files, f).toContain(f);
    }
  });

  it.each(files)("%s: every relative link resolves to a file or folder in the repo", (file) => {
    const text = readRepoFile(file);
    const broken = markdownLinks(text)
      .filter((l) => isRelativeLink(l.target))
      .filter((l) => !existsSync(join(REPO_ROOT, resolveLink(file, l.target))))
      .map((l) => `${file}:${l.line} → ${l.target}`);
    expect(broken).toEqual([]);
  });

  it.each(files)("%s: every `path` named in inline code exists", (file) => {
    const missing = fileReferences(readRepoFile(file)).filter((p) => !existsSync(join(REPO_ROOT, p)));
    expect(missing).toEqual([]);
  });

  it("the tour links a source file in every section", () => {
    const text = readRepoFile("docs/how-llms-work.md");
    const sections = text.split(/^## /m).slice(1);
    expect(sections.length).toBeGreaterThanOrEqual(12);
    for (const s of sections) {
      const title = s.split("\n")[0]!;
      const sourceLinks = markdownLinks(s).filter((l) => /\.(ts|tsx|py)(#.*)?$/.test(l.target));
      expect(sourceLinks.length, `section "${title}" links no source file`).toBeGreaterThan(0);
      expect(cliInvocations("tour", s).length, `section "${title}" shows no command`).toBeGreaterThan(0);
    }
  });
});

type Command = ReturnType<typeof buildProgram>;

function findCommand(program: Command, words: string[]): { cmd: Command; depth: number } | undefined {
  let cmd: Command = program;
  let depth = 0;
  for (const w of words) {
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (!sub) break;
    cmd = sub;
    depth++;
  }
  return depth === 0 ? undefined : { cmd, depth };
}

describe("docs/ commands exist in the CLI", () => {
  const program = buildProgram();
  const invocations = files.flatMap((f) => cliInvocations(f, readRepoFile(f)));

  it("the docs show commands", () => {
    expect(invocations.length).toBeGreaterThan(20);
  });

  it("every `typeformer <subcommand>` is registered in buildProgram()", () => {
    const unknown = invocations
      .filter((inv) => !findCommand(program, inv.words))
      .map((inv) => `${inv.file}: ${inv.text}`);
    expect(unknown).toEqual([]);
  });

  it("every --option after a subcommand is one of its options", () => {
    const bad: string[] = [];
    for (const inv of invocations) {
      const found = findCommand(program, inv.words);
      if (!found) continue;
      const known = new Set<string>(["--help"]);
      for (const o of found.cmd.options) {
        if (o.long) known.add(o.long);
        if (o.long?.startsWith("--no-")) known.add(`--${o.long.slice(5)}`);
      }
      for (const w of inv.words.slice(found.depth)) {
        const flag = w.split("=")[0]!;
        if (flag.startsWith("--") && !known.has(flag)) bad.push(`${inv.file}: ${inv.text} (${flag})`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe("the command and link extractors", () => {
  it("finds invocations in code blocks (with continuations) and inline code, not package names", () => {
    const md = [
      "Use `pnpm typeformer serve runs/x --port 1` or `@typeformer/core`.",
      "```sh",
      "pnpm typeformer train --preset moby-dick \\",
      "  --steps 3   # comment",
      "npx -y pnpm@10.34.8 typeformer tokenizer train a.txt --out b",
      "```",
    ].join("\n");
    const words = cliInvocations("x.md", md).map((i) => i.words.join(" "));
    expect(words).toEqual([
      "train --preset moby-dick --steps 3",
      "tokenizer train a.txt --out b",
      "serve runs/x --port 1",
    ]);
    const program = buildProgram();
    expect(findCommand(program, ["tokenizer", "train", "a.txt"])?.depth).toBe(2);
    expect(findCommand(program, ["no-such-command"])).toBeUndefined();
  });

  it("finds links outside code and file references in inline code", () => {
    const md = "[a](../x.md#y) `packages/core/src/index.ts`\n```\n[b](nope.md)\n```\n";
    expect(markdownLinks(md).map((l) => l.target)).toEqual(["../x.md#y"]);
    expect(fileReferences(md)).toEqual(["packages/core/src/index.ts"]);
  });
});
