/**
 * `loralab worker --queue redis://host:6379/0`: trains the trials sweeps submit to the queue, until stopped.
 * SIGTERM (or Ctrl-C) stops taking trials and finishes the running ones; a second signal, or --grace-seconds
 * later, returns them to the queue for another worker.
 */
import { describeBackend, initBackend } from "../backend/index.js";
import { positiveInt, positiveNumber } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { coresEach } from "../train/parallelism.js";
import { startWorker } from "../study/queue-worker.js";
import { parseRedisUrl } from "../study/redis.js";
import { numberFlag, parseCommandArgs } from "./args.js";
import { backendOption } from "./common.js";

const usage = `usage: loralab worker --queue URL [--concurrency N] [--backend NAME] [--stall-seconds S] [--grace-seconds G]

  --queue URL          redis://[user:password@]host[:port][/db] or rediss://… (TLS); default: LORALAB_QUEUE
  --concurrency N      trials at once in this process, each on its own copy of the model (default 1)
  --stall-seconds S    a trial whose worker stops answering this long goes to another worker (default 30)
  --grace-seconds G    on SIGTERM, how long running trials may finish before they return to the queue (default 60)`;

export async function worker(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...backendOption,
    queue: { type: "string" },
    concurrency: { type: "string" },
    "stall-seconds": { type: "string" },
    "grace-seconds": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const url = values.queue ?? (process.env.LORALAB_QUEUE || undefined);
  if (url === undefined) throw new UserError("--queue is required (or set LORALAB_QUEUE): the Redis URL sweeps submit to");
  parseRedisUrl(url, "--queue"); // a malformed URL is an error naming the flag
  const log = (line: string) => console.error(`loralab worker: ${line}`);
  const backend = await initBackend(values.backend);
  const concurrency = numberFlag("--concurrency", values.concurrency, positiveInt, 1);
  // Trials at once share the cores: each training's "auto" workers take only its part (parallelism.ts).
  process.env.LORALAB_CORES = String(coresEach(concurrency));
  const running = await startWorker({
    url,
    concurrency,
    backend: values.backend,
    stallSeconds: numberFlag("--stall-seconds", values["stall-seconds"], positiveNumber, 30),
    graceSeconds: numberFlag("--grace-seconds", values["grace-seconds"], positiveNumber, 60),
    log,
  });
  log(`serving ${running.shown} (${describeBackend(backend)})`);
  const stop = (signal: string) => {
    log(`${signal}: finishing the running trials (again to return them to the queue now)`);
    running.shutdown();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await running.closed;
  log("stopped");
  return 0;
}
