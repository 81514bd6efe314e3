import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (apps/docs/src → ../../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Every markdown file under `docs/`, repo-relative, sorted. */
export function docsMarkdownFiles(root = REPO_ROOT): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(root, dir)).sort()) {
      const rel = join(dir, name);
      if (statSync(join(root, rel)).isDirectory()) walk(rel);
      else if (name.endsWith(".md")) out.push(rel);
    }
  };
  walk("docs");
  return out;
}

/** README.md of every package and app, repo-relative. */
export function readmeFiles(root = REPO_ROOT): string[] {
  const out: string[] = [];
  for (const group of ["packages", "apps"]) {
    for (const name of readdirSync(join(root, group)).sort()) {
      const rel = join(group, name, "README.md");
      try {
        if (statSync(join(root, rel)).isFile()) out.push(rel);
      } catch {
        // no README in this folder
      }
    }
  }
  return out;
}

export interface CodeBlock {
  /** Repo-relative markdown file. */
  file: string;
  /** 1-based line of the first code line (after the fence). */
  line: number;
  /** Fence info string, e.g. "ts" or "ts no-check". */
  info: string;
  code: string;
}

/** Fenced code blocks (``` or ~~~) of a markdown text. */
export function codeBlocks(file: string, text: string): CodeBlock[] {
  const lines = text.split("\n");
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[2]!;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (lines[j]!.trim().startsWith(fence) && lines[j]!.trim().replace(/[`~]/g, "") === "") break;
      body.push(lines[j]!);
    }
    blocks.push({ file, line: i + 2, info: open[3]!.trim(), code: body.join("\n") });
    i = j;
  }
  return blocks;
}

/** Whether a block is TypeScript that the sample check should compile. */
export function isCheckedTypeScript(block: CodeBlock): boolean {
  const [lang, ...flags] = block.info.split(/\s+/);
  return (lang === "ts" || lang === "typescript") && !flags.includes("no-check");
}

/** Whether a checked block is also cheap and self-contained enough to execute (fence info `ts run`). */
export function isRunnable(block: CodeBlock): boolean {
  return isCheckedTypeScript(block) && block.info.split(/\s+/).includes("run");
}

/** Text outside fenced code blocks (links and inline code live here). */
export function proseOf(text: string): string {
  return text.replace(/^(\s*)(`{3,}|~{3,})[^\n]*\n[\s\S]*?^\s*\2\s*$/gm, "");
}

export interface MarkdownLink {
  target: string;
  line: number;
}

/** Inline markdown links `[text](target)` outside code blocks (images included). */
export function markdownLinks(text: string): MarkdownLink[] {
  const prose = proseOf(text).replace(/`[^`\n]*`/g, "``");
  const out: MarkdownLink[] = [];
  const re = /\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
  for (const m of prose.matchAll(re)) {
    out.push({ target: m[1]!, line: prose.slice(0, m.index).split("\n").length });
  }
  return out;
}

/** Whether a link points inside this repository (not a URL, not a pure #anchor). */
export function isRelativeLink(target: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith("#") && !target.startsWith("/");
}

/** Resolves a relative link from a repo-relative markdown file to a repo-relative path (anchor dropped). */
export function resolveLink(fromFile: string, target: string): string {
  const path = decodeURIComponent(target.split("#")[0]!);
  return relative(REPO_ROOT, resolve(REPO_ROOT, dirname(fromFile), path));
}

const FILE_REF = /^(?:packages|apps|docs|bench)\/[\w@./-]*[\w/]$/;

/** Inline-code spans that name a repository path, e.g. `packages/models/src/gpt2.ts` (no `:line`). */
export function fileReferences(text: string): string[] {
  const refs = new Set<string>();
  for (const m of proseOf(text).matchAll(/`([^`\n]+)`/g)) {
    const s = m[1]!.trim();
    if (FILE_REF.test(s) && !s.includes("*") && !s.includes("<")) refs.add(s.replace(/\/$/, ""));
  }
  return [...refs];
}

export interface CliInvocation {
  file: string;
  /** Words after `typeformer`: the subcommand path and its arguments. */
  words: string[];
  text: string;
}

/**
 * Every `typeformer <subcommand> …` invocation in a markdown text (code blocks and inline code), with
 * `\` line continuations joined. Matches `pnpm typeformer`, `npx … typeformer` and bare `typeformer`.
 */
export function cliInvocations(file: string, text: string): CliInvocation[] {
  const joined = text.replace(/\\\n\s*/g, " ");
  const out: CliInvocation[] = [];
  const sources: string[] = [];
  for (const b of codeBlocks(file, joined))
    if (/^(sh|bash|shell|console)?$/.test(b.info)) sources.push(b.code);
  for (const m of proseOf(joined).matchAll(/`([^`\n]+)`/g)) sources.push(m[1]!);
  for (const src of sources) {
    for (const line of src.split("\n")) {
      for (const m of line.matchAll(
        /(?:^|[\s;&|(])(?:pnpm |npx -y pnpm@[\d.]+ |npx )?typeformer\s+([^;&|#)]*)/g,
      )) {
        const words = m[1]!.trim().split(/\s+/).filter(Boolean);
        if (words.length > 0 && /^[a-z]/.test(words[0]!)) out.push({ file, words, text: m[0].trim() });
      }
    }
  }
  return out;
}

export function readRepoFile(rel: string): string {
  return readFileSync(join(REPO_ROOT, rel), "utf8");
}
