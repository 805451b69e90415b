/** The connection file Jupyter writes for a kernel: ports, transport, key and signature scheme. */
import * as fs from "node:fs";
import { UserError } from "../../src/core/errors.js";

export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  key: string;
  signature_scheme: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  kernel_name?: string;
}

export const CHANNELS = ["shell", "iopub", "stdin", "control", "hb"] as const;
export type Channel = (typeof CHANNELS)[number];

export function readConnectionFile(file: string): ConnectionInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UserError(`${file}: cannot read the connection file: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object") throw new UserError(`${file}: the connection file is not a JSON object`);
  const o = raw as Record<string, unknown>;
  const transport = o.transport ?? "tcp";
  if (transport !== "tcp" && transport !== "ipc")
    throw new UserError(`${file}: transport must be "tcp" or "ipc", got ${JSON.stringify(transport)}`);
  for (const channel of CHANNELS) {
    const port = o[`${channel}_port`];
    if (typeof port !== "number" || !Number.isInteger(port) || port < 0)
      throw new UserError(`${file}: ${channel}_port must be a port number`);
  }
  return {
    transport,
    ip: typeof o.ip === "string" ? o.ip : "127.0.0.1",
    key: typeof o.key === "string" ? o.key : "",
    signature_scheme: typeof o.signature_scheme === "string" ? o.signature_scheme : "hmac-sha256",
    shell_port: o.shell_port as number,
    iopub_port: o.iopub_port as number,
    stdin_port: o.stdin_port as number,
    control_port: o.control_port as number,
    hb_port: o.hb_port as number,
    kernel_name: typeof o.kernel_name === "string" ? o.kernel_name : undefined,
  };
}

/** The zmq endpoint of a channel: tcp://IP:PORT, or ipc://IP-PORT as jupyter_client names ipc sockets. */
export function endpoint(info: ConnectionInfo, channel: Channel): string {
  const port = info[`${channel}_port`];
  return info.transport === "tcp" ? `tcp://${info.ip}:${port}` : `ipc://${info.ip}-${port}`;
}

/** The ports a connect_request reply names. */
export function portsOf(info: ConnectionInfo): Record<`${Channel}_port`, number> {
  return {
    shell_port: info.shell_port,
    iopub_port: info.iopub_port,
    stdin_port: info.stdin_port,
    hb_port: info.hb_port,
    control_port: info.control_port,
  };
}
