/**
 * Merges the `CV {json}` lines of `bench/finetune-spam.ts --cv K` runs (one or more log files, e.g. folds
 * split across processes) into accuracy by step over all held-out emails, against naive Bayes on the same folds.
 *
 * `node --import tsx bench/finetune-spam-cv.ts run-a.log run-b.log`
 */
import { readFileSync } from "node:fs";
import { mcnemar } from "./finetune-spam-data.js";

interface FoldLine {
  fold: number;
  of: number;
  n: number;
  nb: number;
  steps: { step: number; correct: number; rawCorrect?: number }[];
  last: { bothWrong: number; bertOnlyWrong: number; nbOnlyWrong: number };
  /** Prediction variants of the same runs (correct, and errors shared with / only of BERT). */
  variants?: Record<string, { correct: number; bothWrong: number; bertOnlyWrong: number }>;
  cpuSec: number;
}

const folds = new Map<number, FoldLine>();
for (const file of process.argv.slice(2))
  for (const line of readFileSync(file, "utf8").split("\n"))
    if (line.startsWith("CV {")) {
      const f = JSON.parse(line.slice(3)) as FoldLine;
      folds.set(f.fold, f);
    }
if (folds.size === 0) {
  console.error("no `CV {...}` lines in the given files");
  process.exit(1);
}
const all = [...folds.values()].sort((a, b) => a.fold - b.fold);
const n = all.reduce((s, f) => s + f.n, 0);
const nb = all.reduce((s, f) => s + f.nb, 0);
const pct = (c: number) => `${((100 * c) / n).toFixed(2)}%`;
console.log(
  `folds ${all.map((f) => f.fold).join(",")} of ${all[0].of}: ${n} held-out emails; naive Bayes ${pct(nb)} (${n - nb} errors); BERT CPU ${all.reduce((s, f) => s + f.cpuSec, 0)} s`,
);
console.log("| step | BERT accuracy | errors | raw-weight accuracy (EMA runs) |\n|---|---|---|---|");
for (const { step } of all[0].steps) {
  const at = all.map((f) => f.steps.find((x) => x.step === step));
  if (at.some((x) => !x)) continue;
  const c = at.reduce((s, x) => s + x!.correct, 0);
  const raw = at.every((x) => x!.rawCorrect !== undefined)
    ? pct(at.reduce((s, x) => s + x!.rawCorrect!, 0))
    : "-";
  console.log(`| ${step} | ${pct(c)} | ${n - c} | ${raw} |`);
}
const last = all.reduce(
  (s, f) => ({
    bothWrong: s.bothWrong + f.last.bothWrong,
    bertOnlyWrong: s.bertOnlyWrong + f.last.bertOnlyWrong,
    nbOnlyWrong: s.nbOnlyWrong + f.last.nbOnlyWrong,
  }),
  { bothWrong: 0, bertOnlyWrong: 0, nbOnlyWrong: 0 },
);
console.log(
  `final step, paired with naive Bayes: both wrong ${last.bothWrong}, only BERT wrong ${last.bertOnlyWrong}, only naive Bayes wrong ${last.nbOnlyWrong}`,
);
console.log(
  `  (McNemar exact p, final step vs naive Bayes: ${mcnemar(last.bertOnlyWrong, last.nbOnlyWrong).toFixed(2)})`,
);
if (all.every((f) => f.variants)) {
  console.log(
    "| prediction variant | BERT accuracy | errors | both wrong | only BERT wrong | only naive Bayes wrong | McNemar p |\n|---|---|---|---|---|---|---|",
  );
  for (const name of Object.keys(all[0].variants!)) {
    const v = all.map((f) => f.variants![name]);
    const c = v.reduce((s, x) => s + x.correct, 0);
    const both = v.reduce((s, x) => s + x.bothWrong, 0);
    const only = v.reduce((s, x) => s + x.bertOnlyWrong, 0);
    console.log(
      `| ${name} | ${pct(c)} | ${n - c} | ${both} | ${only} | ${n - nb - both} | ${mcnemar(only, n - nb - both).toFixed(2)} |`,
    );
  }
}
