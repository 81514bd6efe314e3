/**
 * The one error base class of Typeformer. Every error the libraries throw is a `TypeformerError`
 * with a stable machine-readable `code` and structured `details` naming the values involved.
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_CONFIG"
  | "SAFETENSORS_INVALID"
  | "SAFETENSORS_UNSUPPORTED_DTYPE"
  | "BACKEND_UNAVAILABLE"
  | "TOKENIZER_INVALID"
  | "UNKNOWN_ENCODING"
  | "SHAPE_MISMATCH"
  | "UNKNOWN_MODEL_TYPE"
  | "MISSING_WEIGHTS"
  | "UNEXPECTED_WEIGHTS"
  | "IO_ERROR"
  | "DATA_INVALID"
  | "TRAINING_DIVERGED"
  | "CANCELLED"
  | "NOT_FOUND"
  | "LIMIT_EXCEEDED"
  | (string & {});

export class TypeformerError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TypeformerError";
    this.code = code;
    this.details = details;
  }

  toJSON(): { name: string; code: string; message: string; details: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, details: { ...this.details } };
  }
}

/** True when `e` is a TypeformerError, optionally with the given code. */
export function isTypeformerError(e: unknown, code?: ErrorCode): e is TypeformerError {
  return e instanceof TypeformerError && (code === undefined || e.code === code);
}

/** Renders a received value for an error message: short, quoted strings, shapes as lists. */
export function describeValue(value: unknown, max = 80): string {
  let s: string;
  if (typeof value === "string") s = JSON.stringify(value);
  else if (typeof value === "bigint") s = `${value}n`;
  else if (value === undefined) s = "undefined";
  else if (typeof value === "function") s = "a function";
  else {
    try {
      s = JSON.stringify(value) ?? String(value);
    } catch {
      s = String(value);
    }
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Throws INVALID_ARGUMENT naming the parameter and the value received when `ok` is false. */
export function assertArg(ok: boolean, name: string, value: unknown, expectation: string): asserts ok {
  if (!ok) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `${name} must be ${expectation}; received ${describeValue(value)}`,
      {
        name,
        value,
      },
    );
  }
}
