import { TypeformerError } from "@typeformer/core";

export interface LrScheduleOptions {
  /** Peak learning rate, reached at the end of warmup. */
  maxLr: number;
  /** Floor reached at `decaySteps` and kept afterwards (default maxLr / 10). */
  minLr?: number;
  /** Linear warmup steps (default 0). */
  warmupSteps?: number;
  /** Step at which cosine decay reaches `minLr` (default: the run's total steps). */
  decaySteps: number;
  /** `cosine` (default) or `constant` after warmup, or `linear` decay to the floor. */
  decay?: "cosine" | "linear" | "constant";
}

/**
 * Learning rate at `step` (0-based): linear warmup `maxLr·(step+1)/(warmup+1)`, then cosine (or linear)
 * decay to `minLr` at `decaySteps`, then the floor — nanoGPT's `get_lr`.
 */
export function learningRate(step: number, o: LrScheduleOptions): number {
  const warmup = o.warmupSteps ?? 0;
  const minLr = o.minLr ?? o.maxLr / 10;
  if (!(o.maxLr > 0)) {
    throw new TypeformerError("INVALID_CONFIG", `maxLr must be > 0; received ${o.maxLr}`, { maxLr: o.maxLr });
  }
  if (step < warmup) return (o.maxLr * (step + 1)) / (warmup + 1);
  if (o.decay === "constant") return o.maxLr;
  if (step >= o.decaySteps) return minLr;
  const ratio = (step - warmup) / Math.max(1, o.decaySteps - warmup);
  const coeff = o.decay === "linear" ? 1 - ratio : 0.5 * (1 + Math.cos(Math.PI * ratio));
  return minLr + coeff * (o.maxLr - minLr);
}
