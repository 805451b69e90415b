/**
 * The loralab binary end to end: `eval`, `generate` and `info` on the real stories260K checkpoint,
 * checked against the library and against the independent PyTorch reference outputs; `train`'s
 * flags, user errors and exit codes.
 * Run `npx tsc -p .` first: bin/loralab.js imports the compiled dist/.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend } from "../src/backend/index.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { Tokenizer } from "../src/models/tokenizer.js";
import { readSafetensors, writeSafetensors } from "../src/checkpoint/safetensors.js";
import { TRAINING_FIELDS } from "../src/train/arguments.js";
import { CLI, REPO, STORIES, tempDir } from "./helpers/paths.js";
import { FIXTURE, type ReferenceResult } from "./helpers/reference.js";

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Run {
  const run = spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO,
    encoding: "utf8",
    env: { ...process.env, LORALAB_BACKEND: "", ...env },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Runs a command that must succeed and print exactly one JSON line on stdout; returns it parsed. */
function cliJson<T>(args: string[], env: Record<string, string> = {}): T {
  const run = cli(args, env);
  assert.equal(run.status, 0, `loralab ${args.join(" ")} exited ${run.status}: ${run.stderr}`);
  assert.match(run.stdout, /^[^\n]+\n$/, `stdout must be exactly one line: ${JSON.stringify(run.stdout)}`);
  return JSON.parse(run.stdout) as T;
}

/** A user error: exit 2, nothing on stdout, one stderr line (returned). */
function userError(args: string[]): string {
  const run = cli(args);
  assert.equal(run.status, 2, run.stderr);
  assert.equal(run.stdout, "");
  const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, run.stderr);
  return lines[0]!;
}

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);
}

const fixture = JSON.parse(fs.readFileSync(FIXTURE, "utf8")) as { results: Record<string, ReferenceResult> };
const reference = (name: string): ReferenceResult => {
  const r = fixture.results[name];
  assert.ok(r, `${FIXTURE} has no case "${name}"`);
  return r;
};

/** "Once upon a time, there was a cat." as stories260K's tokenizer encodes it (the "stories/loss-single" case). */
const CAT_IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 280, 294, 426];
const PROMPT_IDS = "1,403,407,261,378";

const work = tempDir("cli-test");
const tokenizer = Tokenizer.fromDirectory(STORIES);
let stories: LoadedModel;

function writeJsonl(name: string, rows: unknown[]): string {
  const file = path.join(work, name);
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return file;
}

before(async () => {
  await initBackend("wasm"); // the CLI's default here, so library and CLI run the same kernels
  stories = await loadModel(STORIES);
});

after(() => {
  stories.model.dispose();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("loralab eval", () => {
  type EvalJson = { loss: number; perplexity: number; tokens: number };
  const texts = [
    "Tom and Sue went to the beach. They built a big sand castle and laughed.",
    "The little dog was sad because he lost his red ball in the garden.",
    "Lily had a blue kite.",
  ];
  const ids = [1, 403, 407, 261, 378, 432, 383, 286];
  const evalJson = (file: string) => cliJson<EvalJson>(["eval", "--model", STORIES, "--data", file, "--metrics", "perplexity", "--json"]);

  test("--json prints loss, perplexity and token count that agree with the library row by row", () => {
    const file = writeJsonl("mixed.jsonl", [...texts.map((text) => ({ text })), { input_ids: ids }]);
    const out = evalJson(file);
    assert.deepEqual(Object.keys(out).sort(), ["loss", "perplexity", "tokens", "workers"]);
    assertClose(out.perplexity, Math.exp(out.loss), 1e-9 * Math.exp(out.loss), "perplexity = exp(loss)");

    const rows = [...texts.map((t) => tokenizer.encode(t)), ids];
    for (const row of rows.slice(0, texts.length)) assert.equal(row[0], 1, "add_bos_token: every text starts with BOS (id 1)");
    const expectedTokens = rows.reduce((n, r) => n + r.length - 1, 0); // token t predicts t+1: the first is never scored
    assert.equal(out.tokens, expectedTokens);

    // Each row scored alone through the library, then combined weighted by its scored tokens.
    const perRow = rows.map((inputIds) => perplexity(stories.model, [{ inputIds }]));
    perRow.forEach((r, i) => assert.equal(r.tokens, rows[i]!.length - 1));
    const combined = perRow.reduce((s, r) => s + r.loss * r.tokens, 0) / expectedTokens;
    assertClose(out.loss, combined, 1e-6, "CLI loss vs token-weighted per-row library losses");
  });

  test("one input_ids row gives the PyTorch reference loss (stories/loss-single)", () => {
    const ref = reference("stories/loss-single");
    assert.equal(ref.tokens, CAT_IDS.length - 1);
    const out = evalJson(writeJsonl("single.jsonl", [{ input_ids: CAT_IDS }]));
    assert.equal(out.tokens, ref.tokens);
    assertClose(out.loss, ref.loss!, 1e-4, "loss vs PyTorch reference");
  });
});

describe("loralab generate", () => {
  type GenerateJson = { ids: number[]; text: string | null; stopped_by: string };
  const generateJson = (...args: string[]) =>
    cliJson<GenerateJson>(["generate", "--model", STORIES, "--max-new-tokens", "30", "--json", ...args]);
  const greedy = () => generateJson("--ids", PROMPT_IDS, "--temperature", "0");
  const sampled = (...args: string[]) => generateJson("--ids", PROMPT_IDS, "--temperature", "0.8", "--top-k", "20", ...args).ids;

  test("greedy from --ids matches the PyTorch reference continuation (stories/greedy-0)", () => {
    const out = greedy();
    assert.equal(out.ids.length, 30);
    assert.deepEqual(out.ids, reference("stories/greedy-0").new_ids);
    assert.equal(out.text, tokenizer.decode(out.ids));
  });

  test("--prompt is encoded with BOS and decodes consistently", () => {
    assert.equal(tokenizer.encode("Once upon a time").join(","), PROMPT_IDS);
    const out = generateJson("--prompt", "Once upon a time", "--temperature", "0");
    assert.deepEqual(out.ids, greedy().ids);
    assert.equal(typeof out.text, "string");
    assert.ok(out.text!.trim().length > 0, "the continuation is non-empty text");
    assert.equal(out.text, tokenizer.decode(out.ids));
    assert.ok(out.text!.startsWith(", there was"), `greedy continuation: ${JSON.stringify(out.text)}`);
  });

  test("sampling is reproducible per seed and depends on it", () => {
    const first = sampled("--seed", "7");
    assert.equal(first.length, 30);
    assert.deepEqual(sampled("--seed", "7"), first);
    assert.notDeepEqual(sampled("--seed", "8"), first);
  });

  test("--top-k 1 at temperature 1 is greedy", () => {
    const topK1 = generateJson("--ids", PROMPT_IDS, "--temperature", "1", "--top-k", "1", "--seed", "3").ids;
    assert.deepEqual(topK1, reference("stories/greedy-0").new_ids);
  });
});

describe("loralab info", () => {
  type InfoJson = { backend: string; node: string; tfjs: string; threads: number; memory: Record<string, number> };

  test("--json reports the default backend (wasm here), versions, threads and memory", () => {
    const out = cliJson<InfoJson>(["info", "--json"]);
    assert.equal(out.backend, "wasm");
    assert.equal(out.node, process.version);
    assert.match(out.tfjs, /^\d+\.\d+\.\d+/);
    assert.ok(Number.isInteger(out.threads) && out.threads >= 1, `threads: ${out.threads}`);
    for (const key of ["totalMiB", "freeMiB", "rssMiB", "tensorBytes"]) assert.equal(typeof out.memory[key], "number", `memory.${key}`);
  });

  test("LORALAB_BACKEND=cpu selects the cpu backend", () => {
    assert.equal(cliJson<InfoJson>(["info", "--json"], { LORALAB_BACKEND: "cpu" }).backend, "cpu");
  });

  /** A backend that cannot be used: exit 2, one stderr line, nothing on stdout. */
  const backendError = (backend: string) => userError(["info", "--json", "--backend", backend]);

  test("--backend tensorflow-gpu (not installed) says how to install it and that it needs CUDA", () => {
    const line = backendError("tensorflow-gpu");
    assert.ok(line.startsWith("loralab info: "), line);
    assert.ok(line.includes("npm install @tensorflow/tfjs-node-gpu"), line);
    assert.ok(line.includes("CUDA"), line);
  });

  test("--backend nonsense lists the valid backends", () => {
    const line = backendError("nonsense");
    assert.ok(line.includes('"nonsense"'), line);
    for (const b of ["tensorflow-gpu", "tensorflow", "wasm", "cpu"]) assert.ok(line.includes(b), `${b} missing from: ${line}`);
  });
});

describe("loralab train", () => {
  type TrainJson = { steps: { loss: number }[]; evals?: { step: number }[]; cut_rows: number; stopped: string; message?: string };
  const rows = (n: number, length: number) =>
    Array.from({ length: n }, (_, i) => ({ input_ids: Array.from({ length }, (_, t) => 3 + ((i + t) % 500)) }));
  const trainData = writeJsonl("train.jsonl", rows(4, 12));
  const trainOn = (data: string, ...args: string[]) => ["train", "--model", STORIES, "--data", data, "--lora", "r=2", ...args];

  test("--lr 1e30 is refused up front (exit 2), quoting the flag as typed", () => {
    assert.equal(userError(trainOn(trainData, "--lr", "1e30")), 'loralab train: --lr: expected a number in (0, 1], got "1e30"');
  });

  test("--steps and --epochs together are refused", () => {
    assert.equal(
      userError(trainOn(trainData, "--steps", "2", "--epochs", "3")),
      "loralab train: --epochs: expected no value when --steps is given, got 3",
    );
  });

  test("rows that are all one token long: no tokens to train on (exit 2, no stack trace)", () => {
    const line = userError(trainOn(writeJsonl("one-token.jsonl", [{ input_ids: [5] }, { input_ids: [9] }]), "--steps", "1"));
    assert.match(line, /^loralab train: training data: no tokens to train on: none of the 2 rows/);
  });

  test("--seq above the model's context is refused", () => {
    assert.equal(
      userError(trainOn(trainData, "--seq", "100000")),
      "loralab train: --seq: expected at most the model's context (512 tokens), got 100000",
    );
  });

  test("rows longer than the context are cut to it, with a one-line notice and cut_rows in --json", () => {
    const data = writeJsonl("long.jsonl", [...rows(1, 600), ...rows(2, 20)]);
    const run = cli(trainOn(data, "--steps", "1", "--batch", "3"));
    assert.equal(run.status, 0, run.stderr);
    const notices = run.stderr.split("\n").filter((l) => l.startsWith("notice:"));
    assert.deepEqual(notices, ["notice: 1 of 3 rows were longer than 512 tokens and were cut to 512 (--seq)"]);
    const json = cliJson<TrainJson>(trainOn(data, "--steps", "1", "--batch", "3", "--json"));
    assert.equal(json.cut_rows, 1);
    assert.equal(json.stopped, "completed");
  });

  test("a loss that is not finite stops training as diverged: exit 3, nothing applied", async () => {
    // Finite weights large enough that the logits overflow: the first loss is NaN.
    const dir = path.join(work, "huge-norm");
    fs.cpSync(STORIES, dir, { recursive: true });
    for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
    const file = path.join(dir, "model.safetensors");
    const tensors = await readSafetensors(file);
    tensors.get("model.norm.weight")!.data.fill(3e38);
    await writeSafetensors(file, tensors);
    const run = cli(["train", "--model", dir, "--data", trainData, "--steps", "2", "--json"]);
    assert.equal(run.status, 3, run.stderr);
    const json = JSON.parse(run.stdout) as TrainJson;
    assert.equal(json.stopped, "diverged");
    assert.deepEqual(json.steps, []);
    assert.match(json.message!, /^step 1: loss is NaN; the update was not applied$/);
    assert.match(run.stderr, /^loralab train: training diverged: step 1: loss is NaN/m);
  });

  test("--help lists a flag for every training option, with its default", () => {
    const run = cli(["train", "--help"]);
    assert.equal(run.status, 0, run.stderr);
    for (const field of Object.values(TRAINING_FIELDS)) {
      assert.ok(run.stdout.includes(`--${field.flag}`), `--${field.flag} missing from --help`);
      assert.ok(run.stdout.includes(field.doc), `the doc of --${field.flag} missing from --help`);
    }
    assert.match(run.stdout, /--lr X +peak learning rate \(default 0\.0002\)/);
  });

  test("--save-strategy, --save-steps and --checkpoint-dir write checkpoints; --eval-data and --eval-steps evaluate", () => {
    const checkpoints = path.join(work, "checkpoints");
    const json = cliJson<TrainJson>(
      trainOn(
        trainData,
        "--steps",
        "4",
        "--batch",
        "2",
        "--save-strategy",
        "steps",
        "--save-steps",
        "2",
        "--checkpoint-dir",
        checkpoints,
        "--json",
      ),
    );
    assert.equal(json.steps.length, 4);
    assert.deepEqual(fs.readdirSync(checkpoints).sort(), ["checkpoint-2", "checkpoint-4"]);
    const evaluated = cliJson<TrainJson>(
      trainOn(trainData, "--steps", "4", "--batch", "2", "--eval-data", trainData, "--eval-steps", "2", "--json"),
    );
    assert.deepEqual(
      evaluated.evals!.map((e) => e.step),
      [2, 4],
    );
  });
});
