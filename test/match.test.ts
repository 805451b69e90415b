import { test } from "node:test";
import assert from "node:assert/strict";
import { exactMatch, tokenAccuracy } from "../src/metrics/match.js";

test("exactMatch: fraction of hypotheses equal to (any of) their references", () => {
  assert.equal(exactMatch(["a b", "c", "d"], ["a b", "x", ["y", "d"]]), 2 / 3);
  // whitespace is normalized by default, case only on request
  assert.equal(exactMatch(["  a \t b "], ["a b"]), 1);
  assert.equal(exactMatch(["  a b"], ["a b"], { normalizeWhitespace: false }), 0);
  assert.equal(exactMatch(["Paris"], ["paris"]), 0);
  assert.equal(exactMatch(["Paris"], ["paris"], { lowercase: true }), 1);
  assert.throws(() => exactMatch(["a"], []), /1 hypotheses but 0 references/);
  assert.throws(() => exactMatch([], []), /no hypotheses/);
});

test("tokenAccuracy: position-wise, skipping ignored targets", () => {
  assert.deepEqual(tokenAccuracy([1, 2, 3, 4], [1, 2, 0, -100]), { correct: 2, total: 3, accuracy: 2 / 3 });
  assert.deepEqual(tokenAccuracy(Int32Array.from([5, 6]), Int32Array.from([5, 7]), -1), { correct: 1, total: 2, accuracy: 0.5 });
  assert.deepEqual(tokenAccuracy(["a", "b"], ["a", "<pad>"], "<pad>"), { correct: 1, total: 1, accuracy: 1 });
  assert.deepEqual(tokenAccuracy([], []), { correct: 0, total: 0, accuracy: 0 });
  assert.throws(() => tokenAccuracy([1], [1, 2]), /1 predictions but 2 targets/);
});
