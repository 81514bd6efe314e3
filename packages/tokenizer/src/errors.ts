import { TypeformerError } from "@typeformer/core/errors";

export { TypeformerError };

/** Renders a value for an error message: short, quoted. */
export function show(value: unknown, max = 60): string {
  let s: string;
  if (typeof value === "string") s = JSON.stringify(value);
  else if (value === undefined) s = "undefined";
  else {
    try {
      s = JSON.stringify(value) ?? String(value);
    } catch {
      s = String(value);
    }
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A malformed tokenizer file: `field` is the JSON path of the offending field. */
export function invalidTokenizer(field: string, expectation: string, value: unknown): TypeformerError {
  return new TypeformerError(
    "TOKENIZER_INVALID",
    `tokenizer field '${field}' must be ${expectation}; received ${show(value)}`,
    { field, value },
  );
}

export function invalidArg(name: string, expectation: string, value: unknown): TypeformerError {
  return new TypeformerError("INVALID_ARGUMENT", `${name} must be ${expectation}; received ${show(value)}`, {
    name,
    value,
  });
}
