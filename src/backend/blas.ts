/**
 * A native BLAS for the wasm backend's matrix products: OpenBLAS's sgemm (or another CBLAS library's), called
 * through koffi (an FFI whose binaries ship in npm) on views of the wasm heap, so nothing is copied. Where the
 * library is present, a product runs at the CPU's native SIMD width (AVX2 here) instead of wasm's 128-bit SIMD:
 * ≈ 3.5× the GFLOP/s of XNNPACK-in-wasm per core here. The rest of the backend stays wasm.
 *
 * Optional and found at run time, like tfjs-node: LORALAB_BLAS unset (or "auto") loads OpenBLAS when the system
 * has it (Debian: libopenblas0) and otherwise stays on XNNPACK; "off" stays on XNNPACK; a path or library name
 * loads that CBLAS library or fails saying why.
 *
 * One BLAS thread, always (set for OpenBLAS; another library's own setting applies): OpenBLAS's threaded products differ from its single-threaded ones in the last bits
 * (measured: 3 % of the elements of a [1024, 512]·[512, 512] product), so a thread count that followed the cores
 * a process gets (a sweep's worker processes get fewer) would make the same run give other numbers elsewhere. The
 * cores are used by data-parallel workers instead (src/train/replicas.ts), each calling sgemm from its own thread.
 */
import { createRequire } from "node:module";
import type * as Koffi from "koffi";
import { UserError } from "../core/errors.js";

export interface Blas {
  /** The library file as loaded, e.g. "libopenblas.so.0". */
  library: string;
  /** The library's own description (OpenBLAS: version, kernel, build options), else its file. */
  config: string;
  /** C[m×n] = op(A)·op(B), row-major, op transposing when asked; leading dimensions as stored. */
  sgemm(
    transposeA: boolean,
    transposeB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    c: Float32Array,
    ldc: number,
  ): void;
  /** The library's thread count (undefined when it has no such setting). */
  threads(): number | undefined;
}

export type BlasStatus = { blas: Blas } | { blas: undefined; why: string };

/** OpenBLAS where Linux distributions put it, and Homebrew's (keg-only, so by path) on macOS. */
const OPENBLAS = [
  "libopenblas.so.0",
  "libopenblas.so",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
];
const ROW_MAJOR = 101;
const [NO_TRANS, TRANS] = [111, 112];

const require = createRequire(import.meta.url);
const loaded = new Map<string, Blas>();
let status: BlasStatus = { blas: undefined, why: "not selected" };

/** An error's first line (a dynamic loader's message can go on with details). */
const firstLine = (e: unknown) => (e as Error).message.split("\n")[0];

/** The FFI, or why it cannot load (e.g. no prebuilt binary for this platform). */
function koffi(): typeof Koffi | string {
  try {
    return require("koffi") as typeof Koffi;
  } catch (e) {
    return `koffi (the FFI) did not load: ${firstLine(e)}`;
  }
}

/** Loads `library` as a CBLAS; throws when it cannot be loaded or lacks cblas_sgemm. */
function load(ffi: typeof Koffi, library: string): Blas {
  const known = loaded.get(library);
  if (known) return known;
  const lib = ffi.load(library);
  const sgemm = lib.func(
    "void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, " +
      "const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)",
  );
  const optional = (declaration: string) => {
    try {
      return lib.func(declaration);
    } catch {
      return undefined; // not OpenBLAS: no thread or config functions
    }
  };
  const getConfig = optional("const char *openblas_get_config()");
  const getThreads = optional("int openblas_get_num_threads()");
  const setThreads = optional("void openblas_set_num_threads(int n)");
  const blas: Blas = {
    library,
    config: getConfig ? String(getConfig()).trim() : library,
    sgemm: (ta, tb, m, n, k, a, lda, b, ldb, c, ldc) =>
      sgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, m, n, k, 1, a, lda, b, ldb, 0, c, ldc),
    threads: () => (getThreads ? (getThreads() as number) : undefined),
  };
  setThreads?.(1); // see the module comment
  loaded.set(library, blas);
  return blas;
}

/** Chooses the BLAS the wasm matmul uses from `setting` (LORALAB_BLAS by default): see the module comment. */
export function selectBlas(setting: string | undefined = process.env.LORALAB_BLAS): BlasStatus {
  const choice = setting?.trim() || "auto";
  status = { blas: undefined, why: `LORALAB_BLAS=${choice}` }; // until a library loads
  if (choice === "off") return status;
  const ffi = koffi();
  if (choice === "auto") {
    if (typeof ffi === "string") return (status = { blas: undefined, why: ffi });
    const failures: string[] = [];
    for (const library of OPENBLAS) {
      try {
        return (status = { blas: load(ffi, library) });
      } catch (e) {
        failures.push(`${library}: ${firstLine(e)}`);
      }
    }
    return (status = { blas: undefined, why: `no OpenBLAS found (${failures[0]}); install OpenBLAS (Debian: libopenblas0)` });
  }
  try {
    if (typeof ffi === "string") throw new Error(ffi);
    return (status = { blas: load(ffi, choice) });
  } catch (e) {
    throw new UserError(
      `LORALAB_BLAS: cannot use "${choice}" as the BLAS: ${firstLine(e)}; ` +
        `expected a CBLAS library exporting cblas_sgemm (e.g. libopenblas.so.0), "auto" or "off"`,
    );
  }
}

/** The setting that selects what this thread uses (for worker threads, which must multiply alike). */
export function blasSetting(): string {
  return status.blas?.library ?? "off";
}

/** The BLAS the wasm matmul uses now, if any. */
export function activeBlas(): Blas | undefined {
  return status.blas;
}
