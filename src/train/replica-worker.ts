/**
 * A data-parallel worker (a worker thread with its own tfjs backend): it builds a replica of the trained model,
 * copies in the trainer's weights, then for each step computes the gradients of its share into its slot of the
 * shared gradient buffer, copies in the trainable weights the trainer's update wrote, and scores its share of the
 * evaluation rows. Started by replicas.ts.
 */
import { parentPort } from "node:worker_threads";
import { initBackend, selectBlas, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { buildReplica, firstDifference, fingerprint } from "./replica.js";
import { type FromReplica, readTensor, type ReplicaSetup, type ToReplica, writeTensors } from "./replica-protocol.js";
import { shareGradients, shareNll } from "./step.js";
import type { Trainable } from "./trainable.js";

interface Replica {
  setup: ReplicaSetup;
  trainable: Trainable;
  /** This replica's gradient slot. */
  own: Float32Array;
}

let replica: Replica | undefined;

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
  const trainable = buildReplica(setup.recipe);
  const difference = firstDifference(setup.fingerprint, fingerprint(trainable.parameterRoot));
  if (difference !== undefined) {
    trainable.parameterRoot.dispose();
    return { type: "refused", reason: `the model's structure differs from what a replica builds (${difference})` };
  }
  assignFrom(new Map(trainable.parameterRoot.namedParameters()), setup.parameters);
  const floats = setup.trainable.floats;
  replica = { setup, trainable, own: new Float32Array(setup.gradients, 4 * floats * setup.rank, floats) };
  return { type: "ready" };
}

function handle(message: ToReplica, r: Replica): FromReplica {
  switch (message.type) {
    case "step": {
      const { grads, nllSum } = shareGradients(r.trainable, message.share, r.setup);
      writeTensors(grads, r.setup.trainable.layout, r.own);
      tf.dispose([...grads.values()]);
      return { type: "gradients", nllSum };
    }
    case "weights":
      assignFrom(new Map(r.trainable.trainableParameters()), r.setup.trainable);
      return { type: "loaded" };
    case "score":
      return { type: "scored", ...shareNll(r.trainable.model, message.examples, message.batchSize) };
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
