import { listAttentionImplementations } from "../registry.js";
import type { AttentionImplementation, AttentionOptions } from "../types.js";

// Implementations register themselves (registerAttentionImplementation) when their module is imported.
// To put a new implementation (e.g. the wasm kernels) under the conformance suite, import its
// registering module here, or push an entry onto `extraConformanceEntries`.

/** One implementation as the conformance suite runs it. */
export interface ConformanceEntry {
  /** Label in the test names. */
  name: string;
  impl: AttentionImplementation;
  /** Options merged into every call (e.g. small tiles so a few tokens span several blocks). */
  options?: Partial<AttentionOptions>;
  /** tf.js backend names (`tf.getBackend()`) it runs on; default every backend. */
  backends?: string[];
}

/** Entries added by hand (variants, or implementations not in the registry). */
export const extraConformanceEntries: ConformanceEntry[] = [];

/** Every registered implementation plus the tiled one with small blocks, and the extras. */
export function conformanceEntries(): ConformanceEntry[] {
  const out: ConformanceEntry[] = [];
  for (const impl of listAttentionImplementations()) {
    out.push({ name: impl.name, impl });
    if (impl.name === "tiled") {
      out.push({ name: "tiled[8x16 blocks]", impl, options: { blockSize: [8, 16] } });
    }
  }
  return [...out, ...extraConformanceEntries];
}
