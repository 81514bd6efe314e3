import { describeValue, isTypeformerError } from "@typeformer/core";
import type { ZodError } from "zod";

/** OpenAI's error body. */
export interface ApiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An HTTP error with OpenAI's body shape. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, "invalid_request_error", param, code);

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** Turns the first zod issue into a 400 naming the field (dotted path) and the value received. */
export function fromZodError(err: ZodError, body: unknown): ApiError {
  const issue = err.issues[0];
  const param = issue.path.length ? issue.path.map(String).join(".") : null;
  const received = issue.path.length ? valueAt(body, issue.path) : body;
  const where = param ? `'${param}'` : "the request body";
  const msg =
    issue.code === "invalid_type" && received === undefined
      ? `${where} is required`
      : `invalid ${where}: ${issue.message}; received ${describeValue(received)}`;
  return invalidRequest(msg, param, issue.code === "invalid_type" ? "invalid_type" : "invalid_value");
}

/** Maps any thrown value to an ApiError (typed Typeformer errors keep their message). */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (isTypeformerError(e)) {
    const d = e.details as Record<string, unknown>;
    const param = typeof d.param === "string" ? d.param : typeof d.name === "string" ? d.name : null;
    switch (e.code) {
      case "INVALID_ARGUMENT":
        return invalidRequest(e.message, param, "invalid_value");
      case "CONTEXT_LENGTH_EXCEEDED":
        return invalidRequest(e.message, param, "context_length_exceeded");
      case "LIMIT_EXCEEDED":
        return new ApiError(429, e.message, "rate_limit_error", null, "server_busy", {
          "Retry-After": String(d.retryAfterSeconds ?? 1),
        });
      case "NOT_FOUND":
        return new ApiError(404, e.message, "invalid_request_error", param, "not_found");
      case "SHUTTING_DOWN":
        return new ApiError(503, e.message, "server_error", null, "shutting_down", { "Retry-After": "5" });
      case "TIMEOUT":
        return new ApiError(504, e.message, "server_error", null, "timeout");
    }
  }
  return new ApiError(500, "internal server error", "server_error", null, "internal_error");
}
