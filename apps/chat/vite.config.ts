import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The page lives in web/; `vite build` writes it to dist/web, which `chatAppDistDir()` points at.
// Relative asset URLs (base "./") let any server mount the page at any path.
export default defineConfig({
  root: fileURLToPath(new URL("./web", import.meta.url)),
  base: "./",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("./dist/web", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: false,
  },
  server: { port: 5173, proxy: { "/v1": process.env.TYPEFORMER_API ?? "http://127.0.0.1:8080" } },
});
