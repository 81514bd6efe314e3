/** Naive-Bayes probe of the email views on the validation split (cheap; guides bench/finetune-spam.ts). */
import { loadMails, type Mail, mailText, naiveBayes, splitMails } from "./finetune-spam-data.js";

function nb(train: { text: string; spam: boolean }[], test: { text: string; spam: boolean }[]): number {
  const pred = naiveBayes(train, test);
  return pred.filter((p, i) => p === test[i].spam).length / test.length;
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
