import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { TypeformerError } from "./errors.js";
import { registerWasmGapKernels } from "./wasm-gap-kernels.js";

/** The backends Typeformer can run on, in the order {@link initBackend} tries them. */
export const BACKEND_ORDER = ["node-gpu", "node", "wasm", "cpu"] as const;
export type BackendChoice = (typeof BACKEND_ORDER)[number];

export interface BackendSkip {
  backend: BackendChoice;
  reason: string;
}

export interface BackendInitResult {
  /** The backend in use. */
  backend: BackendChoice;
  /** The tf.js name of that backend (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Why each backend tried before it was skipped. */
  skipped: BackendSkip[];
  /** Whether the choice was forced by `TYPEFORMER_BACKEND` or the `backend` option. */
  forcedBy?: "env" | "option";
}

export interface InitBackendOptions {
  /** Force one backend (overrides `TYPEFORMER_BACKEND`). */
  backend?: BackendChoice;
  /** Environment to read `TYPEFORMER_BACKEND` from; defaults to `process.env`. */
  env?: Record<string, string | undefined>;
  /** Keep tf.js's own console warnings (they are silenced by default: library code never prints). */
  keepTfWarnings?: boolean;
}

const TF_NAME: Record<BackendChoice, string> = {
  "node-gpu": "tensorflow",
  node: "tensorflow",
  wasm: "wasm",
  cpu: "cpu",
};
const NODE_PACKAGE: Partial<Record<BackendChoice, string>> = {
  "node-gpu": "@tensorflow/tfjs-node-gpu",
  node: "@tensorflow/tfjs-node",
};

let current: BackendInitResult | undefined;

/** Resolves a package from this package first, then from the user's working directory. */
function resolveFromHere(specifier: string): string | undefined {
  const bases = [import.meta.url, path.join(process.cwd(), "noop.js")];
  for (const base of bases) {
    try {
      return createRequire(base).resolve(specifier);
    } catch {
      // try the next base
    }
  }
  return undefined;
}

/** Directory holding the wasm backend's `.wasm` files, found without the user setting paths. */
export function wasmBinaryDir(): string {
  const pkg = resolveFromHere("@tensorflow/tfjs-backend-wasm/package.json");
  if (!pkg) {
    throw new TypeformerError("BACKEND_UNAVAILABLE", "@tensorflow/tfjs-backend-wasm is not installed", {
      backend: "wasm",
    });
  }
  return path.join(path.dirname(pkg), "dist") + path.sep;
}

async function tryBackend(choice: BackendChoice): Promise<string | undefined> {
  const pkgName = NODE_PACKAGE[choice];
  if (pkgName) {
    const resolved = resolveFromHere(pkgName);
    if (!resolved)
      return `${pkgName} is not installed (optional: it is the accelerated path where it can install)`;
    try {
      createRequire(resolved)(resolved);
    } catch (e) {
      return `${pkgName} is installed but failed to load: ${(e as Error).message.split("\n")[0]}`;
    }
    if (!tf.findBackend("tensorflow")) return `${pkgName} loaded but registered no 'tensorflow' backend`;
  }
  if (choice === "wasm") {
    try {
      setWasmPaths(wasmBinaryDir());
    } catch (e) {
      return (e as Error).message;
    }
  }
  try {
    const ok = await tf.setBackend(TF_NAME[choice]);
    if (!ok) return `tf.setBackend('${TF_NAME[choice]}') returned false`;
    await tf.ready();
  } catch (e) {
    return `initialising '${TF_NAME[choice]}' failed: ${(e as Error).message}`;
  }
  if (choice === "wasm") registerWasmGapKernels();
  return undefined;
}

/**
 * Picks the fastest available backend: `@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-node`, wasm, cpu.
 * `TYPEFORMER_BACKEND` (or `options.backend`) forces one. Never prints; returns what it chose and why
 * the others were skipped. Calling it again with the same choice is cheap.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendInitResult> {
  const env = options.env ?? process.env;
  if (!options.keepTfWarnings) tf.env().set("PROD", true);
  const fromEnv = env.TYPEFORMER_BACKEND?.trim();
  let forced: BackendChoice | undefined;
  let forcedBy: "env" | "option" | undefined;
  if (options.backend !== undefined) {
    forced = options.backend;
    forcedBy = "option";
  } else if (fromEnv) {
    forced = fromEnv as BackendChoice;
    forcedBy = "env";
  }
  if (forced !== undefined && !BACKEND_ORDER.includes(forced)) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `${forcedBy === "env" ? "TYPEFORMER_BACKEND" : "backend"} must be one of ${BACKEND_ORDER.join(", ")}; received ${JSON.stringify(forced)}`,
      { value: forced, known: [...BACKEND_ORDER] },
    );
  }
  if (
    current &&
    (forced === undefined || current.backend === forced) &&
    tf.getBackend() === current.tfBackend
  ) {
    return current;
  }
  const skipped: BackendSkip[] = [];
  const candidates = forced ? [forced] : [...BACKEND_ORDER];
  for (const choice of candidates) {
    const reason = await tryBackend(choice);
    if (reason === undefined) {
      current = { backend: choice, tfBackend: TF_NAME[choice], skipped, forcedBy };
      return current;
    }
    skipped.push({ backend: choice, reason });
  }
  throw new TypeformerError(
    "BACKEND_UNAVAILABLE",
    `no tf.js backend could be initialised: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join("; ")}`,
    { skipped },
  );
}

/** The result of the last successful {@link initBackend}, if any. */
export function currentBackend(): BackendInitResult | undefined {
  return current;
}
