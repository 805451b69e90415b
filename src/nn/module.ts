/**
 * A minimal module tree with PyTorch's naming: parameters and submodules are addressed by dotted
 * paths ("model.layers.0.self_attn.q_proj.weight") that equal the checkpoint's keys, so loading,
 * LoRA targeting and adapter files all speak the same names as transformers and PEFT.
 */
import { tf } from "../backend/index.js";

/**
 * A frozen weight held outside the tensor backend in a compact format (NF4 codes, 16-bit floats): not a
 * tf.Variable, but listed beside the parameters so that counts and memory reports include it.
 */
export interface StoredWeight {
  readonly shape: readonly number[];
  /** "nf4", "nf4+dq", "f16", "bf16". */
  readonly format: string;
  readonly byteLength: number;
}

export abstract class Module {
  private readonly params = new Map<string, tf.Variable>();
  private readonly stored = new Map<string, StoredWeight>();
  private readonly children = new Map<string, Module>();

  protected addParameter(name: string, value: tf.Tensor, trainable = false): tf.Variable {
    const v = tf.variable(value, trainable);
    value.dispose();
    this.params.set(name, v);
    return v;
  }

  protected addStoredWeight(name: string, weight: StoredWeight): void {
    this.stored.set(name, weight);
  }

  protected addModule<M extends Module>(name: string, module: M): M {
    this.children.set(name, module);
    return module;
  }

  child(name: string): Module | undefined {
    return this.children.get(name);
  }

  /** Replaces a direct child (how LoRA wraps a Linear in place). */
  replaceChild(name: string, module: Module): void {
    if (!this.children.has(name)) throw new Error(`no submodule "${name}"`);
    this.children.set(name, module);
  }

  /** Removes a direct child and returns it (its parameters are not disposed). */
  removeChild(name: string): Module | undefined {
    const m = this.children.get(name);
    this.children.delete(name);
    return m;
  }

  childNames(): string[] {
    return [...this.children.keys()];
  }

  /** Every module below this one, depth first, with its dotted path ("" for this module). */
  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.children) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *namedParameters(prefix = ""): Generator<[string, tf.Variable]> {
    for (const [name, p] of this.params) yield [prefix ? `${prefix}.${name}` : name, p];
    for (const [name, child] of this.children) yield* child.namedParameters(prefix ? `${prefix}.${name}` : name);
  }

  /** The compact frozen weights below this module (not tf.Variables, so not in namedParameters). */
  *namedStoredWeights(prefix = ""): Generator<[string, StoredWeight]> {
    for (const [name, w] of this.stored) yield [prefix ? `${prefix}.${name}` : name, w];
    for (const [name, child] of this.children) yield* child.namedStoredWeights(prefix ? `${prefix}.${name}` : name);
  }

  ownParameter(name: string): tf.Variable | undefined {
    return this.params.get(name);
  }

  /** Frees every parameter's memory. The module is unusable afterwards. */
  dispose(): void {
    for (const [, p] of this.namedParameters()) p.dispose();
  }
}

/** Looks up a module by dotted path. */
export function getModule(root: Module, path: string): Module | undefined {
  let m: Module | undefined = root;
  for (const part of path.split(".")) {
    if (!part) continue;
    m = m?.child(part);
  }
  return m;
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Every weight of the model: its parameters and its compact frozen weights. */
export function countParameters(root: Module): number {
  let n = 0;
  for (const [, p] of root.namedParameters()) n += p.size;
  for (const [, w] of root.namedStoredWeights()) n += elements(w.shape);
  return n;
}

/** PEFT's print_trainable_parameters: how many parameters train, of how many. */
export interface ParameterSummary {
  trainable: number;
  all: number;
  /** 100 · trainable / all. */
  percent: number;
  /** `trainable params: 14,336 || all params: 871,552 || trainable%: 1.6449` */
  text: string;
}

/**
 * The summary of `parameters` (e.g. `model.namedParameters()`) and the compact frozen weights `stored` (e.g.
 * `model.namedStoredWeights()`, which never train); a parameter trains when its variable is trainable.
 */
export function trainableSummary(
  parameters: Iterable<readonly [string, tf.Variable]>,
  stored: Iterable<readonly [string, StoredWeight]> = [],
): ParameterSummary {
  let trainable = 0;
  let all = 0;
  for (const [, p] of parameters) {
    all += p.size;
    if (p.trainable) trainable += p.size;
  }
  for (const [, w] of stored) all += elements(w.shape);
  const percent = all > 0 ? (100 * trainable) / all : 0;
  const count = (n: number) => n.toLocaleString("en-US");
  return {
    trainable,
    all,
    percent,
    text: `trainable params: ${count(trainable)} || all params: ${count(all)} || trainable%: ${percent.toFixed(4)}`,
  };
}
