/**
 * `loralab kernel start -f CONNECTION_FILE`: the protocol process. The zeromq transport carries messages; the
 * request handler answers them and drives the executor process that runs cells. Runs until shutdown.
 */
import { KernelHandler } from "./handler.js";
import { readConnectionFile } from "./protocol/connection.js";
import { ZmqTransport } from "./protocol/zmq-transport.js";

export async function runKernel(connectionFile: string): Promise<number> {
  const log = (t: string) => process.stderr.write(`[loralab kernel] ${t}\n`);
  const transport = new ZmqTransport(readConnectionFile(connectionFile), log);
  const handler = new KernelHandler(transport, { log, ports: transport.ports });
  // interrupt_mode "signal": Jupyter sends SIGINT to the kernel's process group, which holds this process only.
  process.on("SIGINT", () => handler.interrupt());
  process.on("SIGTERM", () => void handler.close());
  process.on("uncaughtException", (e) => log(`uncaught: ${e.stack ?? e}`));
  await transport.start((channel, message) => handler.receive(channel, message));
  handler.start();
  await handler.closed;
  await transport.close();
  // Sockets and the executor are closed; pending timers must not keep a shut-down kernel alive.
  setTimeout(() => process.exit(0), 200).unref();
  return 0;
}
