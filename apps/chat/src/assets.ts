import { existsSync, readFileSync, statSync } from "node:fs";
import { readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** The folder holding this package's package.json (works from src/ and from dist/). */
export function chatAppRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pj = join(dir, "package.json");
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name === "@typeformer/chat-app")
          return dir;
      } catch {
        // unreadable package.json: keep walking up
      }
    }
    dir = dirname(dir);
  }
  throw new Error(
    `cannot find the @typeformer/chat-app package root above ${fileURLToPath(import.meta.url)}`,
  );
}

/** Where `vite build` writes the page: serve this folder at `/` (index.html + assets/). */
export function chatAppDistDir(): string {
  return join(chatAppRoot(), "dist", "web");
}

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, await newestMtime(p));
    else newest = Math.max(newest, (await stat(p)).mtimeMs);
  }
  return newest;
}

/**
 * Runs `vite build` for the page (about a second) into a fresh folder, then swaps it in with renames, so a
 * server (or a second build running at the same time) never sees a half-written page. Returns the folder.
 */
export async function buildChatApp(): Promise<string> {
  const root = chatAppRoot();
  const out = chatAppDistDir();
  const tmp = `${out}.build-${process.pid}-${Date.now()}`;
  const vite = await import("vite");
  await vite.build({
    configFile: join(root, "vite.config.ts"),
    logLevel: "warn",
    build: { outDir: tmp, emptyOutDir: true },
  });
  const old = `${out}.old-${process.pid}-${Date.now()}`;
  if (existsSync(out)) await rename(out, old).catch(() => {});
  try {
    await rename(tmp, out);
  } catch {
    // another build won the race: its output is equivalent
    await rm(tmp, { recursive: true, force: true });
  }
  await rm(old, { recursive: true, force: true });
  return out;
}

/** Builds the page unless an up-to-date build exists (newer than every file under web/ and src/client/). */
export async function ensureChatAppBuilt(
  opts: { force?: boolean } = {},
): Promise<{ dir: string; built: boolean }> {
  const dir = chatAppDistDir();
  const index = join(dir, "index.html");
  const root = chatAppRoot();
  if (!opts.force && existsSync(index)) {
    const webDir = join(root, "web");
    if (!existsSync(webDir)) return { dir, built: false }; // installed without sources: use what shipped
    const src = Math.max(await newestMtime(webDir), await newestMtime(join(root, "src", "client")));
    if (statSync(index).mtimeMs >= src) return { dir, built: false };
  }
  await buildChatApp();
  return { dir, built: true };
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

export interface ChatAppAsset {
  body: Uint8Array;
  contentType: string;
  /** hashed files under assets/ never change: cache them forever */
  cacheControl: string;
}

/**
 * Framework-neutral static lookup for the built page: `/` and unknown paths without an extension give
 * index.html; paths escaping the folder give undefined. A server mounts the page with e.g. (hono)
 * `app.get("*", async (c) => { const a = await readChatAppAsset(c.req.path); return a ? c.body(a.body, 200,
 * {"content-type": a.contentType}) : c.notFound(); })`.
 */
export async function readChatAppAsset(
  pathname: string,
  distDir = chatAppDistDir(),
): Promise<ChatAppAsset | undefined> {
  let rel: string;
  try {
    rel = decodeURIComponent(pathname.split("?")[0]);
  } catch {
    return undefined;
  }
  if (rel === "" || rel.endsWith("/")) rel += "index.html";
  const base = resolve(distDir);
  const file = resolve(base, normalize(`.${sep}${rel}`));
  if (file !== base && !file.startsWith(base + sep)) return undefined;
  let target = file;
  if (!existsSync(target) || !statSync(target).isFile()) {
    if (extname(rel) !== "") return undefined;
    target = join(base, "index.html"); // client-side routes fall back to the page
    if (!existsSync(target)) return undefined;
  }
  const body = new Uint8Array(await readFile(target));
  const ext = extname(target);
  return {
    body,
    contentType: TYPES[ext] ?? "application/octet-stream",
    cacheControl: target.includes(`${sep}assets${sep}`) ? "public, max-age=31536000, immutable" : "no-cache",
  };
}
