import { Random } from "@typeformer/core";
import { expect, it } from "vitest";
import { fitPowerLaw, powerLaw } from "./power-law.js";

it("fitPowerLaw recovers known a, α, c from exact synthetic points", () => {
  const truth = { a: 12, alpha: 0.3, c: 1.7 };
  const N = [1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6];
  const fit = fitPowerLaw(
    N,
    N.map((n) => powerLaw(truth, n)),
  );
  expect(fit.alpha).toBeCloseTo(0.3, 4);
  expect(fit.c).toBeCloseTo(1.7, 4);
  expect(fit.a).toBeCloseTo(12, 2);
  expect(fit.r2).toBeGreaterThan(0.999999);
});

it("fitPowerLaw stays close under 0.5% multiplicative noise (Kaplan-like α = 0.076)", () => {
  const rng = new Random(7);
  const truth = { a: 8, alpha: 0.076, c: 0.5 };
  const N = Array.from({ length: 9 }, (_, i) => 1e4 * 4 ** i);
  const L = N.map((n) => powerLaw(truth, n) * (1 + 0.005 * rng.normal()));
  const fit = fitPowerLaw(N, L);
  expect(fit.r2).toBeGreaterThan(0.99);
  for (const n of N) expect(Math.abs(powerLaw(fit, n) / powerLaw(truth, n) - 1)).toBeLessThan(0.01);
  // c = 0 pins a pure power law: a straight line in log-log space
  const pure = fitPowerLaw([1, 10, 100], [5, 2.5, 1.25], { fixC: 0 });
  expect(pure.alpha).toBeCloseTo(Math.log10(2), 10);
  expect(pure.a).toBeCloseTo(5, 10);
});

it("fitPowerLaw names bad input", () => {
  expect(() => fitPowerLaw([1, 2], [1, 2])).toThrow(/≥ 3/);
  expect(() => fitPowerLaw([1, 2, -3], [1, 2, 3])).toThrow(/N=-3/);
});
