/**
 * Incremental Server-Sent Events parser (the subset OpenAI-compatible servers use): feed it text chunks as
 * they arrive, get back the complete events. Handles events split across chunks, CRLF line endings,
 * multi-line `data:` fields and comment lines (`: keep-alive`).
 */
export interface SseEvent {
  event?: string;
  data: string;
  id?: string;
}

export class SseParser {
  private buffer = "";
  private dataLines: string[] = [];
  private event: string | undefined;
  private id: string | undefined;

  /** Feeds a chunk of text; returns every event completed by it. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\r|\n/);
      if (nl < 0) break;
      // a lone "\r" at the very end may be the first half of "\r\n": wait for the next chunk
      if (this.buffer[nl] === "\r" && nl === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, nl);
      const skip = this.buffer.startsWith("\r\n", nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + skip);
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  /** Flushes an event left without its terminating blank line when the stream ends. */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.buffer.length > 0) {
      const ev = this.line(this.buffer);
      this.buffer = "";
      if (ev) out.push(ev);
    }
    const ev = this.line("");
    if (ev) out.push(ev);
    return out;
  }

  private line(line: string): SseEvent | undefined {
    if (line === "") {
      if (this.dataLines.length === 0) {
        this.event = undefined;
        return undefined;
      }
      const ev: SseEvent = { data: this.dataLines.join("\n") };
      if (this.event !== undefined) ev.event = this.event;
      if (this.id !== undefined) ev.id = this.id;
      this.dataLines = [];
      this.event = undefined;
      return ev;
    }
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.dataLines.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
    return undefined;
  }
}
