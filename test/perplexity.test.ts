/**
 * Perplexity over texts longer than the window (transformers' "Perplexity of fixed-length models"):
 * the sliding window equals full context when the text fits, and matches the PyTorch reference
 * run window by window when it does not.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend } from "../src/backend/index.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { perplexity, type PerplexityOptions } from "../src/metrics/perplexity.js";
import { UserError } from "../src/core/errors.js";
import { IGNORE_INDEX } from "../src/models/loss.js";
import { REPO, STORIES, tempDir } from "./helpers/paths.js";
import { PYTHON, torchAvailable } from "./helpers/reference.js";
import { LONG_TEXT, STORY_TEXTS } from "./helpers/reference-cases.js";

let stories: LoadedModel;
before(async () => {
  await initBackend();
  stories = await loadModel(STORIES);
});

describe("perplexity", () => {
  for (const stride of [1, 7, 64]) {
    test(`texts shorter than the window: sliding window = full context, at stride ${stride}`, () => {
      const examples = STORY_TEXTS.map((t) => ({ inputIds: stories.tokenizer!.encode(t) }));
      const full = perplexity(stories.model, examples);
      const windowed = perplexity(stories.model, examples, { maxLength: 64, stride });
      assert.equal(windowed.tokens, full.tokens);
      assert.ok(Math.abs(windowed.loss - full.loss) < 1e-6, `${windowed.loss} vs ${full.loss}`);
    });
  }

  const OPTION_ERRORS: [name: string, options: PerplexityOptions, message: string][] = [
    [
      "a stride beyond the window",
      { maxLength: 64, stride: 65 },
      "perplexity: stride: expected an integer in 1…64 (the window length), got 65",
    ],
    ["a stride of 0", { stride: 0 }, "perplexity: stride: expected an integer in 1…512 (the window length), got 0"],
    [
      "a window of one token",
      { maxLength: 1 },
      "perplexity: maxLength: expected an integer ≥ 2 (a window scores each token from the ones before it), got 1",
    ],
  ];
  for (const [name, options, message] of OPTION_ERRORS) {
    test(`${name} is a UserError`, () => {
      assert.throws(
        () => perplexity(stories.model, [{ inputIds: [1, 2, 3] }], options),
        (e: unknown) => e instanceof UserError && e.message === message,
      );
    });
  }

  test("rows with nothing to score are a UserError naming them, not a NaN loss", () => {
    const rows = [
      { inputIds: [1], source: "a.jsonl:1" },
      { inputIds: [1, 5], labels: [-100, -100], source: "a.jsonl:2" },
    ];
    assert.throws(() => perplexity(stories.model, rows), /^UserError: perplexity: no token to score in a\.jsonl:1 … a\.jsonl:2: /);
  });

  test("per-example figures combine token-weighted into the corpus figure", () => {
    const examples = STORY_TEXTS.map((t) => ({ inputIds: stories.tokenizer!.encode(t) }));
    const r = perplexity(stories.model, examples);
    const nll = r.perExample.reduce((s, e) => s + e.loss * e.tokens, 0);
    assert.equal(
      r.tokens,
      r.perExample.reduce((s, e) => s + e.tokens, 0),
    );
    assert.ok(Math.abs(nll / r.tokens - r.loss) < 1e-12);
    assert.ok(Math.abs(r.perplexity - Math.exp(r.loss)) < 1e-9);
  });

  test(
    "a long text with window 64 and stride 32 matches the reference scored window by window",
    { skip: torchAvailable() ? false : "needs Debian's python3-torch" },
    () => {
      const ids = stories.tokenizer!.encode(LONG_TEXT);
      assert.ok(ids.length > 200);
      const [maxLength, stride] = [64, 32];
      const ours = perplexity(stories.model, [{ inputIds: ids }], { maxLength, stride });
      // The guide's loop, written out independently: each window scores only the tokens after the previous window's end.
      const cases = [];
      let previousEnd = 0;
      for (let begin = 0; previousEnd < ids.length; begin += stride) {
        const end = Math.min(begin + maxLength, ids.length);
        const window = ids.slice(begin, end);
        const context = window.length - (end - previousEnd);
        cases.push({
          name: `w${begin}`,
          kind: "loss",
          model: STORIES,
          input_ids: [window],
          labels: [window.map((id, i) => (i < context ? IGNORE_INDEX : id))],
        });
        previousEnd = end;
      }
      const file = path.join(tempDir("ppl"), "request.json");
      fs.writeFileSync(file, JSON.stringify({ cases }));
      const run = spawnSync(PYTHON, [path.join(REPO, "test/reference/reference.py"), file], { encoding: "utf8" });
      assert.equal(run.status, 0, run.stderr);
      const results = Object.values(JSON.parse(run.stdout).results) as { nll_sum: number; tokens: number }[];
      const tokens = results.reduce((s, r) => s + r.tokens, 0);
      const loss = results.reduce((s, r) => s + r.nll_sum, 0) / tokens;
      assert.equal(ours.tokens, tokens);
      assert.ok(Math.abs(ours.loss - loss) <= 1e-4 * loss, `${ours.loss} vs reference ${loss}`);
      assert.ok(
        ours.loss < perplexity(stories.model, [{ inputIds: ids }], { maxLength, stride: maxLength }).loss,
        "overlapping windows give more context, so a lower loss",
      );
    },
  );
});
