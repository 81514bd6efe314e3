import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildPages, renderMarkdown, sitePath, slug } from "./build.js";
import { REPO_ROOT } from "./markdown.js";

const OUT = join(REPO_ROOT, "apps/docs/dist/site-test");

function htmlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? htmlFiles(p) : p.endsWith(".html") ? [p] : [];
  });
}

describe("static docs site", () => {
  afterAll(() => rmSync(OUT, { recursive: true, force: true }));

  it("slugs headings like GitHub", () => {
    expect(slug("1. Text → tokens")).toBe("1-text--tokens");
    expect(slug("What was verified, and what was not")).toBe("what-was-verified-and-what-was-not");
  });

  it("rewrites .md links to .html and source links to rendered source pages", () => {
    const { html, linked, title } = renderMarkdown(
      "docs/tutorials/x.md",
      "# Title `x`\n\n[a](../how-llms-work.md#1-text--tokens) [b](../../packages/models/src/gpt2.ts) [c](https://example.com)\n",
    );
    expect(title).toBe("Title x");
    expect(html).toContain('href="../how-llms-work.html#1-text--tokens"');
    expect(html).toContain('href="../../packages/models/src/gpt2.ts.html"');
    expect(html).toContain('href="https://example.com"');
    expect(linked).toEqual(["packages/models/src/gpt2.ts"]);
    expect(sitePath("README.md")).toBe("index.html");
  });

  it("builds every page, and every relative link and anchor in it resolves", () => {
    rmSync(OUT, { recursive: true, force: true });
    buildPages(OUT);
    const files = htmlFiles(OUT);
    expect(files.length).toBeGreaterThan(20);
    const tour = readFileSync(join(OUT, "docs/how-llms-work.html"), "utf8");
    expect(tour).toContain('id="3-attention"');
    const broken: string[] = [];
    for (const f of files) {
      const html = readFileSync(f, "utf8");
      for (const m of html.matchAll(/href="([^"]+)"/g)) {
        const href = m[1]!;
        if (/^[a-z]+:/.test(href) || href.startsWith("api/") || href.includes("/api/")) continue;
        const [path, anchor] = href.split("#");
        const target = path ? join(dirname(f), path) : f;
        if (!existsSync(target)) {
          broken.push(`${relative(OUT, f)} → ${href}`);
          continue;
        }
        if (anchor && target.endsWith(".html") && !readFileSync(target, "utf8").includes(`id="${anchor}"`)) {
          broken.push(`${relative(OUT, f)} → ${href} (no such anchor)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
