/**
 * A data-parallel worker (a worker thread with its own tfjs backend): it builds a replica of the trained model,
 * takes the trainer's weights and optimizer moments, then for each step computes the gradients of its share
 * into its slot of the shared gradient buffer and applies the summed gradients exactly as the trainer does.
 */
import { parentPort } from "node:worker_threads";
import { initBackend, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { AdamW } from "./optimizer.js";
import { buildReplica, firstDifference, fingerprint } from "./replica.js";
import { type FromReplica, readTensors, type ReplicaSetup, type ToReplica, writeTensors } from "./replica-protocol.js";
import { applyUpdate, shareGradients } from "./step.js";
import type { Trainable } from "./trainable.js";
import { assignWeights } from "../models/load.js";

interface Replica {
  setup: ReplicaSetup;
  trainable: Trainable;
  optimizer: AdamW;
  noDecay: Set<string>;
  sum: Float32Array;
  own: Float32Array;
}

let replica: Replica | undefined;

const post = (message: FromReplica) => parentPort!.postMessage(message);

async function start(setup: ReplicaSetup): Promise<FromReplica> {
  await initBackend(setup.backend);
  const trainable = buildReplica(setup.recipe);
  const difference = firstDifference(setup.fingerprint, fingerprint(trainable.model));
  if (difference !== undefined) {
    trainable.model.dispose();
    return { type: "refused", reason: `the model's structure differs from what a replica builds (${difference})` };
  }
  const { floats, buffer } = setup.gradients;
  replica = {
    setup,
    trainable,
    optimizer: new AdamW(setup.optimizer),
    noDecay: new Set(setup.noDecay),
    sum: new Float32Array(buffer, 0, floats),
    own: new Float32Array(buffer, 4 * floats * setup.rank, floats),
  };
  return { type: "ready" };
}

function handle(message: ToReplica, r: Replica): FromReplica {
  switch (message.type) {
    case "weights": {
      const tensors = readTensors(message.tensors.layout, new Float32Array(message.tensors.buffer));
      assignWeights(r.trainable.model, tensors, "replica", { tied: false });
      tf.dispose([...tensors.values()]);
      return { type: "loaded" };
    }
    case "moments": {
      const tensors = readTensors(message.tensors.layout, new Float32Array(message.tensors.buffer));
      r.optimizer.loadState(message.step, tensors);
      return { type: "loaded" };
    }
    case "step": {
      const { grads, nllSum } = shareGradients(r.trainable, message.share);
      writeTensors(grads, r.setup.gradients.layout, r.own);
      tf.dispose([...grads.values()]);
      return { type: "gradients", nllSum };
    }
    case "update": {
      const grads = readTensors(r.setup.gradients.layout, r.sum);
      return { type: "updated", ...applyUpdate(r.trainable, r.optimizer, grads, message.settings, r.noDecay) };
    }
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
    post({ type: "error", message: error.message, user: e instanceof UserError, diverged: false, stack: error.stack });
  }
});
