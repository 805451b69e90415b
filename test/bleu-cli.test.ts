import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bleu } from "../src/cli/bleu.js";
import { UserError } from "../src/core/errors.js";

// The README example of sacrebleu, as files; expected output is sacrebleu 2.6.0's.
const dir = mkdtempSync(join(tmpdir(), "loralab-bleu-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const ref1 = file("ref1.txt", "The dog bit the man.\nIt was not unexpected.\nThe man bit him first.\n");
// CRLF and no final newline: lines are split on \n and right-stripped, like sacrebleu reads them.
const ref2 = file("ref2.txt", "The dog had bit the man.\r\nNo one was surprised.\r\nThe man had bitten the dog.");
const short = file("short.txt", "The dog bit the man.\n");
const HYP = "The dog bit the man.\nIt wasn't surprising.\nThe man had just bitten him.\n";

async function run(argv: string[], stdin = HYP): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await bleu(argv, {
    readStdin: async () => stdin,
    write: (text) => {
      out += text;
    },
  });
  return { code, out };
}

test("corpus BLEU prints sacrebleu's result string", async () => {
  const { code, out } = await run(["--ref", ref1, "--ref", ref2]);
  assert.equal(code, 0);
  assert.equal(out, "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)\n");
  // Positional reference files, as in `sacrebleu REF < HYP`.
  assert.equal((await run([ref1, ref2])).out, out);
});

test("--json gives full-precision numbers and the signature", async () => {
  const { out } = await run(["--ref", ref1, "--ref", ref2, "--json"]);
  assert.deepEqual(JSON.parse(out), {
    score: 48.530827009929865,
    precisions: [82.3529411764706, 50, 45.45454545454545, 37.5],
    bp: 0.9428731438548749,
    ratio: 0.9444444444444444,
    sys_len: 17,
    ref_len: 18,
    signature: "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
  });
});

test("--sentence prints one line per hypothesis, with effective order", async () => {
  const { out } = await run(["--ref", ref1, "--ref", ref2, "--sentence"]);
  assert.deepEqual(out.split("\n"), [
    "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)",
    "BLEU = 14.79 50.0/16.7/12.5/12.5 (BP = 0.779 ratio = 0.800 hyp_len = 4 ref_len = 5)",
    "BLEU = 29.07 85.7/33.3/20.0/12.5 (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)",
    "",
  ]);
  const json = (await run(["--ref", ref1, "--sentence", "--json", "--no-effective-order"])).out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(json.length, 3);
  assert.equal(json[0].signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
});

test("BLEU options reach the metric and its signature", async () => {
  const { out } = await run(["--ref", ref1, "--ref", ref2, "--smooth-method", "add-k", "--smooth-value", "2", "--json"]);
  assert.equal(JSON.parse(out).score, 56.03183545640216);
  assert.equal(JSON.parse(out).signature, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:add-k[2.00]|version:2.6.0");
  const char = JSON.parse(
    (await run(["--ref", ref1, "--ref", ref2, "--tokenize", "char", "--lowercase", "--effective-order", "--json"])).out,
  );
  assert.equal(char.signature, "nrefs:2|case:lc|eff:yes|tok:char|smooth:exp|version:2.6.0");
});

test("--metric chrf, corpus and sentence level", async () => {
  assert.equal((await run(["--ref", ref1, "--ref", ref2, "--metric", "chrf"])).out, "chrF2 = 59.73\n");
  const { out } = await run(["--ref", ref1, "--ref", ref2, "--metric", "chrf", "--chrf-word-order", "2", "--sentence", "--json"]);
  const lines = out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.score),
    [100, 29.14513880802484, 52.00714394858371],
  );
  assert.deepEqual(lines[0], {
    name: "chrF2++",
    score: 100,
    char_order: 6,
    word_order: 2,
    beta: 2,
    signature: "nrefs:2|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.6.0",
  });
});

test("user errors are one line and name the file", async () => {
  const rejects = (argv: string[], message: RegExp, stdin?: string) =>
    assert.rejects(run(argv, stdin), (e: unknown) => e instanceof UserError && message.test(e.message) && !e.message.includes("\n"));
  await rejects(["--ref", short], /short\.txt: 1 lines, but stdin has 3 hypotheses/);
  await rejects(["--ref", join(dir, "missing.txt")], /missing\.txt: no such file/);
  await rejects(["--ref", ref1, "--tokenize", "zh"], /--tokenize: expected one of .*, got "zh"/);
  await rejects(["--ref", ref1, "--smooth-method", "lin"], /--smooth-method: expected one of .*, got "lin"/);
  await rejects(["--ref", ref1, "--smooth-value", "0.5"], /--smooth-value applies to/);
  await rejects(["--ref", ref1, "--metric", "chrf", "--tokenize", "13a"], /--tokenize applies to --metric bleu only/);
  await rejects(["--ref", ref1, "--metric", "ter"], /--metric: expected one of "bleu" or "chrf", got "ter"/);
  await rejects(["--ref", ref1, "--effective-order", "--no-effective-order"], /mutually exclusive/);
  await rejects(["--ref", ref1, "--bogus"], /--bogus/);
  await rejects([], /--ref is required/);
  await rejects(["--ref", ref1], /no hypotheses on stdin/, "");
});

// The real binary runs the compiled dist/ (npm test builds it first).
const root = fileURLToPath(new URL("..", import.meta.url));
const built = existsSync(join(root, "dist/src/cli/bleu.js"));
test("bin/loralab.js bleu end to end", { skip: built ? false : "dist/ not built (npm run build)" }, () => {
  const ok = spawnSync(process.execPath, [join(root, "bin/loralab.js"), "bleu", "--ref", ref1, "--ref", ref2], {
    input: HYP,
    encoding: "utf8",
  });
  assert.equal(ok.stderr, "");
  assert.equal(ok.status, 0);
  assert.equal(ok.stdout, "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)\n");
  const bad = spawnSync(process.execPath, [join(root, "bin/loralab.js"), "bleu", "--ref", short], { input: HYP, encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^loralab bleu: .*short\.txt: 1 lines, but stdin has 3 hypotheses\n$/);
});
