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
import { perplexity } from "../src/metrics/perplexity.js";
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
  test("texts shorter than the window: sliding window = full context, at any stride", () => {
    const examples = STORY_TEXTS.map((t) => ({ inputIds: stories.tokenizer!.encode(t) }));
    const full = perplexity(stories.model, examples);
    for (const stride of [1, 7, 64]) {
      const windowed = perplexity(stories.model, examples, { maxLength: 64, stride });
      assert.equal(windowed.tokens, full.tokens);
      assert.ok(Math.abs(windowed.loss - full.loss) < 1e-6, `stride ${stride}: ${windowed.loss} vs ${full.loss}`);
    }
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
