import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, readRepoFile } from "./markdown.js";

interface Manifest {
  name: string;
  private?: boolean;
  dependencies?: Record<string, string>;
}

/** Every workspace package's package.json, by folder. */
const manifests: Manifest[] = ["packages", "apps"].flatMap((dir) =>
  readdirSync(join(REPO_ROOT, dir)).map((name) => JSON.parse(readRepoFile(`${dir}/${name}/package.json`))),
);
const byName = new Map(manifests.map((m) => [m.name, m]));
const config = JSON.parse(readRepoFile(".changeset/config.json")) as { fixed: string[][] };
const changesets = readdirSync(join(REPO_ROOT, ".changeset")).filter(
  (f) => f.endsWith(".md") && f !== "README.md",
);

describe("release configuration (changesets)", () => {
  it("no published package depends on a private one (npm could not install it)", () => {
    const bad = manifests
      .filter((m) => !m.private)
      .flatMap((m) =>
        Object.keys(m.dependencies ?? {})
          .filter((d) => byName.get(d)?.private)
          .map((d) => `${m.name} -> ${d}`),
      );
    expect(bad).toEqual([]);
  });

  it("every published package is in the fixed version group, and the group names only workspace packages", () => {
    const published = manifests.filter((m) => !m.private).map((m) => m.name);
    expect([...config.fixed.flat()].sort()).toEqual([...published].sort());
  });

  it.each(changesets)(".changeset/%s has a frontmatter of known packages and bump types", (file) => {
    const text = readRepoFile(`.changeset/${file}`);
    const m = /^---\n([\s\S]*?)\n---\n\s*\S/.exec(text);
    expect(m, `${file}: frontmatter delimited by --- lines, then a summary`).not.toBeNull();
    for (const line of m![1].split("\n")) {
      const entry = /^"(@typeformer\/[a-z-]+)": (patch|minor|major)$/.exec(line);
      expect(entry, `${file}: ${JSON.stringify(line)}`).not.toBeNull();
      expect(byName.has(entry![1]), `${file}: ${entry![1]} is a workspace package`).toBe(true);
    }
  });
});
