/**
 * Fits the coefficients of src/models/memory-estimate.ts (PASSES) to tf.profile's peak of real passes over
 * random-weight models of seeded random shapes, per family and pass, and prints them with how the fitted
 * estimate compares to every measurement. Run it after a change to what a pass keeps alive; paste the output.
 *
 *   node --import tsx scripts/fit-memory-estimate.ts [--shapes 48] [--backend wasm]
 *
 * The coefficients make the worst relative error least (no coefficient below 0), then are raised by 10 % so that
 * the estimate, which refuses what cannot fit, errs on the side of more.
 */
import { parseArgs } from "node:util";
import { initBackend } from "../src/backend/index.js";
import { Random } from "../src/core/random.js";
import { randomModel } from "../src/cli/bench-setup.js";
import { type PassCoefficients, PASSES, type PassKind, type PassTerms, termsBytes } from "../src/models/memory-estimate.js";
import { measurePassPeak } from "../src/train/pass-peak.js";

const { values } = parseArgs({ options: { shapes: { type: "string", default: "48" }, backend: { type: "string", default: "wasm" } } });
await initBackend(values.backend);

const NAMES: (keyof PassCoefficients)[] = ["hidden", "intermediate", "attention", "vocab", "weights"];
const KINDS: PassKind[] = ["inference", "adapter", "full"];
/**
 * What a pass holds at least, whatever the fit says (it sees T up to 512; a 30,000-token row is all attention), in
 * floats per head, query and key: the backward pass the probabilities, their gradient and the scores' (3); the
 * forward pass the scores and the probabilities (2; the softmax kernel's scratch, which tf.profile does not see,
 * would make 3, but a sum of terms that high fits inference's max-of-phases peak worse on every shape measured).
 */
const FLOORS: Record<PassKind, Partial<PassCoefficients>> = {
  inference: { attention: 2 },
  adapter: { attention: 3 },
  full: { attention: 3 },
};

interface Shape {
  config: Record<string, unknown>;
  batch: number;
  seq: number;
}

/** Shapes in the ranges the estimate is meant for: C 32–256, I 128–1024, H 2–8, V 512–4096, T 32–512, batch 1–4, 2–4 layers. */
function shapes(family: "llama" | "gpt2", count: number): Shape[] {
  const r = new Random(family === "llama" ? 1 : 2);
  const pick = <T>(xs: T[]) => xs[r.int(xs.length)]!;
  return Array.from({ length: count }, () => {
    const heads = pick([2, 4, 8]);
    const hidden = heads * pick([16, 32]);
    const intermediate = pick([128, 256, 512, 1024]);
    const vocab = pick([512, 1024, 2048, 4096]);
    const layers = pick([2, 3, 4]);
    const config =
      family === "llama"
        ? {
            model_type: "llama",
            hidden_size: hidden,
            intermediate_size: intermediate,
            num_attention_heads: heads,
            num_hidden_layers: layers,
            vocab_size: vocab,
            max_position_embeddings: 512,
            rms_norm_eps: 1e-5,
            tie_word_embeddings: r.int(2) === 0,
          }
        : {
            model_type: "gpt2",
            n_embd: hidden,
            n_inner: intermediate,
            n_head: heads,
            n_layer: layers,
            vocab_size: vocab,
            n_positions: 512,
          };
    return { config, batch: pick([1, 2, 4]), seq: pick([32, 64, 128, 256, 512]) };
  });
}

/** Solves A x = b (Gaussian elimination with partial pivoting). */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    const p = m.reduce((best, row, i) => (i >= c && Math.abs(row[c]!) > Math.abs(m[best]![c]!) ? i : best), c);
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let i = 0; i < n; i++) {
      if (i === c) continue;
      const f = m[i]![c]! / m[c]![c]!;
      for (let j = c; j <= n; j++) m[i]![j]! -= f * m[c]![j]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}

type Row = PassTerms & { measured: number };

/** min Σ w·((fixed + Σ k·per − measured) / measured)² over k ≥ 0: refit without the coefficients that come out negative. */
function weightedFit(allRows: Row[], weights: number[], floors: Partial<PassCoefficients>): PassCoefficients {
  // The floors are physical: moved into the fixed part, the fit adds to them.
  const rows = allRows.map((row) => ({ ...row, fixed: termsBytes(row, floors) }));
  let free = NAMES.filter((name) => rows.some((row) => row.per[name] > 0));
  for (;;) {
    const ata = free.map(() => free.map(() => 0));
    const atb = free.map(() => 0);
    rows.forEach(({ fixed, per, measured }, r) => {
      const x = free.map((name) => per[name] / measured);
      const y = (measured - fixed) / measured;
      x.forEach((xi, i) => {
        atb[i]! += weights[r]! * xi * y;
        x.forEach((xj, j) => (ata[i]![j]! += weights[r]! * xi * xj));
      });
    });
    const k = solve(ata, atb);
    const negative = free.filter((_, i) => k[i]! < 0);
    if (negative.length === 0) {
      const fitted = (name: keyof PassCoefficients) => (floors[name] ?? 0) + (free.includes(name) ? k[free.indexOf(name)]! : 0);
      return Object.fromEntries(NAMES.map((name) => [name, fitted(name)])) as unknown as PassCoefficients;
    }
    free = free.filter((name) => !negative.includes(name));
  }
}

const ratio = (k: PassCoefficients, row: Row) => termsBytes(row, k) / row.measured;

/**
 * The coefficients whose worst relative error is least (Lawson's reweighting of least squares: each round weighs
 * every measurement by its error so far), so no shape is far off; a peak is a maximum over the pass's phases, which
 * a sum of terms only bounds, and least squares alone lets the rare shapes drift.
 */
function fit(rows: Row[], floors: Partial<PassCoefficients>): PassCoefficients {
  let weights = rows.map(() => 1 / rows.length);
  let k = weightedFit(rows, weights, floors);
  for (let round = 0; round < 200; round++) {
    const errors = rows.map((row) => Math.abs(ratio(k, row) - 1) + 1e-9);
    const total = weights.reduce((s, w, i) => s + w * errors[i]!, 0);
    weights = weights.map((w, i) => (w * errors[i]!) / total);
    k = weightedFit(rows, weights, floors);
  }
  return k;
}

const round = (x: number) => Number(x.toPrecision(2));
for (const family of ["llama", "gpt2"] as const) {
  const measured: Record<PassKind, Row[]> = { inference: [], adapter: [], full: [] };
  for (const shape of shapes(family, Number(values.shapes))) {
    const model = randomModel(shape.config);
    for (const kind of KINDS) {
      const { terms, measured: bytes } = await measurePassPeak(model, kind, shape.batch, shape.seq);
      measured[kind].push({ ...terms, measured: bytes });
    }
    model.dispose();
  }
  const lines = KINDS.map((kind) => {
    const k = fit(measured[kind], FLOORS[kind]);
    const raised = Object.fromEntries(NAMES.map((name) => [name, round(1.1 * k[name])])) as unknown as PassCoefficients;
    const ratios = measured[kind].map((row) => ratio(raised, row));
    const fields = NAMES.map((name) => `${name}: ${raised[name]}`).join(", ");
    const before = measured[kind].map((row) => ratio(PASSES[family][kind], row));
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
    return `    ${kind}: { ${fields} }, // estimate / measured ${range(ratios)} (the coefficients in use: ${range(before)})`;
  });
  console.log(`  ${family}: {\n${lines.join("\n")}\n  },`);
}
