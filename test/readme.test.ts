/**
 * The README against the code: its DSL examples compile against the package as users import it (`from "loralab"`),
 * and its table of training options is the one src/train/arguments.ts defines.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { TRAINING_FIELD_NAMES, TRAINING_FIELDS } from "../src/train/arguments.js";
import { REPO } from "./helpers/paths.js";

const README = fs.readFileSync(path.join(REPO, "README.md"), "utf8");

/** ```ts blocks that import from "loralab". */
export function dslExamples(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((code) => /from "loralab"/.test(code));
}

/** The training options as the README shows them: option, flag, default, what it does. */
function trainingOptionsTable(): string {
  const rows = TRAINING_FIELD_NAMES.map((name) => {
    const { flag, flagType, default: fallback, doc } = TRAINING_FIELDS[name];
    const flags = flagType === "switch" ? `\`--${flag}\`, \`--no-${flag}\`` : `\`--${flag}\``;
    const shown = fallback === undefined ? "" : `\`${JSON.stringify(fallback)}\``;
    return `| \`${name}\` | ${flags} | ${shown} | ${doc} |`;
  });
  return ["| option | `loralab train` | default | |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

test("README DSL examples type-check", (t) => {
  const examples = dslExamples(README);
  assert.ok(examples.length >= 1, "the README shows the DSL");
  // Inside the package, so "loralab" resolves to this package through its "exports" (dist/ is built by npm test).
  const dir = fs.mkdtempSync(path.join(REPO, ".readme-check-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = examples.map((code, i) => {
    const file = path.join(dir, `example-${i}.ts`);
    fs.writeFileSync(file, `${code}\nexport {};\n`);
    return file;
  });
  fs.writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ["node"],
      },
      files: files.map((f) => path.basename(f)),
    }),
  );
  const tsc = spawnSync(process.execPath, [path.join(REPO, "node_modules/typescript/bin/tsc"), "-p", dir], { encoding: "utf8" });
  assert.equal(tsc.status, 0, `README examples do not type-check:\n${tsc.stdout}${tsc.stderr}`);
});

test("the README's table of training options is src/train/arguments.ts's", () => {
  const expected = trainingOptionsTable();
  const tables = README.replace(/^ +\|/gm, "|"); // a table inside a list item is indented
  assert.ok(tables.includes(expected), `README.md should hold this table (under "LoRA and training"):\n\n${expected}\n`);
});
