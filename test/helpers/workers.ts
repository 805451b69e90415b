/** Real CLI processes for the study tests: `loralab worker`s and `loralab sweep`s, with their output captured. */
import { type ChildProcess, spawn } from "node:child_process";
import type { TestContext } from "node:test";
import { CLI, REPO } from "./paths.js";

export interface CliProcess {
  child: ChildProcess;
  /** Everything written to stderr (and stdout) so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves with the first match of `pattern` in stderr (rejects after `timeoutMs`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `loralab ARGS` in the background; it is killed when the test ends if still running. */
export function startCli(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, LORALAB_BACKEND: "", ...env } });
  let stdout = "";
  let stderr = "";
  const waiters: (() => void)[] = [];
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
    [...waiters].forEach((w) => w());
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    child,
    exited,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    waitFor(pattern, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = stderr.match(pattern);
          if (m) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(check), 1);
            resolve(m);
          }
        };
        const timer = setTimeout(() => reject(new Error(`no ${pattern} in stderr within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
        waiters.push(check);
        check();
      });
    },
  };
}

/** Runs `loralab ARGS` to the end. */
export async function runCliAsync(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}) {
  const p = startCli(t, args, env);
  const { code } = await p.exited;
  return { status: code, stdout: p.stdout, stderr: p.stderr };
}

/** A worker serving `url`, ready once it says so. */
export async function startWorker(t: TestContext, url: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<CliProcess> {
  const w = startCli(t, ["worker", "--queue", url, ...extra], env);
  await w.waitFor(/serving/);
  return w;
}
