/** Naive-Bayes probe of the email views on the validation split (cheap; guides bench/finetune-spam.ts). */
import { loadMails, type Mail, mailText, splitMails } from "./finetune-spam-data.js";

function words(t: string): string[] {
  return t.toLowerCase().match(/[a-z0-9$!'][a-z0-9$!'-]*/g) ?? [];
}
function nb(train: { text: string; spam: boolean }[], test: { text: string; spam: boolean }[]): number {
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
  let ok = 0;
  for (const m of test) {
    const s = [0, 1].map((c) => {
      let s = Math.log(docs[c] / train.length);
      for (const w of words(m.text)) s += Math.log(((counts[c].get(w) ?? 0) + 1) / (totals[c] + vocab));
      return s;
    });
    if (s[1] > s[0] === m.spam) ok++;
  }
  return ok / test.length;
}
const t0 = performance.now();
const mails = loadMails();
const sp = splitMails(mails);
console.log(
  `parsed ${mails.length} in ${((performance.now() - t0) / 1000).toFixed(1)} s; split ${sp.train.length}/${sp.val.length}/${sp.test.length}`,
);
const views: Record<string, (m: Mail) => string> = {
  "subject-body": (m) => mailText(m, "subject-body"),
  "headers-body": (m) => mailText(m, "headers-body"),
  "subject-body 4000 chars": (m) => mailText(m, "subject-body").slice(0, 4000),
  "headers-body first 600 chars": (m) => mailText(m, "headers-body").slice(0, 600),
  "headers only": (m) => mailText(m, "headers-body").split("\n").slice(0, 4).join("\n"),
};
for (const [name, f] of Object.entries(views)) {
  const tr = sp.train.map((m) => ({ text: f(m), spam: m.spam }));
  const va = sp.val.map((m) => ({ text: f(m), spam: m.spam }));
  console.log(`${name}: NB val acc ${(100 * nb(tr, va)).toFixed(2)}%`);
}
const m = sp.train.find((x) => x.html && x.spam)!;
console.log(mailText(m, "headers-body").slice(0, 800));
