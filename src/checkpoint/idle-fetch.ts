/**
 * A fetch that gives up when the network goes quiet: every request made through it is aborted once nothing has
 * happened (no new request, no response headers, no body bytes) for `idleMs`. A slow but steady download never
 * times out; a dead connection, a server that accepts and never answers, or a body that stalls midway does.
 */

/** The error a quiet network ends with; its message is the caller's. */
export class IdleTimeoutError extends Error {
  override name = "IdleTimeoutError";
}

/**
 * Runs `work` with such a fetch. The returned promise settles by the deadline even if something inside ignores
 * the abort signal; when `work` ends, requests it left open (unconsumed bodies) are released.
 */
export async function withIdleTimeout<T>(idleMs: number, message: string, work: (fetchFn: typeof fetch) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let rejectTimeout: (e: Error) => void = () => {};
  const timedOut = new Promise<never>((_, reject) => {
    rejectTimeout = reject;
  });
  const poke = (): void => {
    if (controller.signal.aborted) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      const err = new IdleTimeoutError(message);
      controller.abort(err);
      rejectTimeout(err);
    }, idleMs);
  };

  const fetchFn: typeof fetch = async (input, init) => {
    poke();
    const signal = init?.signal ? eitherSignal(init.signal, controller.signal) : controller.signal;
    const res = await fetch(input, { ...init, signal });
    poke();
    return trackBody(res, poke);
  };

  poke();
  try {
    return await Promise.race([work(fetchFn), timedOut]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    controller.abort(new Error("finished"));
  }
}

/** The same response, with `onProgress` called for every body chunk. */
function trackBody(res: Response, onProgress: () => void): Response {
  if (res.body === null || res.status < 200 || [204, 205, 304].includes(res.status)) return res;
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        onProgress();
        ctl.enqueue(chunk);
      },
    }),
  );
  const tracked = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  Object.defineProperty(tracked, "url", { value: res.url });
  Object.defineProperty(tracked, "redirected", { value: res.redirected });
  return tracked;
}

/** Aborts when either signal does (AbortSignal.any, written out: not every @types/node in the tree declares it). */
function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  const both = new AbortController();
  for (const s of [a, b]) {
    if (s.aborted) both.abort(s.reason);
    else s.addEventListener("abort", () => both.abort(s.reason), { once: true });
  }
  return both.signal;
}
