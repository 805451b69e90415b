/** `loralab sweep` and `loralab worker`: bad flags are one-line user errors (exit 2) naming the flag, before anything runs. */
import { after, test } from "node:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { expectCliError } from "./helpers/cli.js";
import { tempDir } from "./helpers/paths.js";

const dir = tempDir("sweep-cli");
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const data = path.join(dir, "data.jsonl");
fs.writeFileSync(data, '{"text": "Call me Ishmael."}\n');
const sweep = (...args: string[]) => ["sweep", "--model", "tiny-moby", "--data", data, ...args];

const cases: [string, string[], string[]][] = [
  ["an unknown grid key", sweep("--grid", "rank=1,2"), ['--grid: unknown key "rank"; expected a LoRA key as --lora takes it']],
  ["a grid value of the wrong kind", sweep("--grid", "lr=fast"), ['--grid lr: expected a number in (0, 1], got "fast"']],
  ["a bad LoRA grid value", sweep("--grid", "r=0"), ["--grid r: r: expected a positive integer, got 0"]],
  ["a grid key given twice", sweep("--grid", "r=1", "--grid", "r=2"), ['--grid: "r" is given twice']],
  ["a grid flag without values", sweep("--grid", "r="), ['--grid: expected key=value,value,…, got "r="']],
  ["seeds that are not integers", sweep("--grid", "r=1", "--seeds", "1,two"), ['--seeds: expected a list of integers, got "two"']],
  ["a seed in the grid and --seeds", sweep("--grid", "seed=1,2", "--seeds", "1"), ["--grid seed and --seeds: give one"]],
  [
    "--queue and --parallel together",
    sweep("--grid", "r=1", "--queue", "redis://127.0.0.1:6379/0", "--parallel", "2"),
    ["--queue and --parallel: give one"],
  ],
  [
    "a queue URL of another scheme",
    sweep("--grid", "r=1", "--queue", "http://user:hunter2@host/"),
    ['--queue: expected a redis:// or rediss:// URL, got "http://user:***@host/"'],
  ],
  ["a zero --parallel", sweep("--grid", "r=1", "--parallel", "0"), ['--parallel: expected a positive integer, got "0"']],
  ["--metrics without --eval", sweep("--grid", "r=1", "--metrics", "bleu"), ["--eval: expected a file to evaluate the --metrics on"]],
  [
    "an unknown eval metric",
    sweep("--grid", "r=1", "--eval", data, "--metrics", "accuracy"),
    ['eval.metrics: expected metrics among perplexity, bleu, chrf, exact_match, got "accuracy"'],
  ],
  ["a worker without a queue", ["worker"], ["--queue is required (or set LORALAB_QUEUE)"]],
  [
    "a worker with a malformed URL",
    ["worker", "--queue", "redis://h/zero"],
    ['--queue: the path of "redis://h/zero" must be a database number (/0), got "/zero"'],
  ],
  [
    "a worker with a zero concurrency",
    ["worker", "--queue", "redis://127.0.0.1/0", "--concurrency", "0"],
    ['--concurrency: expected a positive integer, got "0"'],
  ],
];

for (const [what, args, expected] of cases) {
  test(`${args[0]}: ${what} is a user error`, () => {
    const line = expectCliError(args, expected);
    if (line.includes("hunter2")) throw new Error(`the password is printed: ${line}`);
  });
}
