import { type BackendChoice, initBackend } from "@typeformer/core";
import { beforeAll, describe } from "vitest";

/**
 * Backends the conformance suites run on. `TYPEFORMER_TEST_BACKENDS=wasm,cpu` narrows or widens it;
 * by default every backend that initialises on this machine among wasm and cpu (node ones when present).
 */
export function availableBackends(): BackendChoice[] {
  const env = process.env.TYPEFORMER_TEST_BACKENDS;
  if (env) return env.split(",").map((s) => s.trim()) as BackendChoice[];
  return ["wasm", "cpu"];
}

/** Switches to `backend` before the tests of the current `describe` block run. */
export function useBackend(backend: BackendChoice): void {
  beforeAll(async () => {
    await initBackend({ backend });
  });
}

/** Runs the same suite once per available backend — one conformance suite, every backend. */
export function describeEachBackend(name: string, suite: (backend: BackendChoice) => void): void {
  for (const backend of availableBackends()) {
    describe(`${name} [${backend}]`, () => {
      useBackend(backend);
      suite(backend);
    });
  }
}
