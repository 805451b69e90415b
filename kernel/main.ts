/** `loralab kernel start -f CONNECTION_FILE`: runs the protocol process until shutdown. */
import { readConnectionFile } from "./protocol/connection.js";
import { KernelServer } from "./server.js";

export async function runKernel(connectionFile: string): Promise<number> {
  const server = new KernelServer(readConnectionFile(connectionFile));
  // interrupt_mode "signal": Jupyter sends SIGINT to the kernel's process group, which holds this process only.
  process.on("SIGINT", () => server.interrupt());
  process.on("SIGTERM", () => void server.close());
  process.on("uncaughtException", (e) => process.stderr.write(`[loralab kernel] uncaught: ${e.stack ?? e}\n`));
  await server.start();
  await server.closedPromise;
  // Sockets and the executor are closed; pending timers must not keep a shut-down kernel alive.
  setTimeout(() => process.exit(0), 200).unref();
  return 0;
}
