/** Running the real binary (bin/loralab.js imports the compiled dist/: build first). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { CLI, REPO } from "./paths.js";

export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: "utf8", env: { ...process.env, LORALAB_BACKEND: "" } });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Runs `loralab ARGS`, expects a user error and returns its one line; checks it contains every `expected` string. */
export function expectUserError(args: string[], ...expected: string[]): string {
  const run = runCli(args);
  const shown = `loralab ${args.join(" ")}\n--- stderr ---\n${run.stderr}`;
  assert.equal(run.status, 2, shown);
  assert.doesNotMatch(run.stderr, /^\s+at /m, `stack frames on stderr:\n${shown}`);
  assert.doesNotMatch(run.stderr, /internal error/, shown);
  // Exactly one line on stderr: the backend report comes only after the inputs were validated.
  const errors = run.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(errors.length, 1, `expected exactly one line on stderr:\n${shown}`);
  const line = errors[0]!;
  assert.ok(line.startsWith(`loralab ${args[0]}: `), `should start with "loralab ${args[0]}: ":\n${shown}`);
  for (const e of expected) assert.ok(line.includes(e), `should mention ${JSON.stringify(e)}:\n${line}`);
  return line;
}
