/**
 * A local worker process (forked by processes.ts): runs the trials its parent sends over the IPC channel, one at
 * a time, with the same runner as every other executor, and answers with steps and the outcome. It exits when
 * its parent goes away.
 */
import { isUserError } from "../core/errors.js";
import { failureText } from "./executor.js";
import { ModelPool } from "./model-pool.js";
import { runTrial } from "./runner.js";
import { checkTrialSpec } from "./trial.js";

export type ParentMessage = { type: "run"; spec: unknown };
export type ChildMessage =
  | { type: "step"; step: number; loss: number; totalSteps: number }
  | { type: "completed"; outcome: unknown }
  | { type: "failed"; error: string; user: boolean };

const pool = new ModelPool(process.env.LORALAB_BACKEND || undefined);
const send = (m: ChildMessage) => process.send!(m);

process.on("message", (message: ParentMessage) => {
  void (async () => {
    try {
      const spec = checkTrialSpec(message.spec);
      const outcome = await runTrial(spec, {
        pool,
        onStep: (log, totalSteps) => send({ type: "step", step: log.step, loss: log.loss, totalSteps }),
      });
      send({ type: "completed", outcome });
    } catch (e) {
      send({ type: "failed", error: failureText(e), user: isUserError(e) });
    }
  })();
});
process.on("disconnect", () => process.exit(0));
