/**
 * `loralab kernel start -f CONNECTION_FILE`: the protocol process. The zeromq transport carries messages; the
 * request handler answers them and drives the executor process that runs cells. Runs until shutdown.
 */
import { KernelHandler } from "./handler.js";
import { portsOf, readConnectionFile } from "./protocol/connection.js";
import type { OutChannel, Transport } from "./protocol/transport.js";
import type { Message } from "./protocol/wire.js";

/** Keeps what is sent until the real transport is connected: the executor starts before zeromq is loaded. */
class LateTransport implements Transport {
  private target: Transport | undefined;
  private readonly waiting: [OutChannel, Message][] = [];

  connect(target: Transport): void {
    this.target = target;
    for (const [channel, message] of this.waiting.splice(0)) target.send(channel, message);
  }

  send(channel: OutChannel, message: Message): void {
    if (this.target) this.target.send(channel, message);
    else this.waiting.push([channel, message]);
  }

  drain(): Promise<void> {
    return this.target?.drain() ?? Promise.resolve();
  }
}

export async function runKernel(connectionFile: string): Promise<number> {
  const log = (t: string) => process.stderr.write(`[loralab kernel] ${t}\n`);
  const connection = readConnectionFile(connectionFile);
  const late = new LateTransport();
  // First thing: the executor's start (the type checker's first program) is what the first cell waits for.
  const handler = new KernelHandler(late, { log, ports: portsOf(connection) });
  const { ZmqTransport } = await import("./protocol/zmq-transport.js");
  const transport = new ZmqTransport(connection, log);
  late.connect(transport);
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
