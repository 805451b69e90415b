/**
 * modules_to_save (PEFT's ModulesToSaveWrapper): an adapter that lists a module (e.g. lm_head) trains and
 * saves its own copy of that module's parameters. Each adapter has its copy; the model shows the copy of
 * the first active adapter that has one, and the base model's own values while adapters are disabled or
 * when no active adapter has a copy.
 *
 * The model's variables hold the values of one owner at a time (`live`, "" = the base model); the other
 * owners' values wait in `waiting` and are swapped in when the active adapters change.
 */
import { tf } from "../backend/index.js";
import { invalid } from "../core/check.js";
import type { Module } from "../nn/module.js";
import type { LoraState } from "./layer.js";

interface SavedParameter {
  readonly variable: tf.Variable;
  /** Whose values the variable holds now ("" = the base model's). */
  live: string;
  waiting: Map<string, tf.Tensor>;
}

/**
 * Full parameter names of the modules `entries` select (PEFT: a module whose name equals an entry or ends
 * with "." + entry). An entry that selects nothing, or a module that is, holds or lies inside one of the
 * `wrapped` LoRA layers, is an error naming `where` and `field`.
 */
export function modulesToSaveParameters(root: Module, entries: string[], wrapped: string[], where: string, field: string): string[] {
  const params = new Set<string>();
  for (const entry of entries) {
    const modules = [...root.namedModules()].filter(([path]) => path !== "" && (path === entry || path.endsWith(`.${entry}`)));
    if (modules.length === 0) throw invalid(where, field, "names of modules of the model (e.g. lm_head)", entry);
    for (const [path, m] of modules) {
      const overlaps = (w: string) => w === path || w.startsWith(`${path}.`) || path.startsWith(`${w}.`);
      if (wrapped.some(overlaps)) throw invalid(where, field, "modules apart from the LoRA-wrapped layers", entry);
      for (const [param] of m.namedParameters(path)) params.add(param);
    }
  }
  return [...params];
}

export class ModulesToSave {
  /** By full parameter name. */
  private readonly saved = new Map<string, SavedParameter>();
  private readonly paramsOf = new Map<string, string[]>();

  constructor(
    private readonly root: Module,
    private readonly state: LoraState,
  ) {}

  /** The parameter names `adapter` keeps a copy of (as saved in its adapter file). */
  parameters(adapter: string): string[] {
    return this.paramsOf.get(adapter) ?? [];
  }

  /** Gives `adapter` a copy of the base model's values of `params`. */
  add(adapter: string, params: string[]): void {
    if (params.length === 0) return;
    const variables = new Map(this.root.namedParameters());
    for (const param of params) {
      let p = this.saved.get(param);
      if (!p) this.saved.set(param, (p = { variable: variables.get(param)!, live: "", waiting: new Map() }));
      const base = p.live === "" ? p.variable : p.waiting.get("")!;
      p.waiting.set(adapter, tf.keep(base.clone()));
    }
    this.paramsOf.set(adapter, params);
    this.show();
  }

  /** Puts into each saved parameter the values its owner should show now (see the file comment). */
  show(): void {
    for (const p of this.saved.values()) {
      const wanted = this.state.disabled ? "" : (this.state.active.find((a) => p.waiting.has(a) || p.live === a) ?? "");
      if (wanted === p.live) continue;
      p.waiting.set(p.live, tf.keep(p.variable.clone()));
      p.variable.assign(p.waiting.get(wanted)!);
      p.waiting.get(wanted)!.dispose();
      p.waiting.delete(wanted);
      p.live = wanted;
    }
  }

  /** `adapter`'s current values of `param`, whether or not they are live. */
  value(adapter: string, param: string): tf.Tensor {
    const p = this.saved.get(param)!;
    return p.live === adapter ? p.variable : p.waiting.get(adapter)!;
  }

  /** Sets `adapter`'s values of `param` (a loaded adapter file). */
  assign(adapter: string, param: string, value: tf.Tensor): void {
    const p = this.saved.get(param)!;
    if (p.live === adapter) p.variable.assign(value);
    else {
      p.waiting.get(adapter)!.dispose();
      p.waiting.set(adapter, tf.keep(value.clone()));
    }
  }

  /** Parameters whose live values belong to one of `adapters` (they train with them). */
  liveFor(adapters: string[]): tf.Variable[] {
    return [...this.saved.values()].filter((p) => adapters.includes(p.live)).map((p) => p.variable);
  }

  /** Drops `adapter`'s copies (after it left the active adapters); the base values return where it was live. */
  remove(adapter: string): void {
    this.show();
    for (const [param, p] of this.saved) {
      p.waiting.get(adapter)?.dispose();
      p.waiting.delete(adapter);
      if (p.waiting.size === 0 && p.live === "") this.saved.delete(param);
    }
    this.paramsOf.delete(adapter);
  }

  /** Forgets every copy, leaving the live values in the model (merge-and-unload keeps what the model shows). */
  clear(): void {
    for (const p of this.saved.values()) for (const t of p.waiting.values()) t.dispose();
    this.saved.clear();
    this.paramsOf.clear();
  }
}
