/**
 * A minimal module tree with PyTorch's naming: parameters and submodules are addressed by dotted
 * paths ("model.layers.0.self_attn.q_proj.weight") that equal the checkpoint's keys, so loading,
 * LoRA targeting and adapter files all speak the same names as transformers and PEFT.
 */
import { tf } from "../backend/index.js";

export abstract class Module {
  private readonly params = new Map<string, tf.Variable>();
  private readonly children = new Map<string, Module>();

  protected addParameter(name: string, value: tf.Tensor, trainable = false): tf.Variable {
    const v = tf.variable(value, trainable);
    value.dispose();
    this.params.set(name, v);
    return v;
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

export function countParameters(root: Module): number {
  let n = 0;
  for (const [, p] of root.namedParameters()) n += p.size;
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

/** The summary of `parameters` (e.g. `model.namedParameters()`); a parameter trains when its variable is trainable. */
export function trainableSummary(parameters: Iterable<readonly [string, tf.Variable]>): ParameterSummary {
  let trainable = 0;
  let all = 0;
  for (const [, p] of parameters) {
    all += p.size;
    if (p.trainable) trainable += p.size;
  }
  const percent = all > 0 ? (100 * trainable) / all : 0;
  const count = (n: number) => n.toLocaleString("en-US");
  return {
    trainable,
    all,
    percent,
    text: `trainable params: ${count(trainable)} || all params: ${count(all)} || trainable%: ${percent.toFixed(4)}`,
  };
}
