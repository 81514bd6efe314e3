import { expect, it } from "vitest";
import { computeCost, costAssumptionsFromEnv, formatComputeCost } from "./compute-cost.js";

it("computeCost: FLOPs, FLOP/s, energy and CO₂ by hand", () => {
  // 1e6 tokens × 6e6 FLOP/token = 6e12 FLOPs in 600 s → 1e10 FLOP/s
  // 2 cores × 10 W × PUE 1.5 × 600 s = 18 000 J = 0.005 kWh → × 475 g/kWh = 2.375 g
  const c = computeCost(
    { parameters: 1e6, tokens: 1e6, flopsPerToken: 6e6, wallTimeSec: 600 },
    { cores: 2, wattsPerCore: 10, pue: 1.5, gridGCo2PerKwh: 475 },
  );
  expect(c.flops).toBe(6e12);
  expect(c.achievedFlopsPerSec).toBe(1e10);
  expect(c.energyKwh).toBeCloseTo(0.005, 12);
  expect(c.co2Grams).toBeCloseTo(2.375, 10);
  const g = computeCost(
    { parameters: 1, tokens: 1, flopsPerToken: 1, wallTimeSec: 3600 },
    { device: "gpu", gpus: 2, wattsPerGpu: 500, pue: 1 },
  );
  expect(g.energyKwh).toBeCloseTo(1, 12);
  expect(formatComputeCost(c)).toMatch(/\| CO₂e \| 2\.38 g \|/);
});

it("computeCost: names a bad input; env overrides are validated", () => {
  expect(() => computeCost({ parameters: 1, tokens: -1, flopsPerToken: 1, wallTimeSec: 1 })).toThrow(
    /tokens.*received -1/,
  );
  expect(costAssumptionsFromEnv({ TYPEFORMER_PUE: "1.1", TYPEFORMER_COST_DEVICE: "gpu" })).toEqual({
    pue: 1.1,
    device: "gpu",
  });
  expect(() => costAssumptionsFromEnv({ TYPEFORMER_PUE: "abc" })).toThrow(/TYPEFORMER_PUE.*"abc"/);
});
