/**
 * A real Redis for the queue tests: Debian's redis-server on a free loopback port, no persistence, in a temp
 * folder, stopped when the test ends. Optionally with a password and TLS (a CA and a server certificate made
 * with openssl for the test).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { TestContext } from "node:test";
import { tempDir } from "./paths.js";

export const REDIS_SERVER = "/usr/bin/redis-server";
export const hasRedis = fs.existsSync(REDIS_SERVER);

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface RunningRedis {
  url: string;
  port: number;
  /** With TLS: the CA file clients must trust (NODE_EXTRA_CA_CERTS). */
  caFile?: string;
  process: ChildProcess;
}

/** A CA and a certificate for localhost/127.0.0.1 signed by it. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const file = (name: string) => path.join(dir, name);
  const run = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=loralab test CA",
  ]);
  run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
  fs.writeFileSync(file("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  run([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "1",
    "-extfile",
    "san.ext",
  ]);
  return { ca: file("ca.pem"), cert: file("server.pem"), key: file("server.key") };
}

export async function startRedis(t: TestContext, options: { password?: string; tls?: boolean } = {}): Promise<RunningRedis> {
  const dir = tempDir("redis");
  const port = await freePort();
  const args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
  let caFile: string | undefined;
  if (options.tls) {
    const certs = makeCertificates(dir);
    caFile = certs.ca;
    args.push("--port", "0", "--tls-port", String(port), "--tls-cert-file", certs.cert, "--tls-key-file", certs.key);
    args.push("--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "no");
  } else args.push("--port", String(port));
  if (options.password) args.push("--requirepass", options.password);
  const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => {
    child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  });
  let log = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${log}`)), 15_000);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (/Ready to accept connections/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => reject(new Error(`redis-server exited (${code}):\n${log}`)));
  });
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : "";
  const host = options.tls ? "localhost" : "127.0.0.1";
  return { url: `${options.tls ? "rediss" : "redis"}://${auth}${host}:${port}/0`, port, caFile, process: child };
}
