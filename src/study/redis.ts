/**
 * Where the trial queue lives: a Redis URL (`redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS)
 * turned into ioredis options. The password goes to Redis and nowhere else: every message shows the URL with it
 * masked. An unreachable server is an error within a few seconds, not a hang (ioredis would retry forever).
 */
import { Redis, type RedisOptions } from "ioredis";
import { UserError } from "../core/errors.js";

/** The BullMQ queue every submitter and worker of a Redis instance shares. */
export const QUEUE_NAME = "loralab-trials";

export interface RedisTarget {
  /** The URL with its password masked: what logs and errors show. */
  shown: string;
  options: RedisOptions;
}

/** `url` with the password (and anything that looks like one in a malformed URL) replaced by ***. */
export function maskPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, "$1***@");
}

export function parseRedisUrl(url: string, where = "queue"): RedisTarget {
  const shown = maskPassword(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UserError(`${where}: expected a URL like redis://host:6379/0 or rediss://user:password@host:6380/0, got "${shown}"`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:")
    throw new UserError(`${where}: expected a redis:// or rediss:// URL, got "${shown}"`);
  const db = parsed.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db)) throw new UserError(`${where}: the path of "${shown}" must be a database number (/0), got "/${db}"`);
  const options: RedisOptions = {
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port: parsed.port ? Number(parsed.port) : 6379,
    db: db === "" ? 0 : Number(db),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    // rediss:// is Redis over TLS; the certificate is checked against Node's CAs (add a private CA with NODE_EXTRA_CA_CERTS).
    ...(parsed.protocol === "rediss:" ? { tls: { servername: parsed.hostname } } : {}),
  };
  return { shown, options };
}

/** Connects once and pings, failing within `timeoutMs` with a message naming the (masked) URL and the cause. */
export async function checkReachable(target: RedisTarget, timeoutMs = 5000): Promise<void> {
  const client = new Redis({
    ...target.options,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let cause: Error | undefined; // what the socket said (connect() itself only says "Connection is closed")
  client.on("error", (e: Error) => {
    cause ??= e;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    throw new UserError(`cannot reach Redis at ${target.shown}: ${(cause ?? (e as Error)).message || String(e)}`);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
