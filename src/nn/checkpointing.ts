/**
 * Activation checkpointing (torch.utils.checkpoint): a layer run through `ActivationCheckpointing.run` keeps only
 * its input for the backward pass instead of every intermediate tensor; the backward runs the layer again to
 * rebuild them. A training step then holds one [B, T, C] input per layer instead of all of each layer's
 * activations, for one extra forward pass of compute.
 *
 * tfjs's customGrad runs its forward with the tape off and returns gradients only for its explicit inputs, so the
 * layer's trainable variables are passed as inputs too, and the backward computes the layer's gradients with a
 * tape of its own.
 */
import { tf } from "../backend/index.js";
import type { Module } from "./module.js";

/** Random streams the layer draws from (dropout): rewound for the recomputation, so it draws the same masks. */
export interface RandomStreams {
  save(): unknown;
  restore(state: unknown): void;
}

/**
 * One training step's checkpointing: create it for a forward pass, pass it in the forward options, dispose it
 * once the gradients are computed (it holds each checkpointed layer's input until then).
 */
export class ActivationCheckpointing {
  private readonly held = new Set<tf.Tensor>();

  constructor(private readonly random?: RandomStreams) {}

  /**
   * forward(x), with its intermediates dropped and recomputed in the backward. `context` lists the tensors besides
   * x that `forward` reads (position tables, attention masks): they are kept alive until dispose().
   */
  run<T extends tf.Tensor>(module: Module, forward: (x: T) => T, x: T, context: tf.Tensor[] = []): T {
    const variables = [...module.namedParameters()].filter(([, p]) => p.trainable).map(([, p]) => p);
    for (const t of [x, ...context]) this.hold(t);
    const randomState = this.random?.save();
    const layer = tf.customGrad(((input: T, ...rest: unknown[]) => {
      rest.pop(); // the save function: x is held here rather than cloned
      return {
        value: forward(input),
        gradFunc: (dy: T) => this.recompute(forward, x, variables, dy, randomState),
      };
    }) as never) as (input: T, ...vars: tf.Variable[]) => T;
    return layer(x, ...variables);
  }

  /** Gradients of forward at x w.r.t. x and the variables, weighted by dy, with a tape of their own. */
  private recompute<T extends tf.Tensor>(forward: (x: T) => T, x: T, variables: tf.Variable[], dy: T, randomState: unknown): tf.Tensor[] {
    const engine = tf.engine();
    const outerTape = engine.state.activeTape; // the running backward pass iterates its own copy; restored below
    const after = this.random?.save();
    this.random?.restore(randomState);
    try {
      const { value, grads } = engine.gradients(() => forward(x), [x, ...variables], dy, true);
      value.dispose();
      return grads.map((g, i) => g ?? tf.zerosLike(i === 0 ? x : variables[i - 1]!));
    } finally {
      this.random?.restore(after);
      engine.state.activeTape = outerTape;
    }
  }

  private hold(t: tf.Tensor): void {
    if (this.held.has(t) || t.kept) return; // tensors kept by someone else (variables, caches) are not ours to free
    this.held.add(tf.keep(t));
  }

  dispose(): void {
    tf.dispose([...this.held]);
    this.held.clear();
  }
}

/** Runs one decoder layer, through `checkpointing` when given. */
export function runLayer<T extends tf.Tensor>(
  module: Module,
  forward: (x: T) => T,
  x: T,
  checkpointing: ActivationCheckpointing | undefined,
  context: tf.Tensor[] = [],
): T {
  return checkpointing ? checkpointing.run(module, forward, x, context) : forward(x);
}
