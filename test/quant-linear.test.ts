/**
 * The frozen compact linear layer (src/quant/quantized-linear.ts): NF4 and 16-bit weights widened per call, outputs
 * and input gradients equal to a float32 Linear holding the widened weight, no gradient to the weight, the backward
 * widening the weight again, flat tfjs memory over many steps, and bytes held = the compact bytes.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { decodeTensor, parseSafetensors, writeSafetensors } from "../src/checkpoint/safetensors.js";
import { Linear } from "../src/nn/layers.js";
import { widenHalf, type HalfFormat } from "../src/quant/half.js";
import { HalfWeight, NF4Weight, type FrozenWeight } from "../src/quant/frozen-weight.js";
import { QuantizedLinear } from "../src/quant/quantized-linear.js";
import type { NF4Options } from "../src/quant/nf4.js";
import { REPO, tempDir } from "./helpers/paths.js";
import { torchAvailable } from "./helpers/reference.js";
import { base64Float32, gaussian, runNf4Reference } from "./helpers/nf4-reference.js";

const CHECKPOINT = path.join(REPO, "models/tiny-moby/model.safetensors");
const WEIGHT = "model.layers.0.mlp.gate_proj.weight"; // [344, 128], stored F16
const work = tempDir("quant-linear");
let bytes: Uint8Array;

before(async () => {
  await initBackend();
  bytes = new Uint8Array(fs.readFileSync(CHECKPOINT));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** A tensor of the checkpoint: its shape, its raw 16-bit patterns and its float32 values (the checkpoint reader's). */
function checkpointTensor(file: Uint8Array, name: string): { shape: [number, number]; bits: Uint16Array; values: Float32Array } {
  const info = parseSafetensors(file, CHECKPOINT).tensors.get(name)!;
  const bits = new Uint16Array(file.slice(info.begin, info.end).buffer);
  return { shape: info.shape as [number, number], bits, values: decodeTensor(file, info) };
}

/** The float32 twin: a Linear holding exactly the weight the compact layer widens to. */
function float32Twin(layer: QuantizedLinear): Linear {
  const twin = new Linear(layer.inFeatures, layer.outFeatures, layer.bias !== undefined);
  tf.tidy(() => {
    twin.weight.assign(tf.tensor2d(layer.weight.toFloat32(), [layer.outFeatures, layer.inFeatures]));
    if (layer.bias) twin.bias!.assign(layer.bias);
  });
  return twin;
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]!);
}

/** Output and d(Σ y·r)/dx of `layer` on x [2, 5, in]. */
function outputAndInputGrad(layer: { forward(x: tf.Tensor): tf.Tensor }, x: tf.Tensor, r: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const y = layer.forward(x);
  const dx = tf.grad((input: tf.Tensor) => layer.forward(input).mul(r).sum())(x);
  return [y, dx];
}

const nf4Layer = (options: NF4Options, bias: boolean) => () => {
  const { shape, values } = checkpointTensor(bytes, WEIGHT);
  return new QuantizedLinear(NF4Weight.quantize(values, shape, options), bias ? gaussian(shape[0], 7, 0.1) : undefined);
};
const halfLayer = (format: HalfFormat) => () => {
  if (format === "f16") {
    const { shape, bits } = checkpointTensor(bytes, WEIGHT);
    return new QuantizedLinear(new HalfWeight(shape, bits, "f16"), gaussian(shape[0], 8, 0.1));
  }
  // bf16 bits as the checkpoint writer rounds them (round to nearest even), read back from a real file.
  const file = path.join(work, "bf16.safetensors");
  const { shape, values } = checkpointTensor(bytes, WEIGHT);
  return writeSafetensors(file, { w: { dtype: "BF16", shape, data: values } }).then(() => {
    const written = new Uint8Array(fs.readFileSync(file));
    const info = parseSafetensors(written, file).tensors.get("w")!;
    return new QuantizedLinear(new HalfWeight(shape, new Uint16Array(written.slice(info.begin, info.end).buffer), "bf16"));
  });
};

const LAYERS: [string, () => QuantizedLinear | Promise<QuantizedLinear>][] = [
  ["nf4, bias", nf4Layer({}, true)],
  ["nf4 + double quantization, no bias", nf4Layer({ doubleQuant: true }, false)],
  ["nf4, blocksize 128", nf4Layer({ blocksize: 128 }, false)],
  ["f16 (the checkpoint's own bits), bias", halfLayer("f16")],
  ["bf16 (written by the safetensors writer), no bias", halfLayer("bf16")],
];

for (const [name, make] of LAYERS) {
  test(`${name}: output and input gradient equal a float32 Linear holding the widened weight`, async (t) => {
    const layer = await make();
    const twin = float32Twin(layer);
    t.after(() => (layer.dispose(), twin.dispose()));
    const x = tf.tensor3d(gaussian(2 * 5 * layer.inFeatures, 9), [2, 5, layer.inFeatures]);
    const r = tf.tensor3d(gaussian(2 * 5 * layer.outFeatures, 10), [2, 5, layer.outFeatures]);
    const [y, dx] = outputAndInputGrad(layer, x, r);
    const [yRef, dxRef] = outputAndInputGrad(twin, x, r);
    const dy = maxAbsDiff(y, yRef);
    const dgrad = maxAbsDiff(dx, dxRef);
    t.diagnostic(`max |Δy| ${dy}, max |Δ dL/dx| ${dgrad} (|y| up to ${tf.tidy(() => yRef.abs().max().dataSync()[0])})`);
    assert.ok(dy <= 1e-6 && dgrad <= 1e-6);
    tf.dispose([x, r, y, dx, yRef, dxRef]);
  });
}

test("the gradient reaches an upstream trainable variable as through the float32 Linear, and never the frozen weight", async (t) => {
  const layer = await nf4Layer({}, true)();
  const twin = float32Twin(layer);
  const upstream = tf.variable(tf.tensor2d(gaussian(16 * 128, 14, 0.2), [16, 128]), true, "upstream");
  t.after(() => (layer.dispose(), twin.dispose(), upstream.dispose()));
  const input = tf.tensor2d(gaussian(3 * 16, 15), [3, 16]);
  const gradsThrough = (l: Linear | QuantizedLinear) =>
    tf.variableGrads(() => l.forward(input.matMul(upstream)).square().mean() as tf.Scalar);
  const ours = gradsThrough(layer);
  const ref = gradsThrough(twin);
  assert.deepEqual(Object.keys(ours.grads), ["upstream"], "only the upstream variable gets a gradient");
  assert.ok(maxAbsDiff(ours.grads.upstream!, ref.grads.upstream!) <= 1e-6);
  assert.deepEqual(
    [...layer.namedParameters()].map(([n, p]) => [n, p.trainable]),
    [["bias", false]],
    "the layer holds no weight tensor; its bias is frozen",
  );
  tf.dispose([input, ours.value, ref.value, ...Object.values(ours.grads), ...Object.values(ref.grads)]);
});

/** A weight that counts how often it is widened. */
class CountingWeight implements FrozenWeight {
  widened = 0;
  constructor(readonly inner: FrozenWeight) {}
  get shape() {
    return this.inner.shape;
  }
  get format() {
    return this.inner.format;
  }
  get byteLength() {
    return this.inner.byteLength;
  }
  toFloat32(): Float32Array {
    this.widened++;
    return this.inner.toFloat32();
  }
}

test("the backward pass widens the weight again instead of keeping the forward's float32 copy", async (t) => {
  const { shape, values } = checkpointTensor(bytes, WEIGHT);
  const weight = new CountingWeight(NF4Weight.quantize(values, shape));
  const layer = new QuantizedLinear(weight);
  t.after(() => layer.dispose());
  const x = tf.tensor2d(gaussian(4 * shape[1], 16), [4, shape[1]]);
  tf.dispose(layer.forward(x));
  assert.equal(weight.widened, 1, "forward: once");
  tf.dispose(tf.grad((input: tf.Tensor) => layer.forward(input).sum())(x));
  assert.equal(weight.widened, 3, "forward + backward: once each");
  x.dispose();
});

test("tfjs memory stays flat over 50 forward/backward steps (tensor count and bytes)", async (t) => {
  const layer = await nf4Layer({ doubleQuant: true }, true)();
  t.after(() => layer.dispose());
  const x = tf.variable(tf.tensor3d(gaussian(2 * 8 * 128, 17), [2, 8, 128]), true, "x");
  const step = () => {
    const { value, grads } = tf.variableGrads(() => layer.forward(x).square().mean() as tf.Scalar);
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const before = tf.memory();
  for (let i = 0; i < 50; i++) {
    step();
    assert.equal(tf.memory().numTensors, before.numTensors, `step ${i}: tensor count`);
    assert.equal(tf.memory().numBytes, before.numBytes, `step ${i}: bytes`);
  }
  x.dispose();
});

const BYTES: [string, number, NF4Options | HalfFormat][] = [
  ["nf4", 4.5, {}],
  ["nf4+dq", 4 + 8 / 64 + 32 / (64 * 256), { doubleQuant: true }],
  ["f16", 16, "f16"],
  ["bf16", 16, "bf16"],
];

for (const [format, bitsPerParam, spec] of BYTES) {
  test(`memory held by a ${format} layer [1024, 2048]: the compact bytes (≈ ${bitsPerParam.toFixed(3)} bits/param); no backend tensor for the weight`, (t) => {
    const shape: [number, number] = [1024, 2048];
    const values = gaussian(shape[0] * shape[1], 18, 0.02);
    const n = values.length;
    const before = tf.memory();
    const weight =
      typeof spec === "string"
        ? new HalfWeight(shape, new Uint16Array(new Uint32Array(values.buffer).map((b) => b >>> 16)), spec)
        : NF4Weight.quantize(values, shape, spec);
    const layer = new QuantizedLinear(weight);
    t.after(() => layer.dispose());
    assert.equal(tf.memory().numBytes, before.numBytes, "nothing of the weight lives in the tensor backend");
    assert.equal(weight.format, format);
    // nf4+dq also holds one float32 offset per weight: 32 bits over 2M params.
    const expected = format === "nf4+dq" ? (n * bitsPerParam) / 8 + 4 : (n * bitsPerParam) / 8;
    assert.equal(layer.byteLength, expected);
    t.diagnostic(
      `${format}: ${layer.byteLength} bytes for ${n} params = ${((8 * layer.byteLength) / n).toFixed(4)} bits/param (f32: ${4 * n} bytes, ${((4 * n) / layer.byteLength).toFixed(2)}×)`,
    );
  });
}

test("fromLinear quantizes a float32 Linear's weight to NF4 and keeps its bias in float32", (t) => {
  const linear = new Linear(64, 3, true);
  tf.tidy(() => {
    linear.weight.assign(tf.tensor2d(gaussian(192, 19), [3, 64]));
    linear.bias!.assign(tf.tensor1d([0.5, -1, 2]));
  });
  const layer = QuantizedLinear.fromLinear(linear, { doubleQuant: true });
  t.after(() => (linear.dispose(), layer.dispose()));
  assert.equal(layer.weight.format, "nf4+dq");
  assert.deepEqual(
    layer.weight.toFloat32(),
    NF4Weight.quantize(linear.weight.dataSync() as Float32Array, [3, 64], { doubleQuant: true }).toFloat32(),
  );
  assert.deepEqual([...layer.bias!.dataSync()], [0.5, -1, 2]);
});

test("a weight whose shape does not match its values, or a bias of the wrong length, is refused", () => {
  assert.throws(() => new HalfWeight([3, 4], new Uint16Array(11), "f16"), /HalfWeight: shape \[3, 4\] does not hold 11 values/);
  assert.throws(() => NF4Weight.quantize(new Float32Array(12), [4, 4]), /NF4Weight: shape \[4, 4\] does not hold 12 values/);
  assert.throws(
    () => new QuantizedLinear(new HalfWeight([3, 4], new Uint16Array(12), "f16"), new Float32Array(4)),
    /bias has 4 values, expected 3/,
  );
});

test("16-bit widening: the checkpoint's F16 weights widen to the checkpoint reader's float32 values, bit for bit", () => {
  const { bits, values } = checkpointTensor(bytes, WEIGHT);
  assert.deepEqual(widenHalf(bits, "f16"), values);
});

test(
  "16-bit widening: all 65536 f16 and all 65536 bf16 bit patterns equal torch's conversions (NaN as NaN)",
  { skip: torchAvailable() ? false : "needs Debian's python3-torch" },
  () => {
    const ref = runNf4Reference([{ name: "halves", kind: "halves" }], work).halves!;
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const format of ["f16", "bf16"] as const) {
      const ours = widenHalf(all, format);
      const theirs = base64Float32(ref[format]);
      for (let i = 0; i < 65536; i++) {
        if (Number.isNaN(theirs[i])) assert.ok(Number.isNaN(ours[i]), `${format} 0x${i.toString(16)}`);
        else assert.ok(Object.is(ours[i], theirs[i]), `${format} 0x${i.toString(16)}: ${ours[i]} vs ${theirs[i]}`);
      }
    }
  },
);
