/**
 * NF4 on real weights: the relative quantization error ‖W − deq(q(W))‖_F / ‖W‖_F of every linear weight of the
 * decoder layers of the shipped model (models/tiny-moby) and of stories260K, with and without double quantization,
 * equal to what test/reference/nf4_reference.py computes from the same checkpoints, and within the bound the
 * construction guarantees.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensors } from "../src/checkpoint/safetensors.js";
import { NF4_VALUES } from "../src/quant/normal-float.js";
import { dequantizeNF4, nf4Bytes, nf4Scales, quantizeNF4 } from "../src/quant/nf4.js";
import { REPO, STORIES, tempDir } from "./helpers/paths.js";
import { torchAvailable } from "./helpers/reference.js";
import { runNf4Reference, type Nf4Result } from "./helpers/nf4-reference.js";

const MODELS = { "tiny-moby": path.join(REPO, "models/tiny-moby"), stories260K: STORIES };

interface LayerError {
  params: number;
  nf4: number;
  nf4_dq: number;
}

const hasTorch = torchAvailable();
const work = tempDir("quant-models");
let reference: Record<string, Nf4Result> = {};

before(() => {
  if (!hasTorch) return;
  reference = runNf4Reference(
    Object.entries(MODELS).map(([name, model]) => ({ name, kind: "checkpoint" as const, model })),
    work,
  );
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

function frobenius(a: Float32Array, b?: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i]! - (b ? b[i]! : 0)) ** 2;
  return Math.sqrt(sum);
}

/** What the round-trip bound allows: every value off by at most half the widest NF4 gap times its block's absmax. */
function errorBound(w: Float32Array, scales: Float32Array): number {
  const halfGap = (NF4_VALUES[1]! - NF4_VALUES[0]!) / 2;
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += (halfGap * scales[Math.floor(i / 64)]!) ** 2;
  return Math.sqrt(sum) / frobenius(w);
}

for (const [name, dir] of Object.entries(MODELS)) {
  test(`${name}: per-layer NF4 error equals the reference's and stays within the round-trip bound`, async (t) => {
    const tensors = await readSafetensors(path.join(dir, "model.safetensors"));
    const rows: string[] = [];
    const ours: Record<string, LayerError> = {};
    let params = 0;
    let bytes = { nf4: 0, dq: 0 };
    for (const [key, tensor] of [...tensors].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!key.includes(".layers.") || tensor.shape.length !== 2) continue;
      const w = tensor.data;
      const plain = quantizeNF4(w);
      const dq = quantizeNF4(w, { doubleQuant: true });
      const norm = frobenius(w);
      const row = { params: w.length, nf4: frobenius(w, dequantizeNF4(plain)) / norm, nf4_dq: frobenius(w, dequantizeNF4(dq)) / norm };
      ours[key] = row;
      assert.ok(row.nf4 <= errorBound(w, nf4Scales(plain)), `${key}: nf4 error ${row.nf4} above the bound`);
      assert.ok(row.nf4_dq <= errorBound(w, nf4Scales(dq)), `${key}: nf4+dq error ${row.nf4_dq} above the bound`);
      // Double quantization perturbs each block's scale by under 1%; the error may move either way, but not by much.
      assert.ok(Math.abs(row.nf4_dq - row.nf4) < 0.01 * row.nf4, `${key}: nf4 ${row.nf4} vs nf4+dq ${row.nf4_dq}`);
      params += w.length;
      bytes = { nf4: bytes.nf4 + nf4Bytes(plain), dq: bytes.dq + nf4Bytes(dq) };
      rows.push(`${key.replace(/^model\.layers\./, "")} ${row.nf4.toFixed(5)} ${row.nf4_dq.toFixed(5)}`);
    }
    assert.ok(rows.length >= 7 * 4, `${name}: expected the 7 projections of every layer, got ${rows.length} weights`);
    const errors = Object.values(ours).map((r) => r.nf4);
    t.diagnostic(`${name}: ${rows.length} linear weights, ${params} params; relative error nf4, nf4+dq:`);
    for (const row of rows) t.diagnostic(`  ${row}`);
    t.diagnostic(
      `${name}: nf4 error min ${Math.min(...errors).toFixed(4)} max ${Math.max(...errors).toFixed(4)}; ` +
        `bytes f32 ${4 * params}, nf4 ${bytes.nf4} (${((8 * bytes.nf4) / params).toFixed(3)} bits/param), ` +
        `nf4+dq ${bytes.dq} (${((8 * bytes.dq) / params).toFixed(3)} bits/param)`,
    );
    if (!hasTorch) return t.skip("reference comparison needs Debian's python3-torch");
    const ref = reference[name]!;
    assert.equal(ref.error, undefined, `${name}: reference failed: ${ref.error}`);
    const refLayers = ref.layers as Record<string, LayerError>;
    assert.deepEqual(Object.keys(refLayers).sort(), Object.keys(ours).sort());
    for (const [key, r] of Object.entries(refLayers)) {
      const mine = ours[key]!;
      assert.equal(mine.params, r.params, key);
      assert.ok(
        Math.abs(mine.nf4 - r.nf4) < 1e-12 && Math.abs(mine.nf4_dq - r.nf4_dq) < 1e-12,
        `${key}: ${JSON.stringify(mine)} vs ${JSON.stringify(r)}`,
      );
    }
  });
}
