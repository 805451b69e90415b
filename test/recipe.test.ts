/**
 * Dataset recipes: a dataset describes how it was built when every step replays (load, take, slice, shuffle, split,
 * concat), falls back to its rows after a closure or a tokenizer, and replaying a recipe (as a worker does) gives
 * the same rows and fingerprint; a file that changed is caught by its fingerprint, a malformed recipe names its field.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { Dataset } from "../src/data/dataset.js";
import { replayRecipe } from "../src/data/replay.js";
import { Tokenizer } from "../src/models/tokenizer.js";
import { shippedModelDir } from "../src/models/shipped.js";
import { buildData } from "../src/study/runner.js";
import { dataRef } from "../src/study/trial.js";
import { tempDir } from "./helpers/paths.js";

const dir = tempDir("recipe");
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, "rows.jsonl");
fs.writeFileSync(file, Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `q${i}`, completion: ` a${i}` })).join("\n"));

function roundTrip(ds: Dataset): Dataset {
  return replayRecipe(JSON.parse(JSON.stringify(ds.recipe())));
}

const replayable: [string, () => Dataset][] = [
  ["a JSONL file", () => Dataset.load(file)],
  ["take and slice", () => Dataset.load(file).take(15).slice(2, 9)],
  ["a seeded shuffle", () => Dataset.load(file).shuffle(3)],
  ["a split part", () => Dataset.load(file).split({ train: 0.7, validation: 0.1, test: 0.2 }, 11).validation],
  ["a corpus with options", () => Dataset.load("cmudict", { limit: 25 }).shuffle(1).take(10)],
  [
    "concat of replayable parts",
    () =>
      Dataset.load(file)
        .take(3)
        .concat(Dataset.load("cmudict", { limit: 4 })),
  ],
];

for (const [what, make] of replayable) {
  test(`${what}: the recipe replays to the same rows and fingerprint`, () => {
    const ds = make();
    assert.equal(ds.replayable, true);
    assert.ok(!("rows" in ds.recipe()), "described, not carried");
    const again = roundTrip(ds);
    assert.deepEqual(again.rows(), ds.rows());
    assert.equal(again.fingerprint(), ds.fingerprint());
  });
}

const inline: [string, () => Dataset][] = [
  ["rows written in code", () => Dataset.fromRows([{ text: "a" }, { text: "b" }])],
  ["a map", () => Dataset.load(file).map((r) => ({ text: `${r.prompt}${r.completion}` }))],
  [
    "a filter after a split",
    () =>
      Dataset.load(file)
        .split({ train: 0.5, test: 0.5 }, 1)
        .train.filter((r) => String(r.prompt).endsWith("1")),
  ],
  [
    "packing with a tokenizer",
    () =>
      Dataset.load("moby-dick")
        .take(2)
        .pack({ tokenizer: Tokenizer.fromDirectory(shippedModelDir("tiny-moby")), blockSize: 64 }),
  ],
];

for (const [what, make] of inline) {
  test(`${what}: the recipe carries the rows, and replays to them`, () => {
    const ds = make();
    assert.equal(ds.replayable, false);
    assert.deepEqual((ds.recipe() as { rows: unknown[] }).rows, ds.rows());
    assert.equal(roundTrip(ds).fingerprint(), ds.fingerprint());
  });
}

test("the fingerprint follows the rows: other rows or another order give another one", () => {
  const ds = Dataset.load(file);
  assert.match(ds.fingerprint(), /^[0-9a-f]{64}$/);
  assert.notEqual(ds.shuffle(1).fingerprint(), ds.fingerprint());
  assert.notEqual(ds.take(19).fingerprint(), ds.fingerprint());
  assert.equal(Dataset.fromRows(ds.rows() as Record<string, unknown>[]).fingerprint(), ds.fingerprint());
});

test("a file that changed after the trial was made is refused by its fingerprint", () => {
  const changing = path.join(dir, "changing.jsonl");
  fs.writeFileSync(changing, '{"text": "one"}\n{"text": "two"}\n');
  const ref = dataRef(Dataset.load(changing));
  assert.equal(buildData(ref, "data").length, 2);
  fs.writeFileSync(changing, '{"text": "one"}\n{"text": "three"}\n');
  assert.throws(
    () => buildData(ref, "data"),
    /^UserError: data: .*changing\.jsonl gives other rows here \(2 rows, fingerprint [0-9a-f]{12}\) than where the trial was made \(2 rows, [0-9a-f]{12}\); a file must be the same on every machine$/,
  );
});

const malformed: [string, unknown, RegExp][] = [
  ["no source", { steps: [] }, /data recipe: load\|rows\|concat: expected exactly one of load, rows or concat/],
  ["two sources", { load: "cmudict", rows: [] }, /expected exactly one of load, rows or concat/],
  ["an unknown step", { load: "cmudict", steps: [{ sample: 3 }] }, /data recipe: steps\[0\]: expected one step: \{ take: … \}/],
  ["a negative take", { load: "cmudict", steps: [{ take: -1 }] }, /data recipe: steps\[0\]: take: expected a non-negative integer, got -1/],
  [
    "a split without its part",
    { load: "cmudict", steps: [{ split: { fractions: { train: 1 }, seed: 1 } }] },
    /steps\[0\]\.split: part: expected one of/,
  ],
  ["an unknown corpus", { load: "wikipedia" }, /wikipedia: not a built-in corpus/],
  ["a name that is not a string", { rows: [{ x: 1 }], name: 7 }, /data recipe: name: expected a string, got 7/],
];

for (const [what, recipe, message] of malformed) {
  test(`a malformed recipe (${what}) is a user error naming the field`, () => {
    assert.throws(
      () => replayRecipe(recipe),
      (e: Error) => e.name === "UserError" && message.test(e.message),
    );
  });
}
