/**
 * Loaded base models a process trains trials on, reused from trial to trial. Each trial adds its own adapter to
 * a model it holds alone (trials running at once in one process take different copies), and removes it after.
 */
import { initBackend } from "../backend/index.js";
import { PeftModel } from "../lora/peft-model.js";
import { loadModel, type LoadedModel } from "../models/load.js";

export interface PooledModel {
  loaded: LoadedModel;
  /** The multi-adapter model trials add their adapters to. */
  peft: PeftModel;
}

export class ModelPool {
  private readonly idle = new Map<string, PooledModel[]>();

  /**
   * `backend`: initialised before the first load (default: the process's choice). `provided`: a model the
   * caller already has loaded (the DSL's), used instead of loading a copy.
   */
  constructor(
    private readonly backend?: string,
    private readonly provided?: (ref: string) => PooledModel | undefined,
  ) {}

  async acquire(ref: string): Promise<PooledModel> {
    const mine = this.provided?.(ref);
    if (mine) return mine;
    const ready = this.idle.get(ref)?.pop();
    if (ready) return ready;
    await initBackend(this.backend);
    const loaded = await loadModel(ref);
    return { loaded, peft: PeftModel.emptyOn(loaded.model) };
  }

  release(ref: string, model: PooledModel): void {
    if (this.provided?.(ref) === model) return;
    this.idle.set(ref, [...(this.idle.get(ref) ?? []), model]);
  }

  dispose(): void {
    for (const models of this.idle.values()) for (const m of models) m.loaded.model.dispose();
    this.idle.clear();
  }
}
