/**
 * Finds stop sequences in streamed text that may span token boundaries. Text that could still turn
 * out to be the start of a stop sequence is held back until it is resolved, so a stop string is never
 * emitted, not even partly.
 */
export class StopMatcher {
  private readonly stops: string[];
  private buffer = "";
  private done = false;

  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Whether a stop sequence was found. */
  get stopped(): boolean {
    return this.done;
  }

  /** Adds a text delta; returns the text safe to emit now and whether a stop sequence ended generation. */
  push(delta: string): { text: string; stopped: boolean } {
    if (this.done) return { text: "", stopped: true };
    if (this.stops.length === 0) return { text: delta, stopped: false };
    this.buffer += delta;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.buffer.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.done = true;
      const text = this.buffer.slice(0, cut);
      this.buffer = "";
      return { text, stopped: true };
    }
    // hold back the longest suffix that is a proper prefix of some stop sequence
    let hold = 0;
    for (const s of this.stops) {
      const maxLen = Math.min(s.length - 1, this.buffer.length);
      for (let len = maxLen; len > hold; len--) {
        if (this.buffer.endsWith(s.slice(0, len))) {
          hold = len;
          break;
        }
      }
    }
    const text = this.buffer.slice(0, this.buffer.length - hold);
    this.buffer = this.buffer.slice(this.buffer.length - hold);
    return { text, stopped: false };
  }

  /** At the end of generation: releases held-back text (it never completed a stop sequence). */
  flush(): string {
    if (this.done) return "";
    const text = this.buffer;
    this.buffer = "";
    return text;
  }
}
