import * as os from "node:os";
import { BACKENDS, describeBackend, initBackend, tf } from "../backend/index.js";
import { backendOption, printJson } from "./common.js";
import { parseCommandArgs } from "./args.js";

const MiB = 1024 * 1024;

/** `loralab info [--backend B] [--json]`: what would run the math, and with what. */
export async function info(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, { ...backendOption, json: { type: "boolean" } });
  const backend = await initBackend(values.backend);
  const memory = tf.memory();
  const report = {
    loralab: process.env.npm_package_version ?? "0.1.0",
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    backend: backend.name,
    backendReason: backend.reason,
    backendPackageVersion: backend.packageVersion ?? null,
    skipped: backend.skipped,
    tfjs: backend.tfjsVersion,
    threads: backend.threads,
    cpus: os.availableParallelism(),
    memory: {
      totalMiB: Math.round(os.totalmem() / MiB),
      freeMiB: Math.round(os.freemem() / MiB),
      rssMiB: Math.round(process.memoryUsage().rss / MiB),
      tensorBytes: memory.numBytes,
    },
    available: BACKENDS,
  };
  if (values.json) {
    printJson(report);
    return 0;
  }
  console.log(`loralab ${report.loralab} on node ${report.node} (${report.platform})`);
  console.log(describeBackend(backend));
  console.log(`tfjs ${report.tfjs}${backend.packageVersion ? `, ${backend.name} package ${backend.packageVersion}` : ""}`);
  console.log(`threads: ${report.threads} (of ${report.cpus} CPUs)`);
  console.log(`memory: ${report.memory.totalMiB} MiB total, ${report.memory.freeMiB} MiB free, process RSS ${report.memory.rssMiB} MiB`);
  console.log(`backends in order of preference: ${BACKENDS.join(" > ")} (override with --backend or LORALAB_BACKEND)`);
  return 0;
}
