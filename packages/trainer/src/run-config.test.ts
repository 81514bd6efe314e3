import { isTypeformerError } from "@typeformer/core";
import { expect, it } from "vitest";
import { closestKey, parseRunConfig } from "./run-config.js";

it("fills defaults and rejects unknown keys with the closest valid one", () => {
  const c = parseRunConfig({ corpus: "moby-dick" });
  expect(c.steps).toBe(2000);
  expect(c.model).toEqual({ modelType: "gpt2", preset: "nanogpt-cpu" });
  const err = (() => {
    try {
      parseRunConfig({ corpus: "moby-dick", setps: 10 });
    } catch (e) {
      return e;
    }
  })() as Error;
  expect(isTypeformerError(err, "INVALID_CONFIG")).toBe(true);
  expect(err.message).toBe('invalid run config: unknown key "setps"; did you mean "steps"?');
  expect(() => parseRunConfig({ corpus: "x", sample: { temprature: 1 } })).toThrow(
    /unknown key "sample.temprature"; did you mean "temperature"\?/,
  );
  expect(() => parseRunConfig({ corpus: "x", lr: -1 })).toThrow(/lr: Number must be greater than 0/);
  expect(() => parseRunConfig({ steps: 3 })).toThrow(/corpus: Invalid input/);
  expect(closestKey("zzzzzzzz", ["steps", "lr"])).toBeUndefined();
});
