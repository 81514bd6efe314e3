// Builds the static docs site: docs/**.md, the root README/ARCHITECTURE and every package's README rendered
// to HTML (marked), linked source files as highlighted-free HTML pages, and the TypeDoc API reference.
// Output: apps/docs/dist/site (gitignored). Run from the repo root with `pnpm docs:build` or `pnpm run docs`:
// bare `pnpm docs` never reaches the script, because pnpm 10 passes `docs` through to `npm docs` (open the
// package's homepage) before it looks at scripts.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, posix, relative } from "node:path";
import { Marked, type Tokens } from "marked";
import { Application, TSConfigReader, TypeDocReader } from "typedoc";
import { docsMarkdownFiles, isRelativeLink, REPO_ROOT, readmeFiles } from "./markdown.js";

export const SITE_DIR = join(REPO_ROOT, "apps/docs/dist/site");

const NAV: Array<[string, string]> = [
  ["Home", "index.md"],
  ["How LLMs work, in code", "docs/how-llms-work.md"],
  ["Tutorial: first GPT", "docs/tutorials/first-gpt.md"],
  ["Tutorial: Hugging Face checkpoint", "docs/tutorials/hugging-face-checkpoint.md"],
  ["Tutorial: LoRA", "docs/tutorials/lora.md"],
  ["Tutorial: OpenAI API", "docs/tutorials/openai-api.md"],
  ["Tutorial: scaling sweep", "docs/tutorials/scaling-sweep.md"],
  ["Scaling out", "docs/scaling-out.md"],
  ["Architecture", "ARCHITECTURE.md"],
  ["Releasing", "docs/releasing.md"],
];

const CSS = `
body{margin:0;font:16px/1.6 system-ui,-apple-system,Segoe UI,sans-serif;color:#1f2328;display:flex}
nav{width:260px;min-height:100vh;background:#f6f8fa;border-right:1px solid #d0d7de;padding:1rem;box-sizing:border-box;flex-shrink:0}
nav a{display:block;color:#0969da;text-decoration:none;padding:.15rem 0}nav h2{font-size:.8rem;text-transform:uppercase;color:#57606a;margin:1rem 0 .3rem}
main{max-width:900px;padding:1rem 2rem 4rem;min-width:0}
pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;border-radius:6px;font-size:13px;line-height:1.45}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.3rem .6rem;vertical-align:top}
a{color:#0969da}h1,h2,h3{line-height:1.25}
`;

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** GitHub-style heading anchor. */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/<[^>]+>/g, "")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .trim()
    .replace(/\s/g, "-");
}

/** Site path of a repo file: markdown → .html, README.md at the root → index.html, others → `<file>.html`. */
export function sitePath(repoRel: string): string {
  if (repoRel === "README.md" || repoRel === "index.md") return "index.html";
  if (repoRel.endsWith(".md")) return repoRel.replace(/\.md$/, ".html");
  return `${repoRel}.html`;
}

function layout(title: string, body: string, pagePath: string): string {
  const up = posix.relative(posix.dirname(pagePath), ".") || ".";
  const link = (label: string, target: string) => `<a href="${up}/${target}">${escapeHtml(label)}</a>`;
  const packages = readmeFiles()
    .map((f) => link(`${f.split("/")[1]}${f.startsWith("apps/") ? " (app)" : ""}`, sitePath(f)))
    .join("");
  const nav = `<nav><strong>Typeformer</strong>
<h2>Guides</h2>${NAV.map(([label, file]) => link(label, sitePath(file))).join("")}
<h2>Packages</h2>${packages}
<h2>Reference</h2>${link("API (TypeDoc)", "api/index.html")}</nav>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)} — Typeformer</title><style>${CSS}</style></head><body>${nav}<main>${body}</main></body></html>\n`;
}

/** Renders one markdown file; returns its HTML and the repo files (non-markdown) it links to. */
export function renderMarkdown(
  repoRel: string,
  text: string,
): { html: string; title: string; linked: string[] } {
  const linked: string[] = [];
  const pageDir = posix.dirname(repoRel === "index.md" ? "README.md" : repoRel);
  const rewrite = (href: string): string => {
    if (!isRelativeLink(href)) return href;
    const [path, anchor] = href.split("#") as [string, string | undefined];
    const hash = anchor === undefined ? "" : `#${anchor}`;
    if (path === "") return href;
    const target = posix.normalize(posix.join(pageDir, decodeURIComponent(path)));
    const abs = join(REPO_ROOT, target);
    if (!existsSync(abs)) return href;
    let dest = target;
    if (statSync(abs).isDirectory()) {
      if (!existsSync(join(abs, "README.md"))) return href;
      dest = posix.join(target, "README.md");
    } else if (!target.endsWith(".md")) {
      linked.push(target);
    }
    const from = posix.dirname(sitePath(repoRel));
    return `${posix.relative(from, sitePath(dest)) || posix.basename(sitePath(dest))}${hash}`;
  };
  const seen = new Map<string, number>();
  let title = repoRel;
  const marked = new Marked({
    gfm: true,
    walkTokens(token) {
      if (token.type === "link" || token.type === "image") {
        const t = token as Tokens.Link | Tokens.Image;
        t.href = rewrite(t.href);
      }
    },
    renderer: {
      heading({ tokens, depth, text }) {
        let id = slug(text.replace(/`/g, ""));
        const n = seen.get(id) ?? 0;
        seen.set(id, n + 1);
        if (n > 0) id = `${id}-${n}`;
        if (depth === 1 && title === repoRel) title = text.replace(/`/g, "");
        return `<h${depth} id="${id}">${this.parser.parseInline(tokens)}</h${depth}>\n`;
      },
    },
  });
  const html = marked.parse(text, { async: false }) as string;
  return { html, title, linked };
}

function write(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

export function buildPages(outDir = SITE_DIR): number {
  const pages = ["README.md", "ARCHITECTURE.md", ...docsMarkdownFiles(), ...readmeFiles()];
  const sources = new Set<string>();
  for (const page of pages) {
    const { html, title, linked } = renderMarkdown(page, readFileSync(join(REPO_ROOT, page), "utf8"));
    for (const l of linked) sources.add(l);
    write(join(outDir, sitePath(page)), layout(title, html, sitePath(page)));
  }
  for (const src of sources) {
    const code = readFileSync(join(REPO_ROOT, src), "utf8");
    const body = `<h1><code>${escapeHtml(src)}</code></h1><pre><code>${escapeHtml(code)}</code></pre>`;
    write(join(outDir, sitePath(src)), layout(src, body, sitePath(src)));
  }
  return pages.length + sources.size;
}

export async function buildApi(): Promise<void> {
  const app = await Application.bootstrapWithPlugins({ options: join(REPO_ROOT, "typedoc.json") }, [
    new TypeDocReader(),
    new TSConfigReader(),
  ]);
  const project = await app.convert();
  if (!project) throw new Error("TypeDoc could not convert the project (see the messages above)");
  // Entry points resolve to "core/src" etc.: name the modules after their packages.
  for (const mod of project.children ?? []) mod.name = `@typeformer/${mod.name.split("/")[0]}`;
  await app.generateDocs(project, join(SITE_DIR, "api"));
}

async function main(): Promise<void> {
  const started = Date.now();
  rmSync(SITE_DIR, { recursive: true, force: true });
  const n = buildPages();
  console.log(`pages: ${n} files in ${relative(process.cwd(), SITE_DIR) || SITE_DIR}`);
  if (!process.argv.includes("--no-api")) {
    await buildApi();
    console.log(`api: ${relative(process.cwd(), join(SITE_DIR, "api"))}`);
  }
  console.log(
    `done in ${((Date.now() - started) / 1000).toFixed(1)} s — open ${join(SITE_DIR, "index.html")}`,
  );
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/").split("/").pop()!)) {
  await main();
}
