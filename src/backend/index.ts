/**
 * The tensor backend: which tfjs implementation runs the math.
 *
 * Preference order: tfjs-node-gpu (CUDA) > tfjs-node (native TensorFlow) > wasm > cpu (pure JS).
 * The native packages are optional: they are detected at run time and never a dependency,
 * because their install step downloads libtensorflow.
 */
import * as os from "node:os";
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../core/errors.js";
import { registerMissingWasmKernels } from "./wasm-kernels.js";
import { registerFusedKernels } from "./fused-kernels.js";
import { installLeanBackprop } from "./backprop.js";
import { selectBlas } from "./blas.js";

export { tf };
export { activeBlas, blasSetting, selectBlas } from "./blas.js";
export { simdActive } from "./simd-kernels.js";
export { keepTransposed } from "./wasm-matmul.js";
export { copyFloats, tensorOfFloats } from "./tensor-floats.js";
export { IGNORE_TARGET, KERNELS } from "./fused-kernels.js";
export {
  addSameShape,
  attention,
  matMulFrozenTransposed,
  mulByConstant,
  rmsNorm,
  rotary,
  sparseCrossEntropy,
  swiGlu,
  viewAs,
} from "./fused-ops.js";

export type BackendName = "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
export const BACKENDS: readonly BackendName[] = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"];

interface BackendSpec {
  /** The npm package that provides it. */
  pkg: string;
  /** The name tfjs registers it under. */
  tfName: string;
  install: string;
}

const SPECS: Record<BackendName, BackendSpec> = {
  "tensorflow-gpu": {
    pkg: "@tensorflow/tfjs-node-gpu",
    tfName: "tensorflow",
    install:
      "npm install @tensorflow/tfjs-node-gpu (Linux x86_64 with an NVIDIA GPU, CUDA 11.2 and cuDNN 8.1; " +
      "its install step downloads libtensorflow, so it needs internet access)",
  },
  tensorflow: {
    pkg: "@tensorflow/tfjs-node",
    tfName: "tensorflow",
    install: "npm install @tensorflow/tfjs-node (its install step downloads libtensorflow, so it needs internet access)",
  },
  wasm: { pkg: "@tensorflow/tfjs-backend-wasm", tfName: "wasm", install: "npm install @tensorflow/tfjs-backend-wasm" },
  cpu: { pkg: "@tensorflow/tfjs-backend-cpu", tfName: "cpu", install: "npm install @tensorflow/tfjs-backend-cpu" },
};

export interface BackendInfo {
  name: BackendName;
  /** Why this backend: "requested via --backend", "LORALAB_BACKEND", or "auto". */
  reason: string;
  /** Backends tried before this one and why they were skipped (auto mode only). */
  skipped: { name: BackendName; why: string }[];
  tfjsVersion: string;
  packageVersion: string | undefined;
  threads: number;
  /** wasm: the native BLAS its matrix products run on (OpenBLAS through koffi), or why none. */
  blas?: { library: string; config: string; threads: number | undefined } | { why: string };
}

const require = createRequire(import.meta.url);
let current: BackendInfo | undefined;

function isBackendName(s: string): s is BackendName {
  return (BACKENDS as readonly string[]).includes(s);
}

function installedVersion(pkg: string): string | undefined {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
  }
}

function isInstalled(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

async function startBackend(name: BackendName): Promise<void> {
  const spec = SPECS[name];
  // PROD silences tfjs's console advice (e.g. the cpu backend's "install tfjs-node" banner); we report the backend ourselves.
  tf.env().set("PROD", true);
  const before = { uncaughtException: process.listeners("uncaughtException"), unhandledRejection: process.listeners("unhandledRejection") };
  // Importing the package registers the backend with tfjs as a side effect.
  await import(spec.pkg);
  if (!(await tf.setBackend(spec.tfName))) throw new Error(`tfjs could not initialise the ${name} backend`);
  await tf.ready();
  // wasm's Emscripten glue rethrows every uncaught error from inside itself, so Node would print a line of minified
  // glue instead of where the error came from; its listeners go (Node's own handling is the same, minus that line).
  for (const l of process.listeners("uncaughtException")) if (!before.uncaughtException.includes(l)) process.off("uncaughtException", l);
  for (const l of process.listeners("unhandledRejection")) if (!before.unhandledRejection.includes(l)) process.off("unhandledRejection", l);
  installLeanBackprop();
  if (name === "wasm") registerMissingWasmKernels();
  if (name === "wasm" || name === "cpu") registerFusedKernels(name);
}

function threadCount(name: BackendName): number {
  if (name === "wasm") {
    const wasm = tf.backend() as unknown as { getThreadsCount?: () => number };
    return typeof wasm.getThreadsCount === "function" ? wasm.getThreadsCount() : 1;
  }
  return name === "cpu" ? 1 : os.availableParallelism();
}

/** The wasm backend's choice of native BLAS (LORALAB_BLAS; a bad setting is the user's error). */
function blasOf(name: BackendName): BackendInfo["blas"] {
  if (name !== "wasm") return undefined;
  const chosen = selectBlas();
  return chosen.blas ? { library: chosen.blas.library, config: chosen.blas.config, threads: chosen.blas.threads() } : { why: chosen.why };
}

/**
 * Chooses and initialises the backend once per process: `requested` (e.g. from `--backend`),
 * else LORALAB_BACKEND, else the first of BACKENDS that is installed and initialises.
 */
export async function initBackend(requested?: string): Promise<BackendInfo> {
  const envChoice = process.env.LORALAB_BACKEND || undefined;
  const choice = requested ?? envChoice;
  if (current && (choice === undefined || choice === current.name)) return current;

  const tfjsVersion = tf.version.tfjs ?? installedVersion("@tensorflow/tfjs") ?? "unknown";
  if (choice !== undefined) {
    const source = requested !== undefined ? "--backend" : "LORALAB_BACKEND";
    if (!isBackendName(choice)) {
      throw new UserError(`${source}: unknown backend "${choice}"; expected one of ${BACKENDS.join(", ")}`);
    }
    const spec = SPECS[choice];
    if (!isInstalled(spec.pkg)) {
      throw new UserError(`${source}: backend "${choice}" needs ${spec.pkg}, which is not installed; install it with: ${spec.install}`);
    }
    try {
      await startBackend(choice);
    } catch (e) {
      throw new UserError(`${source}: backend "${choice}" (${spec.pkg}) failed to initialise: ${(e as Error).message}`);
    }
    current = {
      name: choice,
      reason: source,
      skipped: [],
      tfjsVersion,
      packageVersion: installedVersion(spec.pkg),
      threads: threadCount(choice),
      blas: blasOf(choice),
    };
    return current;
  }

  const skipped: BackendInfo["skipped"] = [];
  for (const name of BACKENDS) {
    const spec = SPECS[name];
    if (!isInstalled(spec.pkg)) {
      skipped.push({ name, why: `${spec.pkg} not installed` });
      continue;
    }
    try {
      await startBackend(name);
    } catch (e) {
      skipped.push({ name, why: `failed to initialise: ${(e as Error).message}` });
      continue;
    }
    current = {
      name,
      reason: "auto",
      skipped,
      tfjsVersion,
      packageVersion: installedVersion(spec.pkg),
      threads: threadCount(name),
      blas: blasOf(name),
    };
    return current;
  }
  throw new UserError(`no tfjs backend could be initialised: ${skipped.map((s) => `${s.name}: ${s.why}`).join("; ")}`);
}

export function backendInfo(): BackendInfo | undefined {
  return current;
}

/**
 * One line for logs and notebook headers, e.g. "backend: wasm (auto; skipped tensorflow-gpu: not installed), matmul
 * on XNNPACK (LORALAB_BLAS=off)".
 */
export function describeBackend(info: BackendInfo): string {
  const skipped = info.skipped.length ? `; skipped ${info.skipped.map((s) => `${s.name}: ${s.why}`).join(", ")}` : "";
  return `backend: ${info.name} (${info.reason}${skipped})${info.blas ? `, ${matmulEngine(info)}` : ""}`;
}

/** What a backend's matrix products run on, e.g. "matmul on XNNPACK (LORALAB_BLAS=off)", or the backend's name. */
export function matmulEngine(info: BackendInfo): string {
  return info.blas ? describeBlas(info.blas) : `matmul on ${info.name}`;
}

/** e.g. "matmul on OpenBLAS 0.3.21 … (libopenblas.so.0, 1 thread)" or "matmul on XNNPACK (LORALAB_BLAS=off)". */
function describeBlas(blas: NonNullable<BackendInfo["blas"]>): string {
  if ("why" in blas) return `matmul on XNNPACK (${blas.why})`;
  const threads = blas.threads === undefined ? "" : `, ${blas.threads} thread${blas.threads === 1 ? "" : "s"}`;
  return `matmul on ${blas.config} (${blas.library}${threads})`;
}
