/** The README's DSL examples compile against the package as users import it (`from "loralab"`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO } from "./helpers/paths.js";

/** ```ts blocks that import from "loralab". */
export function dslExamples(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((code) => /from "loralab"/.test(code));
}

test("README DSL examples type-check", () => {
  const examples = dslExamples(fs.readFileSync(path.join(REPO, "README.md"), "utf8"));
  assert.ok(examples.length >= 1, "the README shows the DSL");
  // Inside the package, so "loralab" resolves to this package through its "exports" (dist/ is built by npm test).
  const dir = fs.mkdtempSync(path.join(REPO, ".readme-check-"));
  try {
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
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
