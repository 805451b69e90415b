/**
 * PEFT's add_weighted_adapter: a new adapter from a weighted combination of existing ones.
 *   "cat" (exact): the new update is Σ wᵢ·scalingᵢ·BᵢAᵢ; the ranks add up (A stacked, B side by side).
 *   "linear": equal ranks only; A = Σ √|wᵢ|·scalingᵢ·Aᵢ, B = Σ sign(wᵢ)·√|wᵢ|·Bᵢ, as PEFT mixes them.
 * The combined update carries its scaling inside A, so the new adapter has alpha = r (scaling 1).
 */
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import type { LoraConfig, LoraConfigInput } from "./config.js";
import type { LoraLayer } from "./layer.js";

export type Combination = "cat" | "linear";

/** What the combination needs from the model holding the adapters. */
export interface AdapterHost {
  readonly adapters: ReadonlyMap<string, { readonly config: LoraConfig; readonly modules: string[] }>;
  loraLayer(path: string): LoraLayer;
  addAdapter(name: string, config: LoraConfigInput): unknown;
}

export function addWeightedAdapter(
  host: AdapterHost,
  adapters: string[],
  weights: number[],
  newName: string,
  combination: Combination = "cat",
): void {
  if (adapters.length === 0 || adapters.length !== weights.length)
    throw new UserError("addWeightedAdapter: give as many weights as adapters (at least one)");
  const infos = adapters.map((a) => {
    const info = host.adapters.get(a);
    if (!info) throw new UserError(`no adapter "${a}"`);
    return info;
  });
  const modules = [...new Set(infos.flatMap((i) => i.modules))];
  const layers = modules.map((m) => host.loraLayer(m));
  const rankAt = (layer: LoraLayer) => adapters.reduce((sum, a) => sum + (layer.settings.get(a)?.r ?? 0), 0);
  if (combination === "linear") {
    const ranks = new Set(infos.flatMap((info, k) => info.modules.map((m) => host.loraLayer(m).settings.get(adapters[k]!)!.r)));
    if (ranks.size !== 1)
      throw new UserError(`addWeightedAdapter "linear" needs adapters of one rank; found ranks ${[...ranks].join(", ")} (use "cat")`);
  }
  const ranks = layers.map(rankAt);
  const r = combination === "linear" ? layers[0]!.settings.get(adapters[0]!)!.r : Math.max(...ranks);
  const rankPattern: Record<string, number> = {};
  if (combination === "cat")
    modules.forEach((m, i) => {
      if (ranks[i] !== r) rankPattern[m] = ranks[i]!;
    });
  host.addAdapter(newName, {
    ...infos[0]!.config,
    r,
    loraAlpha: r,
    rankPattern,
    alphaPattern: { ...rankPattern },
    targetModules: modules,
    useDora: false,
    useRslora: false,
    initLoraWeights: true,
    layersToTransform: null,
  });
  tf.tidy(() => {
    for (const layer of layers) {
      const parts = adapters.flatMap((a, k) => {
        const s = layer.settings.get(a);
        return s ? [{ ...layer.weightsOf(a), scaling: s.scaling, weight: weights[k]! }] : [];
      });
      const target = layer.weightsOf(newName);
      if (combination === "linear") {
        target.a.assign(tf.addN(parts.map((p) => p.a.mul(Math.sqrt(Math.abs(p.weight)) * p.scaling))));
        target.b.assign(tf.addN(parts.map((p) => p.b.mul(Math.sign(p.weight) * Math.sqrt(Math.abs(p.weight))))));
      } else {
        target.a.assign(
          tf.concat(
            parts.map((p) => p.a.mul(p.weight * p.scaling)),
            0,
          ),
        );
        target.b.assign(
          tf.concat(
            parts.map((p) => p.b),
            1,
          ),
        );
      }
    }
  });
}
