/**
 * A generated Unicode torture set for tokenizers: emoji and ZWJ sequences, CJK, combining marks,
 * RTL text, lone surrogates, NUL bytes, CRLF, long whitespace runs, digit runs, odd-case
 * contractions, and (optionally) a 1 MB word. Deterministic.
 */
export function tortureStrings(opts: { bigWord?: boolean } = {}): string[] {
  const out: string[] = [
    "",
    "a",
    " ",
    "Hello, world!",
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽 thumbs 🧑🏿‍💻 coder",
    "🇺🇸🇯🇵🇩🇪 flags and keycaps 1️⃣ #️⃣ *️⃣",
    "中文分词测试：我爱北京天安门。日本語のテキスト、カタカナとひらがな。한국어 텍스트입니다.",
    "e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o\u0358 combining ́marks",
    "עברית ימין לשמאל مرحبا بالعالم العربية ‏RTL‎ mark ‪embed‬",
    "lone high \ud800 surrogate, lone low \udc00, reversed \udc00\ud800 pair, end \ud83d",
    "NUL\u0000byte and\u0000\u0000double and control \u0001\u001f\u007f",
    "CRLF line\r\nnext line\r\n\r\nblank\r\rCR only\n\n\nLF",
    " ".repeat(1000) + "after spaces",
    "\t\t\t\n\n   \n \u00a0\u00a0 \u2003\u2003 \u3000 nbsp and em spaces",
    "trailing whitespace   \n\t  ",
    "0123456789".repeat(50),
    "pi is 3.14159265358979323846264338327950288419716939937510 and 1,000,000 and ١٢٣٤ and ²³",
    "I'M HE'S WE'RE THEY'VE I'LL SHE'D it'S We'Re They'vE you'Ll 'tis 'TWAS rock'n'roll o'clock ''s '",
    "don't can't won't shouldn't y'all ma'am",
    "Mixed CASE wordsHELLOworld camelCaseIdentifier XMLHttpRequest iOS macOS ABCdef",
    "url: https://example.com/path/to/file?x=1&y=2#frag // comment /* block */",
    "code: function f(x) { return x ** 2 + 1; }\n\tif (a && b) { console.log(`tpl ${a}`); }",
    "math: 𝐀𝐁𝐂 𝑎𝑏𝑐 𝟏𝟐𝟑 ∑∫∂√∞ ≤≥≠ ½ ¼",
    "ſ long s, K kelvin, ǅ titlecase, ʰ modifier, ﬁ ligature, İstanbul, ß straße",
    "\ufeffBOM at start and zero\u200bwidth\u200cjoiners\u200d",
    "<|endoftext|> looks special but is text here",
    "\u0085 next line \u2028 line sep \u2029 para sep \u000b vt \u000c ff",
    "!!!???...,,,;;;::: ---___=== +++*** @@@###$$$%%%^^^&&&",
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ",
    "Ελληνικά Русский текст Українська Ქართული Հայերեն ไทย हिन्दी தமிழ்",
    "x".repeat(1500),
    "ab".repeat(600) + " " + "ééé".repeat(200),
  ];
  // deterministic random mixtures
  let seed = 12345;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const atoms = [
    "a", "Z", "é", "ß", "中", "😀", "👍🏽", "\u200d", "\u0301", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL",
    "1", "23", "٣", "!", "/", "\u00a0", "ǅ", "ʰ", "𝐀", "\ud800", "\0", "ſ", "א", "ب",
  ];
  for (let k = 0; k < 40; k++) {
    let s = "";
    const len = 5 + Math.floor(rnd() * 60);
    for (let i = 0; i < len; i++) s += atoms[Math.floor(rnd() * atoms.length)];
    out.push(s);
  }
  if (opts.bigWord) out.push("supercalifragilistic".repeat(52429).slice(0, 1 << 20));
  return out;
}
