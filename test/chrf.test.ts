import { test } from "node:test";
import assert from "node:assert/strict";
import { chrfFromStats, corpusChrf, formatChrfScore, sentenceChrf } from "../src/metrics/chrf.js";

// Expected values: "published" ones come from sacrebleu's test/test_chrf.py and README
// (checked with that test's tolerance); "2.6.0" ones were computed with sacrebleu 2.6.0 and
// are checked exactly.

const near = (actual: number, expected: number, eps = 1e-4) =>
  assert.ok(Math.abs(actual - expected) < eps, `${actual} is not within ${eps} of ${expected}`);

test("published: chrF with epsilon smoothing (beta 3)", () => {
  const cases: [string[], string[], number][] = [
    [["abcdefg"], ["hijklmnop"], 0.0],
    [["a"], ["b"], 0.0],
    [[""], ["b"], 0.0],
    [[""], ["ref"], 0.0],
    [[""], ["reference"], 0.0],
    [["aa"], ["ab"], 8.3333],
    [["a", "b"], ["a", "c"], 8.3333],
    [["a"], ["a"], 16.6667],
    [["a b c"], ["a b c"], 50.0],
    [["a b c"], ["abc"], 50.0],
    [
      [" risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."],
      ["risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."],
      63.36173,
    ],
    [
      [" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "],
      ["Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."],
      64.1302698,
    ],
    [["Niemand hat die Absicht, eine Mauer zu errichten"], ["Niemand hat die Absicht, eine Mauer zu errichten"], 100.0],
  ];
  for (const [hyps, refs, expected] of cases) {
    near(corpusChrf(hyps, [refs], { charOrder: 6, wordOrder: 0, beta: 3, epsSmoothing: true }).score, expected);
  }
});

test("published: chrF with effective-order averaging (sacrebleu's default)", () => {
  const cases: [string[], string[], number][] = [
    [["a"], ["a"], 100.0],
    [[""], ["reference"], 0.0],
    [["a b c"], ["a b c"], 100.0],
    [["a b c"], ["abc"], 100.0],
    [[""], ["c"], 0.0],
    [["a", "b"], ["a", "c"], 50.0],
    [["aa"], ["ab"], 25.0],
  ];
  for (const [hyps, refs, expected] of cases) near(corpusChrf(hyps, [refs], { beta: 3 }).score, expected);
});

test("published: chrF keeping whitespace", () => {
  near(
    corpusChrf(
      ["Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."],
      [["Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."]],
      { beta: 3, whitespace: true },
    ).score,
    67.3481606,
  );
  near(
    corpusChrf(
      ["risk assessment must be made of those who are qualified and expertise in the sector - these are the scientists ."],
      [["risk assessment has to be undertaken by those who are qualified and expert in that area - that is the scientists ."]],
      { beta: 3, whitespace: true },
    ).score,
    65.2414427,
  );
});

test("published: sentence-level chrF with epsilon smoothing", () => {
  const cases: [string, string, number][] = [
    [
      "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
      "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
      39.14078509,
    ],
    [
      "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
      "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.",
      31.22557079,
    ],
    [
      "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
      "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.",
      57.15704367,
    ],
  ];
  for (const [hyp, ref, expected] of cases) near(sentenceChrf(hyp, [ref], { epsSmoothing: true }).score, expected);
});

const REFS = [
  ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
];
const HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."];

test("published + 2.6.0: chrF2 and chrF2++ on the README example, with signatures", () => {
  const chrf = corpusChrf(HYPS, REFS);
  assert.equal(formatChrfScore(chrf), "chrF2 = 59.73"); // README
  assert.equal(chrf.score, 59.72751782684763);
  assert.equal(chrf.signature, "nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0");
  assert.deepEqual([chrf.name, chrf.charOrder, chrf.wordOrder, chrf.beta], ["chrF2", 6, 0, 2]);

  const plusPlus = corpusChrf(HYPS, REFS, { wordOrder: 2 });
  assert.equal(formatChrfScore(plusPlus), "chrF2++ = 59.15");
  assert.equal(plusPlus.score, 59.15310444399262);
  assert.equal(plusPlus.signature, "nrefs:2|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.6.0");

  const options = { epsSmoothing: true, lowercase: true, whitespace: true };
  const eps = corpusChrf(HYPS, REFS, options);
  assert.equal(eps.score, 66.12084572045028);
  assert.equal(eps.signature, "nrefs:2|case:lc|eff:no|nc:6|nw:0|space:yes|version:2.6.0");
  const epsPlus = corpusChrf(HYPS, REFS, { ...options, wordOrder: 2 });
  assert.equal(epsPlus.score, 63.9297627446347);
  assert.equal(formatChrfScore(epsPlus), "chrF2++ = 63.93");
});

test("2.6.0: sentence-level chrF2 and chrF2++", () => {
  const ref = "producţia de zahăr brut se exprimă în zahăr alb;";
  const hyp = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
  assert.equal(sentenceChrf(hyp, [ref]).score, 46.16121170087866);
  assert.equal(formatChrfScore(sentenceChrf(hyp, [ref], { wordOrder: 2 })), "chrF2++ = 42.97");
  assert.equal(sentenceChrf(hyp, [ref], { wordOrder: 2 }).score, 42.97031055499004);
  assert.equal(sentenceChrf(hyp, [ref]).signature, "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0");
});

test("2.6.0: best reference per segment; corpus statistics are summed before the F score", () => {
  const both = sentenceChrf("the cat sat", ["a dog stood", "the cat sat"]);
  assert.equal(both.score, 100);
  assert.equal(both.signature.split("|")[0], "nrefs:2");
  // Sentence scores 100 and 0, but the corpus score is not their mean.
  assert.equal(corpusChrf(["a b c", "x"], [["a b c", "y"]]).score, 91.66666666666666);
  assert.equal(chrfFromStats([4, 4, 3, 2, 2, 2, 1, 1, 1], { charOrder: 3 }), 91.66666666666666);
});

test("input errors", () => {
  assert.throws(() => corpusChrf(["a"], [["a", "b"]]), /reference stream 1 has 2 segments/);
  assert.throws(() => corpusChrf(["a"], [["a"]], { charOrder: -1 }), /charOrder must be a non-negative integer/);
  assert.throws(() => corpusChrf(["a"], [["a"]], { charOrder: 0, wordOrder: 0 }), /must be positive/);
});
