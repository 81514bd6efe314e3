/** Makes whitespace in a token visible: spaces as ·, newlines as ↵, tabs as →. */
export function showToken(t: string | undefined): string {
  if (t === undefined) return "";
  if (t === "") return "∅";
  return t.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→");
}

export function pct(logprob: number): string {
  const p = Math.exp(logprob) * 100;
  if (p >= 99.95) return "100%";
  if (p < 0.1) return "<0.1%";
  return `${p.toFixed(p < 10 ? 1 : 0)}%`;
}

/** Background for a token chip: red (unlikely) → amber → green (confident). */
export function probColor(logprob: number): string {
  const p = Math.exp(logprob);
  return `hsl(${Math.round(p * 130)}, 75%, 86%)`;
}

/** Re-weights probabilities as sampling at temperature T would: p_i^(1/T), renormalised over the given set. */
export function reweight(logprobs: number[], temperature: number): number[] {
  if (logprobs.length === 0) return [];
  if (temperature <= 0) {
    const best = logprobs.indexOf(Math.max(...logprobs));
    return logprobs.map((_, i) => (i === best ? 1 : 0));
  }
  const scaled = logprobs.map((l) => l / temperature);
  const m = Math.max(...scaled);
  const e = scaled.map((s) => Math.exp(s - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}
