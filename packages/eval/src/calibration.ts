import { TypeformerError } from "@typeformer/core";

export interface ReliabilityBin {
  /** Confidence interval [lo, hi) (the last bin includes 1). */
  lo: number;
  hi: number;
  count: number;
  /** Mean confidence of the predictions in the bin (NaN when empty). */
  confidence: number;
  /** Fraction of them that were right (NaN when empty). */
  accuracy: number;
}

export interface CalibrationResult {
  /** Σ_b (n_b / n) · |accuracy_b − confidence_b| (Guo et al. 2017), equal-width bins. */
  ece: number;
  /** max_b |accuracy_b − confidence_b| over non-empty bins. */
  mce: number;
  bins: ReliabilityBin[];
  n: number;
}

/** Expected calibration error with `numBins` equal-width confidence bins. */
export function expectedCalibrationError(
  confidences: number[],
  correct: boolean[],
  numBins = 10,
): CalibrationResult {
  if (confidences.length !== correct.length) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `confidences (${confidences.length}) and correct (${correct.length}) differ in length`,
      { confidences: confidences.length, correct: correct.length },
    );
  }
  if (!Number.isInteger(numBins) || numBins < 1) {
    throw new TypeformerError("INVALID_ARGUMENT", `numBins must be a positive integer; received ${numBins}`, {
      numBins,
    });
  }
  const sumC = new Float64Array(numBins);
  const sumA = new Float64Array(numBins);
  const cnt = new Float64Array(numBins);
  confidences.forEach((c, i) => {
    if (!(c >= 0 && c <= 1)) {
      throw new TypeformerError("INVALID_ARGUMENT", `confidence ${i} must be in [0, 1]; received ${c}`, {
        index: i,
        confidence: c,
      });
    }
    const b = Math.min(numBins - 1, Math.floor(c * numBins));
    sumC[b] += c;
    sumA[b] += correct[i] ? 1 : 0;
    cnt[b] += 1;
  });
  const n = confidences.length;
  let ece = 0;
  let mce = 0;
  const bins: ReliabilityBin[] = [];
  for (let b = 0; b < numBins; b++) {
    const conf = cnt[b] ? sumC[b] / cnt[b] : Number.NaN;
    const acc = cnt[b] ? sumA[b] / cnt[b] : Number.NaN;
    if (cnt[b]) {
      const gap = Math.abs(acc - conf);
      ece += (cnt[b] / n) * gap;
      mce = Math.max(mce, gap);
    }
    bins.push({ lo: b / numBins, hi: (b + 1) / numBins, count: cnt[b], confidence: conf, accuracy: acc });
  }
  return { ece: n ? ece : Number.NaN, mce, bins, n };
}

/** Softmax of log-scores (host, float64). */
export function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}
