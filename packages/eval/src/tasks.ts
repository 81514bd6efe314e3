import { Random, TypeformerError } from "@typeformer/core";
import type { Task, TaskExample, TaskTemplate } from "./harness.js";

/** `Q: …\nA: …` with a space before the answer. */
export const QA_TEMPLATE: TaskTemplate = {
  prompt: (ex) => `Q: ${ex.input}\nA:`,
  target: (a) => ` ${a}`,
  separator: "\n\n",
};

/**
 * The held-out tail of each document: the last `fraction` of its characters, starting a little later
 * (`margin` of the document) so that no text the trainer's train split saw leaks in when token and
 * character boundaries differ (`prepareDataset` holds out each document's last `valFraction` tokens).
 */
export function heldOutText(documents: string[], fraction = 0.1, margin = 0.005): string[] {
  if (!(fraction > 0 && fraction < 1)) {
    throw new TypeformerError("INVALID_ARGUMENT", `fraction must be in (0, 1); received ${fraction}`, {
      fraction,
    });
  }
  return documents
    .map((d) => d.slice(Math.ceil(d.length * (1 - fraction + margin))))
    .filter((d) => d.length > 0);
}

function shuffle<T>(xs: T[], rng: Random): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Places `answer` among `distractors` at a seeded position; returns choices and the answer index. */
function withDistractors(
  answer: string,
  distractors: string[],
  rng: Random,
): { choices: string[]; answer: number } {
  const choices = shuffle([answer, ...distractors], rng);
  return { choices, answer: choices.indexOf(answer) };
}

export interface ClozeOptions {
  /** Questions (default 100). */
  n?: number;
  seed?: number;
  /** Choices per question (default 4). */
  choices?: number;
  /** Words per sentence kept (default [6, 40]). */
  minWords?: number;
  maxWords?: number;
  name?: string;
}

/**
 * Cloze multiple choice from sentences of (held-out) text, LAMBADA-style: the context is a sentence
 * without its last word; the choices are that word and the last words of other sentences.
 */
export function clozeTask(text: string | string[], opts: ClozeOptions = {}): Task {
  const rng = new Random(opts.seed ?? 0);
  const k = opts.choices ?? 4;
  const sentences: { context: string; word: string }[] = [];
  for (const t of Array.isArray(text) ? text : [text]) {
    for (const raw of t.replace(/\s+/g, " ").split(/(?<=[.!?])\s+/)) {
      const m = /^(.*\S)\s+([A-Za-z][A-Za-z'-]*[A-Za-z])([.!?]["”’]?)$/.exec(raw.trim());
      if (!m) continue;
      const words = m[1].split(" ").length + 1;
      if (words < (opts.minWords ?? 6) || words > (opts.maxWords ?? 40)) continue;
      sentences.push({ context: m[1], word: m[2] });
    }
  }
  const vocab = [...new Set(sentences.map((s) => s.word.toLowerCase()))];
  if (sentences.length === 0 || vocab.length < k) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `cloze: found ${sentences.length} usable sentences and ${vocab.length} distinct final words; need ≥ ${k}`,
      { sentences: sentences.length },
    );
  }
  const picked = shuffle(sentences, rng).slice(0, opts.n ?? 100);
  const examples: TaskExample[] = picked.map((s) => {
    const distractors: string[] = [];
    while (distractors.length < k - 1) {
      const w = vocab[rng.int(vocab.length)];
      if (w !== s.word.toLowerCase() && !distractors.includes(w)) distractors.push(w);
    }
    return { input: s.context, ...withDistractors(s.word, distractors, rng) };
  });
  return {
    name: opts.name ?? "cloze",
    description: `last word of held-out sentences among ${k} choices (other sentences' last words)`,
    kind: "multiple-choice",
    examples,
    template: { prompt: (ex) => ex.input, target: (a) => ` ${a}`, separator: " " },
  };
}

export interface SyntheticOptions {
  n?: number;
  seed?: number;
  /** "generate" (exact match, default) or "multiple-choice" (4 choices). */
  kind?: Task["kind"];
}

/** Two-operand integer arithmetic: `Q: 17 + 5 =` → `22`. */
export function arithmeticTask(
  opts: SyntheticOptions & { maxOperand?: number; ops?: ("+" | "-" | "*")[] } = {},
): Task {
  const rng = new Random(opts.seed ?? 0);
  const max = opts.maxOperand ?? 20;
  const ops = opts.ops ?? ["+", "-"];
  const make = (): TaskExample => {
    const a = rng.int(max + 1);
    const b = rng.int(max + 1);
    const op = ops[rng.int(ops.length)];
    const v = op === "+" ? a + b : op === "-" ? a - b : a * b;
    const answer = String(v);
    const ex: TaskExample = { input: `${a} ${op} ${b} =`, answer };
    if (opts.kind === "multiple-choice") {
      const ds = new Set<string>();
      while (ds.size < 3) {
        const d = v + (rng.int(2) ? 1 : -1) * (1 + rng.int(5));
        if (String(d) !== answer) ds.add(String(d));
      }
      Object.assign(ex, withDistractors(answer, [...ds], rng));
    }
    return ex;
  };
  const examples = Array.from({ length: opts.n ?? 50 }, make);
  const fewShotPool = Array.from({ length: 32 }, make);
  return {
    name: "arithmetic",
    description: `a ${ops.join("/")} b with operands 0..${max}`,
    kind: opts.kind ?? "generate",
    examples,
    fewShotPool,
    template: QA_TEMPLATE,
    maxNewTokens: 8,
  };
}

const WORDS = [
  "apple",
  "river",
  "stone",
  "cloud",
  "tiger",
  "lemon",
  "paper",
  "glass",
  "ocean",
  "house",
  "candle",
  "forest",
  "silver",
  "winter",
  "garden",
  "rocket",
  "violin",
  "marble",
  "pepper",
  "island",
];

/** String transforms: reverse, upper-case, first letter, word length. */
export function stringTransformTask(opts: SyntheticOptions = {}): Task {
  const rng = new Random(opts.seed ?? 0);
  const ops: [string, (w: string) => string][] = [
    ["reverse", (w) => [...w].reverse().join("")],
    ["uppercase", (w) => w.toUpperCase()],
    ["first letter of", (w) => w[0]],
    ["length of", (w) => String(w.length)],
  ];
  const make = (): TaskExample => {
    const w = WORDS[rng.int(WORDS.length)];
    const [name, f] = ops[rng.int(ops.length)];
    const answer = f(w);
    const ex: TaskExample = { input: `${name} ${w}`, answer, meta: { group: name } };
    if (opts.kind === "multiple-choice") {
      const ds = new Set<string>();
      for (const [, g] of shuffle(ops, rng)) if (g(w) !== answer && ds.size < 3) ds.add(g(w));
      while (ds.size < 3) ds.add(f(WORDS[rng.int(WORDS.length)]));
      ds.delete(answer);
      Object.assign(ex, withDistractors(answer, [...ds].slice(0, 3), rng));
    }
    return ex;
  };
  return {
    name: "string-transform",
    description: "reverse / uppercase / first letter / length of a word",
    kind: opts.kind ?? "generate",
    examples: Array.from({ length: opts.n ?? 40 }, make),
    fewShotPool: Array.from({ length: 32 }, make),
    template: QA_TEMPLATE,
    maxNewTokens: 10,
  };
}

export interface FactEntity {
  name: string;
  city: string;
  /** Whether the entity's fact is in the training text ({@link factCorpus}). */
  seen: boolean;
}

export interface FactTable {
  entities: FactEntity[];
  cities: string[];
  seed: number;
}

export const FACT_CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Perth", "Seoul"];
const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "ren",
  "to",
  "sa",
  "vel",
  "dor",
  "an",
  "bri",
  "qu",
  "zel",
  "mo",
  "ti",
  "var",
  "nu",
];

/**
 * A made-up fact table (invented names → cities), split into entities whose facts appear in the
 * training text (`seen`) and entities that only appear in questions (`unseen`): a model can know the
 * former and can only guess the latter, so confident answers there are made up.
 */
export function factTable(
  opts: { entities?: number; unseenFraction?: number; seed?: number; cities?: string[] } = {},
): FactTable {
  const seed = opts.seed ?? 0;
  const rng = new Random(`facts:${seed}`);
  const cities = opts.cities ?? FACT_CITIES;
  const n = opts.entities ?? 40;
  const names = new Set<string>();
  const cap = (s: string) => s[0].toUpperCase() + s.slice(1);
  while (names.size < n) {
    const part = () =>
      Array.from({ length: 2 + rng.int(2) }, () => SYLLABLES[rng.int(SYLLABLES.length)]).join("");
    names.add(`${cap(part())} ${cap(part())}`);
  }
  const unseen = Math.round(n * (opts.unseenFraction ?? 0.5));
  const entities = shuffle([...names], rng).map((name, i) => ({
    name,
    city: cities[rng.int(cities.length)],
    seen: i >= unseen,
  }));
  return { entities, cities, seed };
}

/** Training text stating every seen fact `repeats` times in varied sentences. */
export function factCorpus(table: FactTable, repeats = 20): string {
  const rng = new Random(`facts-corpus:${table.seed}`);
  const forms = [
    (e: FactEntity) => `${e.name} lives in ${e.city}.`,
    (e: FactEntity) => `The home of ${e.name} is ${e.city}.`,
    (e: FactEntity) => `Q: Where does ${e.name} live?\nA: ${e.city}`,
  ];
  const lines: string[] = [];
  for (let r = 0; r < repeats; r++)
    for (const e of shuffle(
      table.entities.filter((x) => x.seen),
      rng,
    ))
      lines.push(forms[r % forms.length](e));
  return `${lines.join("\n")}\n`;
}

/** Multiple choice over the table's cities, grouped into seen / unseen entities. */
export function factTask(table: FactTable): Task {
  const examples = table.entities.map<TaskExample>((e) => ({
    input: `Where does ${e.name} live?`,
    choices: table.cities,
    answer: table.cities.indexOf(e.city),
    meta: { group: e.seen ? "seen" : "unseen" },
  }));
  return {
    name: "facts",
    description: `city of ${table.entities.length} invented people; "unseen" ones are absent from the training text`,
    kind: "multiple-choice",
    examples,
    fewShotPool: examples.filter((e) => e.meta?.group === "seen"),
    template: QA_TEMPLATE,
  };
}
