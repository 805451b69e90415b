/**
 * Running the independent PyTorch reference (test/reference/reference.py). When Debian's torch is
 * installed the reference is run live; otherwise the committed outputs in test/fixtures/ are used,
 * after checking they were computed for exactly this request and these checkpoint bytes.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO } from "./paths.js";

export const PYTHON = "/usr/bin/python3";
export const FIXTURE = path.join(REPO, "test/fixtures/reference-outputs.json");

export type ReferenceCase =
  | {
      name: string;
      model: string;
      kind: "loss";
      input_ids: number[][];
      attention_mask?: number[][];
      labels?: number[][];
      per_token?: boolean;
    }
  | { name: string; model: string; kind: "logits"; input_ids: number[]; positions?: number[] }
  | { name: string; model: string; kind: "greedy"; input_ids: number[]; max_new_tokens: number; eos: boolean };

export type ReferenceResult = { loss: number | null; nll_sum: number; tokens: number; nll?: (number | null)[][] } & {
  logits: number[][];
} & { new_ids: number[] } & { error?: string };

interface Fixture {
  digest: string;
  torch_version: string;
  results: Record<string, ReferenceResult>;
}

export function torchAvailable(): boolean {
  return spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore" }).status === 0;
}

/**
 * What the outputs depend on: the cases (with model directories replaced by the sha256 of their
 * files, so temp paths do not matter) and the reference's own source.
 */
export function requestDigest(cases: ReferenceCase[]): string {
  const modelDigest = new Map<string, string>();
  const digestOf = (dir: string) => {
    if (!modelDigest.has(dir)) {
      const h = createHash("sha256");
      for (const f of fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".json") || f.endsWith(".safetensors"))
        .sort()) {
        h.update(f).update(fs.readFileSync(path.join(dir, f)));
      }
      modelDigest.set(dir, h.digest("hex"));
    }
    return modelDigest.get(dir)!;
  };
  const h = createHash("sha256");
  h.update(JSON.stringify(cases.map((c) => ({ ...c, model: digestOf(c.model) }))));
  h.update(fs.readFileSync(path.join(REPO, "test/reference/reference.py")));
  return h.digest("hex");
}

export function runReference(cases: ReferenceCase[], workDir: string): Fixture {
  const requestFile = path.join(workDir, "request.json");
  fs.writeFileSync(requestFile, JSON.stringify({ cases }));
  const run = spawnSync(PYTHON, [path.join(REPO, "test/reference/reference.py"), requestFile], { encoding: "utf8", maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`reference.py failed (${run.status}): ${run.stderr}\n${run.stdout.slice(0, 2000)}`);
  const out = JSON.parse(run.stdout) as { torch_version: string; results: Record<string, ReferenceResult> };
  return { digest: requestDigest(cases), ...out };
}

/** Live outputs when torch is here (and `LORALAB_REFERENCE=fixtures` is not set), else the checked fixture. */
export function referenceOutputs(
  cases: ReferenceCase[],
  workDir: string,
): { source: "live" | "fixture"; results: Record<string, ReferenceResult> } {
  if (process.env.LORALAB_REFERENCE !== "fixtures" && torchAvailable())
    return { source: "live", results: runReference(cases, workDir).results };
  const fixture = JSON.parse(fs.readFileSync(FIXTURE, "utf8")) as Fixture;
  const digest = requestDigest(cases);
  if (fixture.digest !== digest) {
    throw new Error(`${FIXTURE} is stale (computed for another request or other checkpoints); regenerate it with npm run reference`);
  }
  return { source: "fixture", results: fixture.results };
}

export function writeFixture(cases: ReferenceCase[], workDir: string): void {
  fs.writeFileSync(FIXTURE, `${JSON.stringify(runReference(cases, workDir))}\n`);
}
