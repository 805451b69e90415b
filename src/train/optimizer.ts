/**
 * AdamW with decoupled weight decay, the same arithmetic as torch.optim.AdamW:
 *   p ← p·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
 *   p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)
 */
import { tf } from "../backend/index.js";

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of updates applied so far (t). */
  step = 0;
  /** First and second moments per parameter name. */
  readonly exp = new Map<string, { avg: tf.Tensor; avgSq: tf.Tensor }>();

  constructor(options: AdamWOptions = {}) {
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
  }

  /**
   * One update of every parameter that has a gradient, with learning rate `lr`; parameters named in
   * `noDecay` skip weight decay (transformers exempts biases and normalisation weights).
   * Returns false, changing nothing, when the update would make a weight NaN or infinite.
   */
  apply(params: [string, tf.Variable][], grads: Map<string, tf.Tensor>, lr: number, noDecay: ReadonlySet<string> = new Set()): boolean {
    const t = this.step + 1;
    const bias1 = 1 - this.beta1 ** t;
    const bias2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    const updates: { name: string; p: tf.Variable; avg: tf.Tensor; avgSq: tf.Tensor; value: tf.Tensor }[] = [];
    for (const [name, p] of params) {
      const g = grads.get(name);
      if (!g) continue;
      const previous = this.exp.get(name);
      const next = tf.tidy(() => {
        const avg = (previous ? previous.avg.mul(this.beta1) : tf.zerosLike(g)).add(g.mul(1 - this.beta1));
        const avgSq = (previous ? previous.avgSq.mul(this.beta2) : tf.zerosLike(g)).add(g.square().mul(1 - this.beta2));
        const decayed = this.weightDecay && !noDecay.has(name) ? p.mul(1 - lr * this.weightDecay) : p;
        const denom = avgSq.sqrt().div(bias2Sqrt).add(this.eps);
        return { avg, avgSq, value: decayed.sub(avg.div(denom).mul(lr / bias1)) };
      });
      updates.push({ name, p, ...next });
    }
    // All weights are checked before any is written, so a refused update leaves the model as it was.
    if (updates.length > 0 && !allFinite(updates.map((u) => u.value))) {
      tf.dispose(updates.flatMap((u) => [u.avg, u.avgSq, u.value]));
      return false;
    }
    this.step = t;
    for (const { name, p, avg, avgSq, value } of updates) {
      p.assign(value);
      value.dispose();
      const previous = this.exp.get(name);
      previous?.avg.dispose();
      previous?.avgSq.dispose();
      this.exp.set(name, { avg, avgSq });
    }
    return true;
  }

  /** Moments as named tensors (for checkpoints: `<param>.exp_avg`, `<param>.exp_avg_sq`). */
  /** Bytes of the moments held (two float32 values per parameter updated so far). */
  get stateBytes(): number {
    let bytes = 0;
    for (const { avg, avgSq } of this.exp.values()) bytes += 4 * (avg.size + avgSq.size);
    return bytes;
  }

  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, { avg, avgSq }] of this.exp) {
      out.set(`${name}.exp_avg`, avg);
      out.set(`${name}.exp_avg_sq`, avgSq);
    }
    return out;
  }

  loadState(step: number, tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    this.dispose();
    this.step = step;
    for (const [key, t] of tensors) {
      const m = /^(.*)\.(exp_avg|exp_avg_sq)$/.exec(key);
      if (!m) continue;
      const entry = this.exp.get(m[1]!) ?? { avg: tf.zeros(t.shape), avgSq: tf.zeros(t.shape) };
      const value = tf.tensor(t.data, t.shape);
      if (m[2] === "exp_avg") {
        entry.avg.dispose();
        entry.avg = value;
      } else {
        entry.avgSq.dispose();
        entry.avgSq = value;
      }
      this.exp.set(m[1]!, entry);
    }
  }

  dispose(): void {
    for (const { avg, avgSq } of this.exp.values()) tf.dispose([avg, avgSq]);
    this.exp.clear();
  }
}

function allFinite(tensors: tf.Tensor[]): boolean {
  const finite = tf.tidy(() => tf.stack(tensors.map((t) => tf.isFinite(t).all())).all());
  const ok = finite.dataSync()[0] === 1;
  finite.dispose();
  return ok;
}

/**
 * torch.nn.utils.clip_grad_norm_: the global L2 norm of all gradients; when `maxNorm` > 0 and the
 * norm exceeds it, every gradient is scaled by maxNorm / (norm + 1e-6). Returns the norm before clipping.
 */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const total = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => g.square().sum()))));
  const norm = total.dataSync()[0]!;
  total.dispose();
  if (maxNorm > 0 && Number.isFinite(norm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) {
      for (const [name, g] of grads) {
        grads.set(name, g.mul(coef));
        g.dispose();
      }
    }
  }
  return norm;
}
