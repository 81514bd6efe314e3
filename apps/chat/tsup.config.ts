import { defineConfig } from "tsup";

// Node-side helpers (asset paths, the page server, the API client). The page itself is built by `vite build`
// into dist/web after this runs (see the "build" script), so tsup must not clean dist/ afterwards.
export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  shims: true,
  external: ["vite", /^@typeformer\//],
});
