/**
 * Directory replacement survives a SIGKILL at any moment: a real child process replaces a directory, is killed
 * inside the window between its two renames (held open by LORALAB_TEST_SWAP_DELAY_MS) or while it writes, and
 * settleDirectory() — which every loader calls — then finds the new directory or the old one, never none.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { settleDirectory, writeDirectoryAtomic } from "../src/core/files.js";

const CLI = path.resolve(import.meta.dirname, "../bin/loralab.js");
const FILES_MODULE = path.resolve(import.meta.dirname, "../src/core/files.ts");

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loralab-files-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A child that replaces `dir` with { "v.txt": version }; with `stall`, it stops while filling. */
function writer(dir: string, version: string, env: Record<string, string>, stall = false): ChildProcess {
  const code = `
    import { replaceDirectory } from ${JSON.stringify(FILES_MODULE)};
    import { writeFileSync } from "node:fs";
    import { join } from "node:path";
    await replaceDirectory(${JSON.stringify(dir)}, async (tmp) => {
      writeFileSync(join(tmp, "v.txt"), ${JSON.stringify(version)});
      process.stdout.write("filling\\n");
      if (${stall}) await new Promise((r) => setTimeout(r, 60_000));
    });
    process.stdout.write("done\\n");`;
  return spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

const siblings = (dir: string) => fs.readdirSync(path.dirname(dir)).filter((n) => n.startsWith(`.${path.basename(dir)}.`));

test("a writer killed between its two renames: the next loader finds the complete new directory", async (t) => {
  const dir = path.join(tempDir(t), "out");
  await writeDirectoryAtomic(dir, { "v.txt": "old" });
  const child = writer(dir, "new", { LORALAB_TEST_SWAP_DELAY_MS: "60000" });
  await until("the old directory to be moved aside", () => !fs.existsSync(dir));
  await kill(child);
  assert.equal(fs.existsSync(dir), false, "the kill left the window open");
  settleDirectory(dir);
  assert.equal(fs.readFileSync(path.join(dir, "v.txt"), "utf8"), "new");
  assert.deepEqual(siblings(dir), []);
});

test("a writer killed while filling: the old directory stays and the partial one is removed", async (t) => {
  const dir = path.join(tempDir(t), "out");
  await writeDirectoryAtomic(dir, { "v.txt": "old" });
  const child = writer(dir, "new", {}, true);
  await until("the writer to start filling", () => siblings(dir).some((n) => n.includes(".loralab-new-")));
  await kill(child);
  settleDirectory(dir);
  assert.equal(fs.readFileSync(path.join(dir, "v.txt"), "utf8"), "old");
  assert.deepEqual(siblings(dir), []);
});

test("settling never touches the stages of a writer that is still alive", async (t) => {
  const dir = path.join(tempDir(t), "out");
  await writeDirectoryAtomic(dir, { "v.txt": "old" });
  const child = writer(dir, "new", { LORALAB_TEST_SWAP_DELAY_MS: "60000" });
  t.after(() => child.kill("SIGKILL"));
  await until("the old directory to be moved aside", () => !fs.existsSync(dir));
  settleDirectory(dir);
  assert.equal(fs.existsSync(dir), false, "a live writer's window was closed by someone else");
  assert.equal(siblings(dir).length, 2);
});

test("replacing a directory twice in a row leaves the second version and no siblings", async (t) => {
  const dir = path.join(tempDir(t), "out");
  await writeDirectoryAtomic(dir, { "v.txt": "1", "extra.txt": "x" });
  await writeDirectoryAtomic(dir, { "v.txt": "2" });
  assert.deepEqual(fs.readdirSync(dir), ["v.txt"]);
  assert.equal(fs.readFileSync(path.join(dir, "v.txt"), "utf8"), "2");
  assert.deepEqual(siblings(dir), []);
});

// The loaders settle what a killed writer left: `loralab merge --out` killed between its two renames, then `loralab eval`.
test(
  "loralab merge killed between its two renames: loralab eval --model OUT loads the new merged model",
  { timeout: 300_000 },
  async (t) => {
    const root = tempDir(t);
    const out = path.join(root, "merged");
    const data = path.join(root, "rows.jsonl");
    fs.writeFileSync(data, '{"text": "Call me Ishmael. Some years ago, never mind how long precisely."}\n'.repeat(4));
    const cli = (args: string[], env: Record<string, string> = {}) =>
      spawn(process.execPath, [CLI, ...args], {
        cwd: root,
        env: { ...process.env, LORALAB_BACKEND: "", ...env },
        stdio: ["ignore", "ignore", "pipe"],
      });
    /** The exit code, with what the command wrote on stderr when it failed. */
    const finish = (child: ChildProcess) =>
      new Promise<string>((resolve) => {
        let stderr = "";
        child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
        child.once("close", (code) => resolve(code === 0 ? "exit 0" : `exit ${code}: ${stderr}`));
      });
    assert.equal(
      await finish(cli(["train", "--model", "tiny-moby", "--data", data, "--steps", "2", "--out", path.join(root, "adapter")])),
      "exit 0",
    );
    const merge = ["merge", "--model", "tiny-moby", "--adapter", path.join(root, "adapter"), "--out", out];
    assert.equal(await finish(cli(merge)), "exit 0");
    const child = cli(merge, { LORALAB_TEST_SWAP_DELAY_MS: "60000" });
    await until("the old merged model to be moved aside", () => !fs.existsSync(out), 120_000);
    await kill(child);
    assert.equal(fs.existsSync(out), false, "the kill left the window open");
    assert.equal(await finish(cli(["eval", "--model", out, "--data", data, "--json"])), "exit 0");
    assert.ok(fs.existsSync(path.join(out, "config.json")));
    assert.deepEqual(siblings(out), []);
  },
);
