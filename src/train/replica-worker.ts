/**
 * A data-parallel worker (a worker thread with its own tfjs backend): it builds a replica of the trained or
 * evaluated model and copies in the original's weights. For training, each step it computes the gradients of its
 * share into its slot of the shared gradient buffer and copies in the trainable weights the trainer's update wrote;
 * for evaluation it scores its share of the rows, perplexity windows or generations. Started by replicas.ts.
 */
import { parentPort } from "node:worker_threads";
import { initBackend, selectBlas, simdActive, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { generateAll } from "../metrics/generation-eval.js";
import { scoreWindows } from "../metrics/perplexity.js";
import { buildReplica, firstDifference, fingerprint, type Replica } from "./replica.js";
import { type FromReplica, readTensor, type ReplicaSetup, type ToReplica, type TrainingSetup, writeTensors } from "./replica-protocol.js";
import { shareGradients, shareNll } from "./step.js";
import type { Trainable } from "./trainable.js";

interface Training {
  setup: TrainingSetup;
  trainable: Trainable;
  /** This replica's gradient slot. */
  own: Float32Array;
}

type Live = Replica & { training?: Training };

let replica: Live | undefined;

const post = (message: FromReplica) => parentPort!.postMessage(message);

/** Assigns the layout's tensors of `source` to the parameters of the same names. */
function assignFrom(parameters: Map<string, tf.Variable>, setup: ReplicaSetup["parameters"]): void {
  const source = new Float32Array(setup.buffer);
  for (const entry of setup.layout) {
    const p = parameters.get(entry.name);
    if (!p) throw new Error(`replica: no parameter "${entry.name}"`);
    const t = readTensor(entry, source);
    p.assign(t);
    t.dispose();
  }
}

async function start(setup: ReplicaSetup): Promise<FromReplica> {
  await initBackend(setup.backend);
  if (setup.backend === "wasm") selectBlas(setup.blas);
  if (simdActive() !== setup.simd) {
    return {
      type: "refused",
      reason: "the SIMD kernels are on in one thread and off in another (LORALAB_SIMD): their numbers would differ",
    };
  }
  const built = buildReplica(setup.recipe);
  const difference = firstDifference(setup.fingerprint, fingerprint(built.root, setup.recipe));
  if (difference !== undefined) {
    built.root.dispose();
    return { type: "refused", reason: `the model's structure differs from what a replica builds (${difference})` };
  }
  // In the original's adapter state: with adapters switched off, modules_to_save show the base model's values, and
  // those are the ones sent.
  built.within(() => assignFrom(new Map(built.root.namedParameters()), setup.parameters));
  const t = setup.training;
  const training = t && {
    setup: t,
    trainable: built.trainable!,
    own: new Float32Array(t.gradients, 4 * t.trainable.floats * setup.rank, t.trainable.floats),
  };
  replica = { ...built, training };
  return { type: "ready" };
}

function trainingOf(r: Live): Training {
  if (!r.training) throw new Error("replica: this replica only evaluates");
  return r.training;
}

function handle(message: ToReplica, r: Live): FromReplica {
  switch (message.type) {
    case "step": {
      const t = trainingOf(r);
      const { grads, nllSum } = r.within(() => shareGradients(t.trainable, message.share, t.setup));
      writeTensors(grads, t.setup.trainable.layout, t.own);
      tf.dispose([...grads.values()]);
      return { type: "gradients", nllSum };
    }
    case "weights": {
      const t = trainingOf(r);
      assignFrom(new Map(t.trainable.trainableParameters()), t.setup.trainable);
      return { type: "loaded" };
    }
    case "score":
      return { type: "scored", ...r.within(() => shareNll(r.model, message.examples, message.batchSize)) };
    case "scoreWindows":
      return { type: "windowScores", ...r.within(() => scoreWindows(r.model, message.batches)) };
    case "generate":
      return { type: "generated", ids: r.within(() => generateAll(r.model, message.requests, message.sampling)) };
    case "memory":
      return { type: "memory", ...tf.memory() };
    default:
      throw new Error(`unknown message ${(message as { type: string }).type}`);
  }
}

parentPort!.on("message", async (message: ToReplica) => {
  try {
    if (message.type === "setup") post(await start(message.setup));
    else post(handle(message, replica!));
  } catch (e) {
    const error = e as Error;
    post({ type: "error", message: error.message, user: e instanceof UserError, stack: error.stack });
  }
});
