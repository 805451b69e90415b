import { Module } from "./module.js";
import type { LinearLike } from "./layers.js";

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
