/**
 * The loralab binary end to end: `eval`, `generate` and `info` on the real stories260K checkpoint,
 * checked against the library and against the independent PyTorch reference outputs.
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
    assert.deepEqual(Object.keys(out).sort(), ["loss", "perplexity", "tokens"]);
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
  function backendError(backend: string): string {
    const run = cli(["info", "--json", "--backend", backend]);
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stdout, "");
    const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.equal(lines.length, 1, run.stderr);
    return lines[0]!;
  }

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
