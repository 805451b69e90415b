import { Module } from "./module.js";
import { Conv1D, Linear, type LinearLike } from "./layers.js";

/**
 * Builds a decoder's linear layers: `layout` is how the checkpoint stores the weight (torch.nn.Linear [out, in] or
 * GPT-2's Conv1D [in, out]). The default allocates float32 weights; a loader may build compact layers instead.
 */
export type LinearFactory = (inFeatures: number, outFeatures: number, bias: boolean, layout: "linear" | "conv1d") => LinearLike;

export const float32Linear: LinearFactory = (inF, outF, bias, layout) =>
  layout === "conv1d" ? new Conv1D(inF, outF) : new Linear(inF, outF, bias);

/** torch.nn.ModuleList: children named "0", "1", … */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.addModule(String(i), m));
  }
}

/**
 * A module whose linear sublayers may be swapped (LoRA wraps them in place), so forward passes
 * look them up by name each time instead of holding references.
 */
export abstract class ModuleWithLinears extends Module {
  protected linear(name: string): LinearLike {
    return this.child(name) as LinearLike;
  }
}

/** torch.nn.ModuleDict: children added and removed by key (LoRA keeps one entry per adapter name). */
export class ModuleDict<M extends Module> extends Module {
  get(key: string): M | undefined {
    return this.child(key) as M | undefined;
  }

  set(key: string, module: M): void {
    if (this.child(key)) this.replaceChild(key, module);
    else this.addModule(key, module);
  }

  delete(key: string): void {
    this.removeChild(key)?.dispose();
  }

  keys(): string[] {
    return this.childNames();
  }
}
