import { TypeformerError } from "@typeformer/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ApiError, fromZodError, toApiError } from "./errors.js";
import { apiKeyMatches } from "./server.js";

describe("HTTP error mapping", () => {
  it("maps typed errors to OpenAI-shaped statuses", () => {
    const cases: [string, number, string | null][] = [
      ["INVALID_ARGUMENT", 400, "invalid_value"],
      ["CONTEXT_LENGTH_EXCEEDED", 400, "context_length_exceeded"],
      ["LIMIT_EXCEEDED", 429, "server_busy"],
      ["NOT_FOUND", 404, "not_found"],
      ["SHUTTING_DOWN", 503, "shutting_down"],
      ["TIMEOUT", 504, "timeout"],
    ];
    for (const [code, status, apiCode] of cases) {
      const e = toApiError(new TypeformerError(code, `msg ${code}`, { retryAfterSeconds: 7, param: "x" }));
      expect(e.status, code).toBe(status);
      expect(e.code, code).toBe(apiCode);
      expect(e.body().error.message).toBe(`msg ${code}`);
    }
    expect(
      toApiError(new TypeformerError("LIMIT_EXCEEDED", "busy", { retryAfterSeconds: 7 })).headers,
    ).toEqual({
      "Retry-After": "7",
    });
    const internal = toApiError(new Error("secret stack detail"));
    expect(internal.status).toBe(500);
    expect(internal.message).not.toContain("secret"); // internals are not leaked to clients
    const api = new ApiError(418, "teapot", "invalid_request_error");
    expect(toApiError(api)).toBe(api);
  });

  it("zod issues name the dotted field path and the value received", () => {
    const schema = z.object({ messages: z.array(z.object({ role: z.enum(["user", "system"]) })) });
    const body = { messages: [{ role: "user" }, { role: "wizard" }] };
    const r = schema.safeParse(body);
    const e = fromZodError(r.error!, body);
    expect(e.param).toBe("messages.1.role");
    expect(e.message).toContain('"wizard"');
    const missing = fromZodError(schema.safeParse({}).error!, {});
    expect(missing.message).toBe("'messages' is required");
  });

  it("API keys compare by value (constant time over hashes)", () => {
    expect(apiKeyMatches("sk-abc", "sk-abc")).toBe(true);
    expect(apiKeyMatches("sk-abd", "sk-abc")).toBe(false);
    expect(apiKeyMatches("", "sk-abc")).toBe(false);
    expect(apiKeyMatches("sk-abc-longer", "sk-abc")).toBe(false);
  });
});
