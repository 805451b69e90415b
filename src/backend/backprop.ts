/**
 * Backpropagation that frees as it goes. tfjs's own walk keeps every tensor saved for the backward pass
 * and every intermediate gradient until the whole pass is done, so a training step's peak holds the
 * forward activations and all their gradients at once. This walk computes the same gradients in the same
 * order (so the same numbers) and frees each node's saved tensors once its gradient is computed, each
 * gradient once the node that consumes it is done, and up front what no path to the inputs needs.
 *
 * It replaces tfjs's Engine.gradients (which tf.grads, tf.variableGrads and friends call). Nested
 * gradients (a tape recording the backward pass itself) go to tfjs's own method.
 */
import * as tf from "@tensorflow/tfjs";

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: tf.Tensor[] };
}

/** The nodes on a path from some x to y, each with only the inputs that depend on an x. */
function pathFromXsToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const reachedFromX = new Set<number>();
  for (const node of tape) {
    if (!Object.values(node.inputs).some((t) => fromX.has(t.id))) continue;
    reachedFromX.add(node.id);
    for (const o of node.outputs) fromX.add(o.id);
  }
  const toY = new Set([y.id]);
  const leadsToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (!node.outputs.some((o) => toY.has(o.id))) continue;
    leadsToY.add(node.id);
    for (const t of Object.values(node.inputs)) toY.add(t.id);
  }
  return tape
    .filter((node) => reachedFromX.has(node.id) && leadsToY.has(node.id))
    .map((node) => ({ ...node, inputs: Object.fromEntries(Object.entries(node.inputs).filter(([, t]) => fromX.has(t.id))) }));
}

function checkGradient(node: TapeNode, inputName: string, dx: tf.Tensor, x: tf.Tensor): void {
  const where = `Error in gradient for op ${node.kernelName}. The gradient of input '${inputName}'`;
  if (dx.dtype !== "float32") throw new Error(`${where} must have 'float32' dtype, but has '${dx.dtype}'`);
  if (dx.shape.length !== x.shape.length || dx.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`${where} has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
  }
}

/**
 * Walks `path` backwards from grads[y], filling `grads` for every input on it and freeing what is done
 * with. `results` are ids whose gradients are returned; `external` tensors belong to the caller.
 */
function backpropagate(
  engine: EngineInternals,
  path: TapeNode[],
  grads: Map<number, tf.Tensor>,
  results: Set<number>,
  external: Set<tf.Tensor>,
): void {
  // Every stored gradient is a tensor of its own (a gradient function may hand the same one to two
  // inputs, or pass its dy on), so that freeing one never frees another.
  const stored = new Set(grads.values());
  const release = (t: tf.Tensor) => {
    stored.delete(t);
    if (!external.has(t)) t.dispose();
  };
  for (let i = path.length - 1; i >= 0; i--) {
    const node = path[i]!;
    const dys = node.outputs.map((o) => grads.get(o.id) ?? null);
    if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const gradientOf = node.gradient(dys);
    for (const [inputName, x] of Object.entries(node.inputs)) {
      const f = gradientOf[inputName];
      if (!f) throw new Error(`Cannot backprop through input ${inputName}. Available gradients found: ${Object.keys(gradientOf)}.`);
      let dx = engine.tidy(inputName, f);
      checkGradient(node, inputName, dx, x);
      if (stored.has(dx) || external.has(dx)) dx = tf.clone(dx);
      const previous = grads.get(x.id);
      const sum = previous ? tf.add(previous, dx) : dx;
      if (previous) [previous, dx].forEach(release);
      grads.set(x.id, sum);
      stored.add(sum);
    }
    for (const t of node.saved ?? []) t.dispose();
    node.saved = [];
    for (const [j, o] of node.outputs.entries()) {
      const dy = dys[j];
      if (!dy || results.has(o.id)) continue;
      release(dy);
      grads.delete(o.id);
    }
  }
}

export function installLeanBackprop(): void {
  const engine = tf.engine() as unknown as EngineInternals;
  if (Object.prototype.hasOwnProperty.call(engine, "gradients")) return; // installed already
  const stock = engine.gradients.bind(engine);
  engine.gradients = (f, xs, dy, allowNoGradients = false) => {
    if (engine.state.gradientDepth > 0) return stock(f, xs, dy, allowNoGradients);
    if (xs.length === 0) throw new Error("gradients() received an empty list of xs.");
    if (dy && dy.dtype !== "float32") throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    const y = engine.scopedRun(
      () => engine.startTape(),
      () => engine.endTape(),
      () => engine.tidy("forward", f),
    );
    if (!(y instanceof tf.Tensor)) throw new Error("The result y returned by f() must be a tensor.");
    const tape = engine.state.activeTape!;
    const path = pathFromXsToY(tape, xs, y);
    if (!allowNoGradients && path.length === 0) {
      throw new Error(
        "Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.",
      );
    }
    return engine.tidy("backward", () => {
      const onPath = new Set(path.map((n) => n.id));
      for (const node of tape) if (!onPath.has(node.id)) for (const t of node.saved ?? []) t.dispose();
      const grads = new Map<number, tf.Tensor>([[y.id, dy ?? tf.onesLike(y)]]);
      backpropagate(engine, path, grads, new Set(xs.map((x) => x.id)), new Set(dy ? [dy] : []));
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      engine.state.activeTape = null;
      return { value: y, grads: xs.map((x) => grads.get(x.id)!) };
    });
  };
}
