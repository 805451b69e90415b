import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { hubCachePath } from "../src/checkpoint/hub/environment.js";
import { resolveModel } from "../src/models/reference.js";
import { UserError } from "../src/core/errors.js";

// ---------------------------------------------------------------------------------------------
// Helpers. Every test points HF_ENDPOINT at a loopback address: nothing here can reach a real host.

const HUB_ENV = [
  "HF_HUB_CACHE",
  "HUGGINGFACE_HUB_CACHE",
  "HF_HOME",
  "XDG_CACHE_HOME",
  "HF_HUB_OFFLINE",
  "TRANSFORMERS_OFFLINE",
  "HF_ENDPOINT",
  "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN",
  "LORALAB_HUB_TIMEOUT_MS",
];

/** Run fn with the hub variables cleared, then `vars` applied; restore everything afterwards. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map<string, string | undefined>();
  for (const k of new Set([...HUB_ENV, ...Object.keys(vars)])) {
    saved.set(k, process.env[k]);
    delete process.env[k];
  }
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) process.env[k] = v;
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "loralab-hub-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const SHA_A = "a".repeat(40);
const SHA_B = "0123456789abcdef0123456789abcdef01234567";

/** Lay out a snapshot like huggingface_hub does: blobs/<hash>, snapshots/<sha>/<file> → ../../blobs/<hash>. */
async function cacheModel(
  cacheDir: string,
  id: string,
  sha: string,
  files: Record<string, string>,
  refs: string[] = ["main"],
): Promise<string> {
  const storage = join(cacheDir, `models--${id.replace("/", "--")}`);
  const snapshot = join(storage, "snapshots", sha);
  for (const [name, content] of Object.entries(files)) {
    const blob = join(storage, "blobs", createHash("sha256").update(content).digest("hex"));
    await mkdir(dirname(blob), { recursive: true });
    await writeFile(blob, content);
    const link = join(snapshot, name);
    await mkdir(dirname(link), { recursive: true });
    await symlink(relative(dirname(link), blob), link);
  }
  await mkdir(snapshot, { recursive: true });
  for (const ref of refs) {
    await mkdir(join(storage, "refs", dirname(ref)), { recursive: true });
    await writeFile(join(storage, "refs", ref), sha);
  }
  return snapshot;
}

const CONFIG = JSON.stringify({ model_type: "llama", hidden_size: 8 });
const COMPLETE = { "config.json": CONFIG, "model.safetensors": "weights" };

interface Loopback {
  url: string;
  requests: string[];
  close: () => Promise<void>;
}

/** An HTTP server on 127.0.0.1 that records request lines; closed (connections too) by the test. */
async function loopback(
  t: { after: (fn: () => Promise<void>) => void },
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<Loopback> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => handler(req, res, body));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  };
  t.after(close);
  return { url: `http://127.0.0.1:${port}`, requests, close };
}

/** A loopback port with nothing listening. */
async function closedPort(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const s = await loopback(t, () => {});
  await s.close();
  return s.url;
}

/**
 * A minimal Hub speaking the endpoints @huggingface/hub uses: model info, paths-info, resolve.
 * `stall` names a file whose download sends headers and a few bytes, then goes silent.
 */
function fakeHub(repo: { id: string; sha: string; files: Record<string, string>; stall?: string }) {
  const gitOid = (c: string) =>
    createHash("sha1")
      .update(`blob ${Buffer.byteLength(c)}\0${c}`)
      .digest("hex");
  const isLfs = (name: string) => name.endsWith(".safetensors");
  return (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? "/", "http://x");
    const json = (status: number, data: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(data));
    };
    if (req.method === "GET" && url.pathname.startsWith(`/api/models/${repo.id}/revision/`)) {
      return json(200, {
        _id: "1",
        id: repo.id,
        sha: repo.sha,
        private: false,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: "2024-01-01T00:00:00.000Z",
        siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
      });
    }
    if (req.method === "POST" && url.pathname === `/api/models/${repo.id}/paths-info/${repo.sha}`) {
      const { paths } = JSON.parse(body) as { paths: string[] };
      return json(
        200,
        paths
          .filter((p) => p in repo.files)
          .map((p) => {
            const c = repo.files[p]!;
            const size = Buffer.byteLength(c);
            return {
              type: "file",
              path: p,
              oid: gitOid(c),
              size,
              ...(isLfs(p) && { lfs: { oid: createHash("sha256").update(c).digest("hex"), size, pointerSize: 130 } }),
              lastCommit: { id: repo.sha, title: "init", date: "2024-01-01T00:00:00.000Z" },
            };
          }),
      );
    }
    const prefix = `/${repo.id}/resolve/${repo.sha}/`;
    if (req.method === "GET" && url.pathname.startsWith(prefix)) {
      const name = decodeURIComponent(url.pathname.slice(prefix.length));
      const c = repo.files[name];
      if (c === undefined) {
        res.writeHead(404, { "X-Error-Code": "EntryNotFound" });
        return res.end("not found");
      }
      const buf = Buffer.from(c);
      const etag = `"${isLfs(name) ? createHash("sha256").update(c).digest("hex") : gitOid(c)}"`;
      if (req.headers.range === "bytes=0-0") {
        res.writeHead(206, { ETag: etag, "Content-Range": `bytes 0-0/${buf.length}`, "Content-Length": "1" });
        return res.end(buf.subarray(0, 1));
      }
      if (name === repo.stall) {
        res.writeHead(200, { ETag: etag, "Content-Length": String(buf.length + 1000) });
        res.write(buf.subarray(0, 1)); // …and nothing more, ever
        return;
      }
      res.writeHead(200, { ETag: etag, "Content-Length": String(buf.length) });
      return res.end(buf);
    }
    json(404, { error: "Repository not found" });
  };
}

async function rejectsUserError(p: Promise<unknown>, pattern: RegExp): Promise<UserError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), `error should be one line: ${e.message}`);
    return e;
  }
  assert.fail("expected a rejection");
}

// ---------------------------------------------------------------------------------------------
// Cache location

const CACHE_PATHS: [vars: Record<string, string>, expected: string][] = [
  [{}, join(homedir(), ".cache", "huggingface", "hub")],
  [{ XDG_CACHE_HOME: "/x" }, "/x/huggingface/hub"],
  [{ XDG_CACHE_HOME: "/x", HF_HOME: "/h" }, "/h/hub"],
  [{ HF_HOME: "/h", HUGGINGFACE_HUB_CACHE: "/legacy" }, "/legacy"],
  [{ HF_HOME: "/h", HUGGINGFACE_HUB_CACHE: "/legacy", HF_HUB_CACHE: "/c" }, "/c"],
  [{ HF_HOME: "~/hf" }, join(homedir(), "hf", "hub")],
  [{ HF_HUB_CACHE: "", HF_HOME: "/h" }, "/h/hub"],
];

for (const [vars, expected] of CACHE_PATHS) {
  test(`hubCachePath follows huggingface_hub precedence: ${JSON.stringify(vars)} → ${expected}`, async () => {
    await withEnv(vars, async () => assert.equal(hubCachePath(), expected));
  });
}

// ---------------------------------------------------------------------------------------------
// Local directories

test("an existing directory resolves to its absolute path, relative or not", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "org", "name"), { recursive: true });
  await withEnv({}, async () => {
    assert.equal(await resolveModel(dir), dir);
    assert.equal(await resolveModel(relative(process.cwd(), dir)), dir);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      // A directory wins over a hub id of the same shape, as in transformers.
      assert.equal(await resolveModel("org/name"), join(dir, "org", "name"));
      assert.equal(await resolveModel("./org"), join(dir, "org"));
    } finally {
      process.chdir(cwd);
    }
  });
});

/** References that cannot resolve, and the start of their message; `{dir}` is a temp dir holding file.txt. */
const BAD_REFS: [ref: string, message: RegExp][] = [
  ["{dir}/missing", /^model directory not found: .*missing$/],
  ["./no-such-model-dir", /^model directory not found: /],
  ["../no/such/dir", /^model directory not found: /],
  ["a/b/c", /^model directory not found: /],
  ["~/no-such-loralab-dir", /^model directory not found: /],
  ["{dir}/file.txt", /^model path is not a directory: /],
  ["bad id!", /neither an existing directory nor a valid Hugging Face model id/],
  ["org--x/name", /neither an existing directory nor a valid/],
  ["", /model reference is empty/],
];

for (const [ref, message] of BAD_REFS) {
  test(`a reference that cannot resolve is a clear error: ${JSON.stringify(ref)}`, async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, "file.txt"), "x");
    await withEnv({}, async () => {
      await rejectsUserError(resolveModel(ref.replace("{dir}", dir)), message);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Cache hits: no network at all (the endpoint is a loopback server that records requests)

test("a cached hub id resolves to its snapshot via refs/main without network", async (t) => {
  const cache = await tempDir(t);
  const hub = await loopback(t, (_req, res) => res.end());
  const snapshot = await cacheModel(cache, "org/tiny", SHA_A, COMPLETE);
  await cacheModel(cache, "solo", SHA_B, COMPLETE);
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url }, async () => {
    assert.equal(await resolveModel("org/tiny"), snapshot);
    assert.equal(await resolveModel("solo"), join(cache, "models--solo", "snapshots", SHA_B));
  });
  assert.deepEqual(hub.requests, []);
});

test("HF_HOME/hub is used when HF_HUB_CACHE is unset", async (t) => {
  const home = await tempDir(t);
  const snapshot = await cacheModel(join(home, "hub"), "org/tiny", SHA_A, COMPLETE);
  await withEnv({ HF_HOME: home, HF_ENDPOINT: await closedPort(t) }, async () => {
    assert.equal(await resolveModel("org/tiny"), snapshot);
  });
});

test("revision: a commit sha selects snapshots/<sha>, a branch or tag goes through refs/", async (t) => {
  const cache = await tempDir(t);
  const hub = await loopback(t, (_req, res) => res.end());
  const onMain = await cacheModel(cache, "org/tiny", SHA_A, COMPLETE, ["main"]);
  const older = await cacheModel(cache, "org/tiny", SHA_B, COMPLETE, ["v1", "refs/pr/1"]);
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url }, async () => {
    assert.equal(await resolveModel("org/tiny"), onMain);
    assert.equal(await resolveModel("org/tiny", { revision: SHA_B }), older);
    assert.equal(await resolveModel("org/tiny", { revision: SHA_A }), onMain);
    assert.equal(await resolveModel("org/tiny", { revision: "v1" }), older);
    assert.equal(await resolveModel("org/tiny", { revision: "refs/pr/1" }), older);
  });
  assert.deepEqual(hub.requests, []);
});

test("sharded safetensors count as complete only when every shard is there", async (t) => {
  const cache = await tempDir(t);
  const index = JSON.stringify({ weight_map: { a: "model-1.safetensors", b: "model-2.safetensors" } });
  const full = await cacheModel(cache, "org/sharded", SHA_A, {
    "config.json": CONFIG,
    "model.safetensors.index.json": index,
    "model-1.safetensors": "1",
    "model-2.safetensors": "2",
  });
  await cacheModel(cache, "org/partial", SHA_A, {
    "config.json": CONFIG,
    "model.safetensors.index.json": index,
    "model-1.safetensors": "1",
  });
  await withEnv({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: "1" }, async () => {
    assert.equal(await resolveModel("org/sharded"), full);
    await rejectsUserError(resolveModel("org/partial"), /only partly in the Hugging Face cache .*model-2\.safetensors/);
  });
});

test("a cached index naming a shard outside its snapshot is not a usable snapshot (the same index reader as loading)", async (t) => {
  const cache = await tempDir(t);
  const index = JSON.stringify({ weight_map: { a: "../escape.safetensors" } });
  await cacheModel(cache, "org/escape", SHA_A, { "config.json": CONFIG, "model.safetensors.index.json": index });
  await withEnv({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: "1" }, async () => {
    await rejectsUserError(
      resolveModel("org/escape"),
      /only partly in the Hugging Face cache .*lacks a valid model\.safetensors\.index\.json/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Offline

const OFFLINE_SWITCHES: [name: string, vars: Record<string, string>, options: { offline?: boolean }][] = [
  ["the offline option", {}, { offline: true }],
  ["HF_HUB_OFFLINE=1", { HF_HUB_OFFLINE: "1" }, {}],
  ["TRANSFORMERS_OFFLINE=1", { TRANSFORMERS_OFFLINE: "1" }, {}],
];

for (const [name, vars, options] of OFFLINE_SWITCHES) {
  test(`offline (${name}) and not cached: the documented error, without network`, async (t) => {
    const cache = await tempDir(t);
    const hub = await loopback(t, (_req, res) => res.end());
    await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, ...vars }, async () => {
      const e = await rejectsUserError(resolveModel("org/absent", options), /offline mode is on/);
      assert.equal(
        e.message,
        `model "org/absent" is not in the Hugging Face cache (${cache}) and offline mode is on; ` +
          `download it on a connected machine (e.g. huggingface-cli download org/absent) or pass a local directory`,
      );
    });
    assert.deepEqual(hub.requests, []);
  });
}

test("offline and not cached at a revision: the command to download names the revision", async (t) => {
  const cache = await tempDir(t);
  const hub = await loopback(t, (_req, res) => res.end());
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: "1" }, async () => {
    await rejectsUserError(
      resolveModel("org/absent", { revision: "v2" }),
      /^model "org\/absent" at revision "v2" is not in .*huggingface-cli download org\/absent --revision v2\)/,
    );
  });
  assert.deepEqual(hub.requests, []);
});

test("offline: a cached model still resolves; a snapshot without weights says what is missing", async (t) => {
  const cache = await tempDir(t);
  const snapshot = await cacheModel(cache, "org/tiny", SHA_A, COMPLETE);
  await cacheModel(cache, "org/noweights", SHA_A, { "config.json": CONFIG });
  await withEnv({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: "1" }, async () => {
    assert.equal(await resolveModel("org/tiny", { files: ["chat_template.jinja"] }), snapshot);
    await rejectsUserError(
      resolveModel("org/noweights"),
      /^model "org\/noweights" is only partly in the Hugging Face cache \(.*lacks model\.safetensors .*offline mode is on/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Not cached, online: the hub is a loopback server; every failure must arrive quickly as a UserError

async function timed<T>(p: Promise<T>): Promise<number> {
  const start = Date.now();
  await p.catch(() => {});
  return Date.now() - start;
}

test("connection refused → UserError naming id, cache and reason", async (t) => {
  const cache = await tempDir(t);
  const endpoint = await closedPort(t);
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: endpoint }, async () => {
    const p = resolveModel("org/absent", { timeoutMs: 5000 });
    const e = await rejectsUserError(p, /^could not download model "org\/absent" from http:\/\/127\.0\.0\.1:\d+ /);
    assert.ok(e.message.includes(`into the Hugging Face cache (${cache})`), e.message);
    assert.match(e.message, /ECONNREFUSED/);
    assert.ok((await timed(p)) < 5000);
  });
});

test("a hub that accepts connections but never answers → timeout error, no hang", async (t) => {
  const cache = await tempDir(t);
  const hub = await loopback(t, () => {}); // never responds
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url }, async () => {
    const start = Date.now();
    const e = await rejectsUserError(resolveModel("org/absent", { timeoutMs: 200 }), /timed out/);
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 150 && elapsed < 3000, `took ${elapsed} ms`);
    assert.match(e.message, /^could not download model "org\/absent" .*\(.*\): no response from http:\/\/127\.0\.0\.1:\d+ for 200 ms/);
    assert.ok(e.message.includes(cache));
  });
  assert.equal(hub.requests.length, 1);
});

test("LORALAB_HUB_TIMEOUT_MS sets the timeout; a bad value is a UserError", async (t) => {
  const cache = await tempDir(t);
  const hub = await loopback(t, () => {});
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, LORALAB_HUB_TIMEOUT_MS: "150" }, async () => {
    const start = Date.now();
    await rejectsUserError(resolveModel("org/absent"), /for 150 ms/);
    assert.ok(Date.now() - start < 3000);
  });
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, LORALAB_HUB_TIMEOUT_MS: "soon" }, async () => {
    await rejectsUserError(resolveModel("org/absent"), /^LORALAB_HUB_TIMEOUT_MS: expected a positive number of milliseconds, got "soon"$/);
  });
});

test("a download whose body stalls midway times out too", async (t) => {
  const cache = await tempDir(t);
  const files = { "config.json": CONFIG, "model.safetensors": "w".repeat(100) };
  const hub = await loopback(t, fakeHub({ id: "org/stall", sha: SHA_A, files, stall: "model.safetensors" }));
  t.mock.method(console, "debug", () => {}); // the library logs "Downloading …" per file
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url }, async () => {
    const start = Date.now();
    await rejectsUserError(resolveModel("org/stall", { timeoutMs: 300 }), /^could not download model "org\/stall" .*timed out/);
    assert.ok(Date.now() - start < 5000);
  });
  // config.json made it, the weights did not: no ref is written for an incomplete snapshot.
  await assert.rejects(readFile(join(cache, "models--org--stall", "refs", "main"), "utf8"));
});

test("404 from the hub → UserError with the status", async (t) => {
  const cache = await tempDir(t);
  const hub = await loopback(t, (_req, res) => {
    res.writeHead(404, { "Content-Type": "application/json", "X-Error-Code": "RepoNotFound" });
    res.end(JSON.stringify({ error: "Repository not found" }));
  });
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url }, async () => {
    const p = resolveModel("org/absent", { timeoutMs: 5000 });
    const e = await rejectsUserError(p, /^could not download model "org\/absent" from http:\/\/127\.0\.0\.1:\d+ into/);
    assert.match(e.message, /HTTP 404: Repository not found.*check the model id and revision/);
    assert.ok(e.message.includes(cache));
    assert.ok((await timed(p)) < 5000);
  });
});

// ---------------------------------------------------------------------------------------------
// Not cached, online: a real download through @huggingface/hub into the standard layout

test("download: sharded weights into blobs/ + snapshots/ + refs/, absent files skipped, then cached", async (t) => {
  const cache = await tempDir(t);
  const index = JSON.stringify({ weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } });
  const files = {
    "config.json": CONFIG,
    "tokenizer.json": JSON.stringify({ model: { type: "BPE" } }),
    "model.safetensors.index.json": index,
    "model-00001-of-00002.safetensors": "shard one",
    "model-00002-of-00002.safetensors": "shard two",
    "README.md": "not wanted",
  };
  const hub = await loopback(t, fakeHub({ id: "org/tiny", sha: SHA_B, files }));
  t.mock.method(console, "debug", () => {}); // the library logs "Downloading …" per file
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url }, async () => {
    const storage = join(cache, "models--org--tiny");
    const snapshot = await resolveModel("org/tiny", { timeoutMs: 5000 });
    assert.equal(snapshot, join(storage, "snapshots", SHA_B));
    assert.equal(await readFile(join(storage, "refs", "main"), "utf8"), SHA_B);
    for (const [name, content] of Object.entries(files)) {
      if (name === "README.md") {
        await assert.rejects(lstat(join(snapshot, name)));
        continue;
      }
      assert.ok((await lstat(join(snapshot, name))).isSymbolicLink(), name);
      assert.match(await readlink(join(snapshot, name)), /^\.\.\/\.\.\/blobs\/[0-9a-f]+$/);
      assert.equal(await readFile(join(snapshot, name), "utf8"), content);
    }
    // Files the repo lacks get huggingface_hub's .no_exist markers.
    await lstat(join(storage, ".no_exist", SHA_B, "generation_config.json"));
    await lstat(join(storage, ".no_exist", SHA_B, "special_tokens_map.json"));
    assert.ok(!hub.requests.some((r) => r.includes("README.md")));

    const before = hub.requests.length;
    assert.equal(await resolveModel("org/tiny"), snapshot);
    assert.equal(await resolveModel("org/tiny", { files: ["tokenizer_config.json"] }), snapshot); // known absent
    assert.equal(hub.requests.length, before, "second resolve must not touch the network");
  });
  await withEnv({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: "1" }, async () => {
    assert.equal(await resolveModel("org/tiny"), join(cache, "models--org--tiny", "snapshots", SHA_B));
  });
});

test("download: a repo without safetensors weights is a UserError", async (t) => {
  const cache = await tempDir(t);
  const files = { "config.json": CONFIG, "pytorch_model.bin": "pickle" };
  const hub = await loopback(t, fakeHub({ id: "org/bin", sha: SHA_A, files }));
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url }, async () => {
    await rejectsUserError(
      resolveModel("org/bin", { timeoutMs: 5000 }),
      /^model "org\/bin" .* has no safetensors weights .*only pytorch_model\.bin; loralab reads safetensors only$/,
    );
  });
});

test("online with the essentials cached but an extra file missing: network failure falls back to the cache", async (t) => {
  const cache = await tempDir(t);
  const snapshot = await cacheModel(cache, "org/tiny", SHA_A, COMPLETE);
  await withEnv({ HF_HUB_CACHE: cache, HF_ENDPOINT: await closedPort(t) }, async () => {
    assert.equal(await resolveModel("org/tiny", { files: ["chat_template.jinja"], timeoutMs: 2000 }), snapshot);
  });
});
