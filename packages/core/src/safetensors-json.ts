/**
 * A small strict JSON (RFC 8259) parser for safetensors headers. Unlike `JSON.parse` it keeps
 * objects as ordered entry lists (so duplicate keys are detected instead of silently dropped, and a
 * key like `__proto__` is just a key), keeps each number's source text (so offsets are checked as
 * exact integers), and bounds nesting depth. Linear time; throws {@link JsonSyntaxError}.
 */

export class JsonObject {
  constructor(readonly entries: [string, JsonValue][]) {}
  get(key: string): JsonValue | undefined {
    for (const [k, v] of this.entries) if (k === key) return v;
    return undefined;
  }
}

export class JsonNumber {
  constructor(readonly raw: string) {}
  /** The value when the text is a plain non-negative integer that is exactly representable. */
  asIndex(): number | undefined {
    if (!/^(0|[1-9][0-9]*)$/.test(this.raw)) return undefined;
    const n = Number(this.raw);
    return Number.isSafeInteger(n) ? n : undefined;
  }
}

export type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | JsonObject;

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
    readonly kind: "syntax" | "duplicate" | "depth" = "syntax",
    readonly key?: string,
  ) {
    super(message);
  }
}

const MAX_DEPTH = 64;

export function parseJsonStrict(text: string): JsonValue {
  let i = 0;
  const n = text.length;

  const fail = (msg: string): never => {
    throw new JsonSyntaxError(`${msg} at position ${i}`, i);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const str = (): string => {
    // text[i] === '"'
    i++;
    let out = "";
    let start = i;
    for (;;) {
      if (i >= n) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c === 0x5c) {
        out += text.slice(start, i);
        i++;
        if (i >= n) fail("unterminated escape");
        const e = text[i];
        switch (e) {
          case '"':
            out += '"';
            break;
          case "\\":
            out += "\\";
            break;
          case "/":
            out += "/";
            break;
          case "b":
            out += "\b";
            break;
          case "f":
            out += "\f";
            break;
          case "n":
            out += "\n";
            break;
          case "r":
            out += "\r";
            break;
          case "t":
            out += "\t";
            break;
          case "u": {
            const hex = text.slice(i + 1, i + 5);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
            out += String.fromCharCode(Number.parseInt(hex, 16));
            i += 4;
            break;
          }
          default:
            fail("bad escape");
        }
        i++;
        start = i;
        continue;
      }
      i++;
    }
  };
  const num = (): JsonNumber => {
    const start = i;
    if (text[i] === "-") i++;
    if (text[i] === "0") i++;
    else if (text[i] >= "1" && text[i] <= "9") while (text[i] >= "0" && text[i] <= "9") i++;
    else fail("bad number");
    if (text[i] === ".") {
      i++;
      if (!(text[i] >= "0" && text[i] <= "9")) fail("bad number fraction");
      while (text[i] >= "0" && text[i] <= "9") i++;
    }
    if (text[i] === "e" || text[i] === "E") {
      i++;
      if (text[i] === "+" || text[i] === "-") i++;
      if (!(text[i] >= "0" && text[i] <= "9")) fail("bad number exponent");
      while (text[i] >= "0" && text[i] <= "9") i++;
    }
    return new JsonNumber(text.slice(start, i));
  };
  const literal = (word: string, value: JsonValue): JsonValue => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return value;
    }
    return fail("unexpected token");
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) throw new JsonSyntaxError(`nesting deeper than ${MAX_DEPTH}`, i, "depth");
    ws();
    if (i >= n) fail("unexpected end of input");
    const c = text[i];
    if (c === "{") {
      i++;
      const entries: [string, JsonValue][] = [];
      const seen = new Set<string>();
      ws();
      if (text[i] === "}") {
        i++;
        return new JsonObject(entries);
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a string key");
        const keyPos = i;
        const key = str();
        if (seen.has(key)) {
          throw new JsonSyntaxError(
            `duplicate key ${JSON.stringify(key)} at position ${keyPos}`,
            keyPos,
            "duplicate",
            key,
          );
        }
        seen.add(key);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        entries.push([key, value(depth + 1)]);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return new JsonObject(entries);
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return items;
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return items;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    if (c === "-" || (c >= "0" && c <= "9")) return num();
    return fail(`unexpected character ${JSON.stringify(c)}`);
  };

  const result = value(0);
  ws();
  if (i < n) fail("trailing characters after the JSON value");
  return result;
}
