import { test } from "node:test";
import assert from "node:assert/strict";
import { computeBleu, corpusBleu, formatBleuScore, sentenceBleu, type BleuOptions } from "../src/metrics/bleu.js";
import { exp, log } from "../src/metrics/libm.js";
import { pyFixed, pyRstrip, pySplit, pySum } from "../src/metrics/pycompat.js";
import { tokenize13a, tokenizeChar, tokenizeIntl } from "../src/metrics/tokenizers.js";

// Two sources of expected values:
// - "published": the values in sacrebleu's own tests (test/test_bleu.py, test_sentence_bleu.py)
//   and README, checked with the tolerance those tests use;
// - "2.6.0": computed here with sacrebleu 2.6.0 on CPython 3.13 (result strings and full
//   doubles), checked for exact equality.

const near = (actual: number, expected: number, eps: number) =>
  assert.ok(Math.abs(actual - expected) < eps, `${actual} is not within ${eps} of ${expected}`);

// sacrebleu's README example: three segments, two reference streams.
const REFS = [
  ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
];
const HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];

/** sacrebleu.raw_corpus_bleu: no tokenization, floor smoothing, effective order. */
const rawCorpusBleu = (hyps: string[], refs: string[][], smoothValue: number | null = null) =>
  corpusBleu(hyps, refs, { tokenize: "none", smoothMethod: "floor", smoothValue, effectiveOrder: true });

test("published: corpus BLEU with each tokenizer and default settings", () => {
  const cases: [string[], BleuOptions, number][] = [
    [HYPS, {}, 48.530827],
    [["", "", ""], {}, 0.0], // empty hypotheses are scored, not dropped
    [HYPS, { tokenize: "none" }, 49.1919566],
    [HYPS, { tokenize: "13a" }, 48.530827],
    [HYPS, { tokenize: "intl" }, 43.91623493],
    [HYPS, { smoothMethod: "none" }, 48.530827],
  ];
  for (const [hyps, options, expected] of cases) near(corpusBleu(hyps, REFS, options).score, expected, 1e-8);
});

test("published: raw corpus BLEU, effective order, statistics and the floor offset", () => {
  near(rawCorpusBleu(["this is a test", "another test"], [["ref1", "ref2"]], 0.01).score / 100, 0.0, 1e-8);
  near(rawCorpusBleu(["this is a test"], [["this is a test"]], 0.01).score / 100, 1.0, 1e-8);
  near(rawCorpusBleu(["this is a fest"], [["this is a test"]], 0.01).score / 100, 0.223606797749979, 1e-8);

  near(rawCorpusBleu(["test"], [["a test"]], 0.01).score / 100, 0.3678794411714425, 1e-8);
  near(rawCorpusBleu(["a test"], [["a test"]], 0.01).score / 100, 1.0, 1e-8);
  near(rawCorpusBleu(["a little test"], [["a test"]], 0.01).score / 100, 0.03218297948685433, 1e-8);

  const hyp = ["am I am a character sequence"];
  const ref = [["I am a symbol string sequence a a"]];
  const stats = rawCorpusBleu(hyp, ref, 0.01);
  assert.deepEqual(
    [stats.counts, stats.totals],
    [
      [4, 2, 1, 0],
      [6, 5, 4, 3],
    ],
  );
  near(rawCorpusBleu(hyp, ref, 0.0).score / 100, 0, 1e-8);
  near(rawCorpusBleu(hyp, ref, null).score / 100, 0.1555722182, 1e-8); // floor's default 0.1
});

test("published: computeBleu from statistics, including degenerate ones", () => {
  const s = computeBleu({ correct: [9, 7, 5, 3], total: [10, 8, 6, 4], sysLen: 11, refLen: 11 });
  near(s.score / 100, 0.8375922397, 1e-8);
  const degenerate: [number[], number[], number, number, number][] = [
    [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0.0],
    [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.0],
    [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.1],
    [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
  ];
  for (const [correct, total, sysLen, refLen, offset] of degenerate) {
    const r = computeBleu({ correct, total, sysLen, refLen }, { smoothMethod: "floor", smoothValue: offset });
    assert.equal(r.score, 0);
  }
});

test("published: max n-gram order 1..6", () => {
  const expected = ["77.65", "60.50", "53.93", "48.53", "46.14", "43.28"];
  expected.forEach((score, i) => assert.equal(pyFixed(corpusBleu(HYPS, REFS, { maxNgramOrder: i + 1 }).score, 2), score));
});

// sacrebleu issue #98: a Romanian sentence with cedilla/comma-below variants.
const REF = "producţia de zahăr brut se exprimă în zahăr alb;";
const SYS = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";

test("published: sentence BLEU with every smoothing method, tokenizer and lowercase", () => {
  const cases: [BleuOptions, number][] = [
    [{ smoothMethod: "exp" }, 8.493],
    [{ smoothMethod: "none" }, 0.0],
    [{ smoothMethod: "floor" }, 4.51688],
    [{ smoothMethod: "floor", smoothValue: 0.1 }, 4.51688],
    [{ smoothMethod: "floor", smoothValue: 0.5 }, 10.1],
    [{ smoothMethod: "add-k" }, 14.882],
    [{ smoothMethod: "add-k", smoothValue: 1 }, 14.882],
    [{ smoothMethod: "add-k", smoothValue: 2 }, 21.389],
    [{ tokenize: "none" }, 7.347],
    [{ tokenize: "intl" }, 8.493],
    [{ tokenize: "char" }, 40.8759],
    [{ tokenize: "char", lowercase: true }, 42.0267],
  ];
  for (const [options, expected] of cases) near(sentenceBleu(SYS, [REF], options).score, expected, 1e-3);
  // sacrebleu #141: no match at all is 0 whatever the smoothing
  for (const smoothMethod of ["exp", "none", "floor", "add-k"] as const) {
    assert.equal(sentenceBleu("this is a cat", ["okay thanks"], { smoothMethod }).score, 0);
  }
});

test("published: README result strings and signatures, fixed and variable reference counts", () => {
  const s = corpusBleu(HYPS, REFS);
  assert.equal(formatBleuScore(s), "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)");
  assert.equal(s.signature, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");

  // A missing reference (null) makes the count variable.
  const variable = corpusBleu(HYPS, [[null, ...REFS[0]!.slice(1)], REFS[1]!]);
  assert.equal(formatBleuScore(variable), "BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)");
  assert.equal(variable.signature, "nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
  assert.equal(variable.score, 29.443657650964873);

  // An empty string is a real (empty) reference in sacrebleu's code, whatever its README says.
  const empty = corpusBleu(HYPS, [["", ...REFS[0]!.slice(1)], REFS[1]!]);
  assert.equal(empty.score, 29.443657650964873);
  assert.equal(empty.signature, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
});

test("2.6.0: corpus BLEU with several references under every smoothing method, tokenizer and option", () => {
  const cases: [BleuOptions, number, string, string][] = [
    [{}, 48.530827009929865, "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)", "tok:13a|smooth:exp"],
    [
      { smoothMethod: "floor" },
      48.530827009929865,
      "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)",
      "tok:13a|smooth:floor[0.10]",
    ],
    [
      { smoothMethod: "floor", smoothValue: 0.5 },
      48.530827009929865,
      "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)",
      "tok:13a|smooth:floor[0.50]",
    ],
    [
      { smoothMethod: "add-k" },
      52.70109002482467,
      "BLEU = 52.70 82.4/53.3/50.0/44.4 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)",
      "tok:13a|smooth:add-k[1.00]",
    ],
    [
      { smoothMethod: "add-k", smoothValue: 2 },
      56.03183545640216,
      "BLEU = 56.03 82.4/56.2/53.8/50.0 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)",
      "tok:13a|smooth:add-k[2.00]",
    ],
    [
      { smoothMethod: "none" },
      48.530827009929865,
      "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)",
      "tok:13a|smooth:none",
    ],
    [
      { tokenize: "none" },
      49.1919566004728,
      "BLEU = 49.19 71.4/54.5/50.0/40.0 (BP = 0.931 ratio = 0.933 hyp_len = 14 ref_len = 15)",
      "tok:none|smooth:exp",
    ],
    [
      { tokenize: "char" },
      72.61064153440596,
      "BLEU = 72.61 91.4/76.4/67.3/59.2 (BP = 1.000 ratio = 1.018 hyp_len = 58 ref_len = 57)",
      "tok:char|smooth:exp",
    ],
  ];
  for (const [options, score, text, sig] of cases) {
    const s = corpusBleu(HYPS, REFS, options);
    assert.equal(s.score, score, JSON.stringify(options));
    assert.equal(formatBleuScore(s), text);
    assert.equal(s.signature, `nrefs:2|case:mixed|eff:no|${sig}|version:2.6.0`);
  }
  // add-k reports its added counts, as sacrebleu does
  const addK = corpusBleu(HYPS, REFS, { smoothMethod: "add-k" });
  assert.deepEqual(
    [addK.counts, addK.totals],
    [
      [14, 8, 6, 4],
      [17, 15, 12, 9],
    ],
  );

  const intl = corpusBleu(HYPS, REFS, { tokenize: "intl" });
  near(intl.score, 43.91623493336995, 1e-12);
  assert.equal(formatBleuScore(intl), "BLEU = 43.92 73.7/43.8/38.5/30.0 (BP = 1.000 ratio = 1.056 hyp_len = 19 ref_len = 18)");

  assert.equal(corpusBleu(HYPS, REFS, { lowercase: true }).signature, "nrefs:2|case:lc|eff:no|tok:13a|smooth:exp|version:2.6.0");
  assert.equal(corpusBleu(HYPS, REFS, { effectiveOrder: true }).signature, "nrefs:2|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.6.0");
});

test("2.6.0: effective order — on by default for sentences, off for corpora", () => {
  const on = sentenceBleu("The cat", ["The cat sat"]);
  assert.equal(on.score, 60.653065971263366);
  assert.equal(formatBleuScore(on), "BLEU = 60.65 100.0/100.0/0.0/0.0 (BP = 0.607 ratio = 0.667 hyp_len = 2 ref_len = 3)");
  assert.equal(on.signature, "nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.6.0");
  assert.equal(sentenceBleu("The cat", ["The cat sat"], { effectiveOrder: false }).score, 0);
  assert.equal(corpusBleu(["The cat"], [["The cat sat"]]).score, 0);
  assert.equal(corpusBleu(["The cat"], [["The cat sat"]], { effectiveOrder: true }).score, 60.653065971263366);
  assert.equal(sentenceBleu("test", ["a test"]).score, 36.78794411714425);

  const cases: [BleuOptions, number, string][] = [
    [{}, 8.493098745313143, "BLEU = 8.49 35.7/15.4/4.2/2.3 (BP = 1.000 ratio = 1.400 hyp_len = 14 ref_len = 10)"],
    [{ smoothMethod: "floor" }, 4.516881220954753, "BLEU = 4.52 35.7/15.4/0.8/0.9 (BP = 1.000 ratio = 1.400 hyp_len = 14 ref_len = 10)"],
    [{ smoothMethod: "add-k" }, 14.882560178972215, "BLEU = 14.88 35.7/21.4/7.7/8.3 (BP = 1.000 ratio = 1.400 hyp_len = 14 ref_len = 10)"],
    [{ smoothMethod: "none" }, 0.0, "BLEU = 0.00 35.7/15.4/0.0/0.0 (BP = 1.000 ratio = 1.400 hyp_len = 14 ref_len = 10)"],
    [
      { tokenize: "char", lowercase: true },
      42.026782064102996,
      "BLEU = 42.03 60.7/50.0/37.3/27.6 (BP = 1.000 ratio = 1.525 hyp_len = 61 ref_len = 40)",
    ],
  ];
  for (const [options, score, text] of cases) {
    const s = sentenceBleu(SYS, [REF], options);
    assert.equal(s.score, score);
    assert.equal(formatBleuScore(s), text);
  }
});

test("2.6.0: the tokenizers", () => {
  assert.equal(tokenize13a("Hello, world. It costs $5.00 (or 1,000.50 yen)!"), "Hello , world . It costs $ 5.00 ( or 1,000.50 yen ) !");
  assert.equal(tokenize13a("e-mail 2020-2021 <skipped> &amp;lt;b&amp;gt; &quot;hi&quot; &lt;"), 'e-mail 2020 - 2021 < b > " hi " <');
  assert.equal(tokenize13a("line-\nbreak\nhere"), "linebreak here");
  assert.equal(tokenize13a("U.S. a.b,c 3.14,5 x."), "U . S . a . b , c 3.14,5 x .");
  assert.equal(tokenize13a("Größe: 12°C; 50% — «quoted» …"), "Größe : 12°C ; 50 % — «quoted» …");
  assert.equal(
    tokenizeIntl("e-mail 2020-2021 <skipped> &amp;lt;b&amp;gt; &quot;hi&quot; &lt;"),
    "e - mail 2020-2021 < skipped > & amp ; lt ; b & amp ; gt ; & quot ; hi & quot ; & lt ;",
  );
  assert.equal(tokenizeIntl("Größe: 12°C; 50% — «quoted» …"), "Größe : 12 ° C ; 50 % — « quoted » …");
  assert.equal(tokenizeIntl("line-\nbreak\nhere"), "line - break here");
  assert.equal(tokenizeChar("日本語 ok"), "日 本 語   o k");
  assert.equal(tokenizeChar("😀!"), "😀 !"); // code points, not UTF-16 units
});

test("Python string and float semantics", () => {
  // Python's whitespace: U+001C and U+0085 are, U+FEFF is not.
  assert.deepEqual(pySplit("a\x1cb\x85c\ufeffd\u3000e"), ["a", "b", "c\ufeffd", "e"]);
  assert.equal(pyRstrip("x \t\u2029\n"), "x");
  // Python rounds exact ties half to even; toFixed rounds them up.
  assert.deepEqual(
    [pyFixed(1.25, 1), pyFixed(0.0625, 3), pyFixed(2.5, 0), pyFixed(0.125, 2), pyFixed(0.375, 2), pyFixed(12.125, 2), pyFixed(-0, 2)],
    ["1.2", "0.062", "2", "0.12", "0.38", "12.12", "-0.00"],
  );
  assert.equal(pyFixed(0.35, 1), "0.3"); // 0.35 is below the tie as a double
  assert.equal(
    formatBleuScore({
      score: 12.125,
      precisions: [1.25, 2.75, 0.25, 100],
      bp: 0.0625,
      ratio: 0.5,
      sysLen: 1,
      refLen: 2,
      counts: [],
      totals: [],
    }),
    "BLEU = 12.12 1.2/2.8/0.2/100.0 (BP = 0.062 ratio = 0.500 hyp_len = 1 ref_len = 2)",
  );
  // CPython ≥ 3.12 sums floats with Neumaier compensation.
  assert.equal(pySum([0.1, 0.2, 0.3]), 0.6);
  assert.equal(
    [0.1, 0.2, 0.3].reduce((a, b) => a + b),
    0.6000000000000001,
  );
});

test("exp and log are correctly rounded, like glibc's (which CPython uses)", () => {
  // [x, CPython's math.exp(x)] and [x, math.log(x)] where V8's Math.exp / Math.log are an ulp off.
  const exps = [
    [-1.0530763405892274, 0.3488628755960785],
    [-1.5927928566535088, 0.20335687130758653],
    [-2.260281502140509, 0.10432111400410192],
    [-2.3535564923258034, 0.09503058495260873],
  ];
  const logs = [
    [13.788884789796672, 2.6238628175992784],
    [12.930635721257364, 2.559599357952352],
    [36.552705807817155, 3.598755213765314],
    [46.73520196913784, 3.8444976702072746],
  ];
  for (const [x, y] of exps) assert.equal(exp(x!), y);
  for (const [x, y] of logs) assert.equal(log(x!), y);
  assert.equal(exp(0), 1);
  assert.equal(log(1), 0);
  assert.equal(exp(-1e10), 0);
  assert.ok(Number.isNaN(log(-1)));
});

test("input errors", () => {
  assert.throws(() => corpusBleu(["a", "b"], [["a"]]), /reference stream 1 has 1 segments, hypotheses have 2/);
  assert.throws(() => corpusBleu(["a"], [[null]]), /segment 1 has no reference/);
  assert.throws(() => corpusBleu([], [[]]), /no hypotheses/);
  assert.throws(() => corpusBleu(["a"], [["a"]], { tokenize: "zh" as never }), /unknown tokenizer "zh"/);
  assert.throws(() => corpusBleu(["a"], [["a"]], { smoothMethod: "lin" as never }), /unknown smoothing method/);
});
